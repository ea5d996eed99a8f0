"""README's two commands, .ci/run and the generated key-binding doc stay in step with the code."""
from __future__ import annotations

import re
from pathlib import Path

from console.keymap import markdown

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(python3 -m venv[^\n]*)\n```", text)


def test_readme_gives_exactly_two_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert demo.endswith("queue-console demo")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines(), ".ci/run must run README's test command verbatim"


def test_keys_doc_is_generated_from_the_binding_table():
    assert (ROOT / "docs" / "keys.md").read_text() == markdown(), "run: python -m console.keymap > docs/keys.md"


def test_docs_linked_from_readme_exist():
    text = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(((?:docs|screenshots)/[^)]+)\)", text):
        assert (ROOT / link).exists(), link
