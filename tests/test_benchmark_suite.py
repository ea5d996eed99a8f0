"""The one-command benchmark suite (tests/benchmarks/__main__.py) runs every benchmark module there
is: a new bench_*.py that is not in its list fails here. Nothing is timed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.benchmarks.__main__ import SUITE

BENCHMARKS = Path(__file__).parent / "benchmarks"


def test_the_suite_lists_every_benchmark_module():
    modules = {p.stem for p in BENCHMARKS.glob("bench_*.py")}
    listed = {module for module, *_ in SUITE.values()}
    # bench_bullmq runs inside bench_scale (its detailed section)
    assert modules - {"bench_bullmq"} == listed


def test_the_suite_refuses_a_missing_postgres_url_and_an_unknown_part():
    run = [sys.executable, "-m", "tests.benchmarks"]
    root = Path(__file__).parent.parent
    missing = subprocess.run([*run, "--only", "pgboss"], cwd=root, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--postgres-url is needed by: pgboss" in missing.stderr
    unknown = subprocess.run([*run, "--only", "nosuch"], cwd=root, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown part(s) nosuch" in unknown.stderr
