"""The whole benchmark suite, one command: each benchmark in turn, each in a process of its own, each
rewriting only its own section of docs/performance.md. The BullMQ ones start their own private
redis-servers; the PostgreSQL ones create and drop a database of their own on --postgres-url.

    python -m tests.benchmarks --postgres-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m tests.benchmarks --only scale,pgboss      # a part of it
    python -m tests.benchmarks --list

Nothing here times anything itself; see docs/performance.md for what each one measures.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

#: name -> (module, needs --postgres-url, what it compares, about how long on this 2-core machine)
SUITE = {
    "scale": ("bench_scale", False, "BullMQ at 1,000 queues / 2M jobs vs BullMQ for Node and Python, the TUI,"
              " and the detailed reader benchmark (bench_bullmq)", "15 min"),
    "rounds": ("bench_rounds", False, "counts and bulk purge vs BullMQ for Node, turn by turn", "3 min"),
    "pgboss": ("bench_pgboss", True, "pg-boss v12/v10 at 2M rows vs pg-boss for Node", "15 min"),
    "history": ("bench_history", True, "first-frame history and latency sample (pg-boss 12.38)", "1 min"),
    "flows": ("bench_flows", False, "flows vs getDependenciesCount / getDependencies", "1 min"),
    "topology": ("bench_topology", False, "Redis Cluster and Sentinel vs BullMQ for Node", "1 min"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres-url", help="a PostgreSQL server where the pg-boss benchmarks may create a database")
    ap.add_argument("--only", help=f"comma-separated parts ({', '.join(SUITE)}); default: all")
    ap.add_argument("--list", action="store_true", help="list the parts and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, (module, pg, what, takes) in SUITE.items():
            print(f"{name:9} {module:15} {'needs --postgres-url; ' if pg else ''}{what} (about {takes})")
        return 0
    parts = [p.strip() for p in args.only.split(",")] if args.only else list(SUITE)
    unknown = [p for p in parts if p not in SUITE]
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)} (known: {', '.join(SUITE)})")
    if any(SUITE[p][1] for p in parts) and not args.postgres_url:
        ap.error("--postgres-url is needed by: " + ", ".join(p for p in parts if SUITE[p][1]))
    results = []
    for name in parts:
        module, pg, _, _ = SUITE[name]
        cmd = [sys.executable, "-m", f"tests.benchmarks.{module}"]
        if pg:
            cmd += ["--postgres-url", args.postgres_url]
        print(f"benchmarks: {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.run(cmd, check=False).returncode
        results.append((name, code, time.monotonic() - started))
    for name, code, took in results:
        print(f"benchmarks: {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {took / 60:.1f} min")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
