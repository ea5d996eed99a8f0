"""The ``:`` command line: one line at the bottom, with completion (tab / →) and history (↑ ↓).

Commands (``COMMANDS``): ``q NAME`` opens a queue, ``dlq`` the failures view, ``pause all`` /
``resume all`` / ``pause NAME`` / ``resume NAME`` (the pause-all confirmation), ``ctx NAME`` switches
context, ``theme NAME``, ``ro`` read-only for the rest of the session, ``help``, ``quit``. Parsing is
pure (``parse``); the app runs the result (``QueueConsoleApp.run_command``).
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Static

from console.keymap import COMMANDS

class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    verb: str  # queue | dlq | pause | resume | ctx | theme | ro | help | quit
    arg: str = ""


_ALIASES = {"q": "queue", "queue": "queue", "open": "queue", "dlq": "dlq", "failures": "dlq",
            "pause": "pause", "resume": "resume", "ctx": "ctx", "context": "ctx", "theme": "theme",
            "ro": "ro", "readonly": "ro", "read-only": "ro", "help": "help", "quit": "quit", "exit": "quit"}
_NEEDS_ARG = {"pause", "resume", "ctx", "theme"}


def parse(line: str) -> Command:
    words = line.strip().lstrip(":").split(None, 1)
    if not words:
        raise CommandError("empty command")
    head, arg = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    verb = _ALIASES.get(head)
    if verb is None:
        raise CommandError(f"unknown command {head!r} (commands: {', '.join(u for u, _ in COMMANDS)})")
    if verb == "queue" and not arg:
        return Command("quit") if head == "q" else Command("queue")  # `:q` alone quits, as in vi
    if (verb in _NEEDS_ARG or verb == "queue") and not arg:
        raise CommandError(f"{head} needs a name")
    return Command(verb, arg)


def find_queue(name: str, queues: list) -> object:
    """The queue called ``name`` (``backend:name`` or ``namespace:name`` also match); else the one
    queue whose name starts with it. Ambiguity and absence are errors that name the candidates."""
    exact = [q for q in queues if name in (q.name, q.qualified, f"{q.backend}:{q.name}")]
    if len(exact) == 1:
        return exact[0]
    candidates = exact or [q for q in queues if q.name.startswith(name)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CommandError(f"no queue called {name!r}")
    raise CommandError(f"{name!r} matches {len(candidates)} queues: "
                       + ", ".join(q.qualified for q in candidates[:5]))


class CommandScreen(ModalScreen[str | None]):
    """``:`` — returns the line typed (enter) or None (esc)."""

    BINDINGS = [("escape", "cancel", "Cancel"), ("up", "history(-1)", "Previous"),
                ("down", "history(1)", "Next"), ("tab", "complete", "Complete")]

    def __init__(self, history: list[str], words: list[str]) -> None:
        super().__init__()
        self.history = history
        self._at = len(history)
        self.words = words

    def compose(self) -> ComposeResult:
        yield Static(Text("  ".join(u for u, _ in COMMANDS), style="dim"), id="command-hint")
        yield Input(placeholder=":command  (tab completes, ↑↓ history, esc cancels)", id="command-line",
                    suggester=SuggestFromList(self.words, case_sensitive=False))

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self.dismiss(line or None)

    def action_complete(self) -> None:
        box = self.query_one(Input)
        box.cursor_position = len(box.value)
        box.action_cursor_right()  # at the end of the line this takes the suggestion

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = max(0, min(len(self.history), self._at + step))
        box = self.query_one(Input)
        box.value = self.history[self._at] if self._at < len(self.history) else ""
        box.cursor_position = len(box.value)
