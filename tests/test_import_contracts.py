"""The layer contracts of pyproject.toml's [tool.importlinter] hold (``lint-imports``, in CI through
this test): backends/ and console/policy never import the UI, Textual or Rich; backends/ never
imports console/; the headless part of console/ never imports Textual. And they bite: the same
check on a copy of the tree with one forbidden import added fails and names it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as m; sys.exit(m())",
        "--no-cache"]


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(LINT, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_a_backend_importing_textual_breaks_them(tmp_path):
    for pkg in ("backends", "console", "themes"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    blob = tmp_path / "backends" / "blob.py"
    blob.write_text(blob.read_text() + "\n\ndef _ui():\n    from textual.widgets import Static\n    return Static\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "backends is not allowed to import textual" in proc.stdout, proc.stdout
    assert "backends.blob -> textual" in proc.stdout, proc.stdout
