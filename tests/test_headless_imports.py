"""The headless parts never import Textual (docs/architecture.md: a test proves it in a subprocess; tests/test_import_contracts.py checks it statically)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HEADLESS = [
    "backends",
    "backends.contract",
    "backends.errors",
    "backends.urls",
    "backends.blob",
    "backends.redis_client",
    "backends.registry",
    "backends.bullmq",
    "backends.bullmq.discovery",
    "backends.bullmq.reader",
    "console.cli",
    "console.config",
    "console.connections",
    "console.poller",
    "console.safe_text",
    "console.formatting",
    "console.keymap",
    "console.actions",
    "console.cli_actions",
    "console.cli_parsers",
    "console.requeue_planning",
    "console.filters",
    "console.dlq_scan",
    "console.triage",
    "console.policy",
    "backends.bullmq.writer",
    "backends.bullmq.scripts",
    "backends.redis_console_store",
    "backends.pgboss.reader",
    "backends.pgboss.writer",
    "backends.pg_console_store",
    "backends.gello_redis.reader",
    "backends.gello_postgres.reader",
]

PROBE = """
import importlib, json, sys
mods = json.loads(sys.argv[1])
for m in mods:
    importlib.import_module(m)
print(json.dumps({
    "textual": sorted(k for k in sys.modules if k == "textual" or k.startswith("textual.")),
    "loaded": [m for m in mods if m in sys.modules],
}))
"""


def _probe(modules: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_headless_modules_do_not_import_textual():
    result = _probe(HEADLESS)
    assert result["loaded"] == HEADLESS
    assert result["textual"] == []


@pytest.mark.parametrize("module", ["backends.bullmq.reader", "console.cli", "console.poller"])
def test_each_entry_point_alone_is_textual_free(module):
    result = _probe([module])
    assert result["loaded"] == [module]
    assert result["textual"] == []


def test_cli_help_runs_without_textual():
    """Running a headless verb must not pull in Textual either (it is imported only for the TUI)."""
    code = (
        "import sys\n"
        "from console.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print('textual' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_probe_detects_textual_when_imported():
    """The probe itself can fail: importing Textual shows up in its report."""
    result = _probe(["json", "textual.app"])
    assert "textual" in result["textual"] and "textual.app" in result["textual"]
