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


#: what a pointer to notes outside the repository looks like: a section sign of them, the design
#: document, or the research notes' folders (spelled in pieces so that this file does not match)
OUTSIDE = re.compile("|".join(["\u00a7", "DESIGN" + r"\.md", r"shared" + "/", r"\bformats" + "/"]))
TEXT = {".py", ".md", ".toml", ".js", ".mjs", ".lua", ".sql", ".tcss", ".yml", ".cfg", ".txt"}


def test_docs_and_code_point_only_inside_the_repository():
    """Every reference in docs/, README, the code and the tests resolves inside the repository:
    no section of outside notes, no design document that does not ship with it."""
    roots = [ROOT / "README.md", ROOT / "pyproject.toml",
             *(ROOT / d for d in ("docs", "backends", "console", "themes", "tests", "screenshots", ".ci"))]
    hits = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix not in TEXT and path.parent.name != ".ci" or "node_modules" in path.parts:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if OUTSIDE.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not hits, "references outside the repository:\n" + "\n".join(hits)
