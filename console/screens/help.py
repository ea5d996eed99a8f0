"""``?``: the keys that work on the screen underneath, here and now, from the binding table: a key
the screen's ``check_action`` refuses (read-only mode, a queue that cannot pause or cancel) is not
listed."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from console.keymap import for_screen, label


def screen_name(screen: Screen) -> str | None:
    """The binding table's name of a screen (``Key.screens``); None for one the table has no
    keys of (a confirmation, the ``:`` line)."""
    from console.screens.dead_letters import DeadLetterScreen
    from console.screens.job import JobScreen
    from console.screens.overview import OverviewScreen
    from console.screens.progress import ProgressScreen
    from console.screens.queue import QueueScreen

    for cls, name in ((OverviewScreen, "overview"), (QueueScreen, "queue"), (DeadLetterScreen, "dlq"),
                      (JobScreen, "job"), (ProgressScreen, "progress")):
        if isinstance(screen, cls):
            return name
    return None


def working_keys(screen: Screen) -> list:
    """The bindings of ``screen`` and of the app, each only where its check lets it run here and
    now (read-only mode, the queue's capabilities, a cursor on something): what ``?`` lists and
    what the command palette offers."""
    name = screen_name(screen)
    out = [key for key in for_screen(name) if screen.check_action(key.id, ()) is not False] if name else []
    return out + [key for key in for_screen("app") if screen.app.check_action(key.id, ()) is not False]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Close"), ("q", "dismiss", "Close"), ("question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under_name = screen_name(under)
        self.under = under

    def keys(self) -> list:
        """The bindings listed: the screen's and the app's, each only where its check lets it run."""
        return working_keys(self.under)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("key", style="bold cyan")
        table.add_column("action")
        for key in self.keys():
            table.add_row(Text(label(key.keys)), Text(key.description))  # Text: a "[" key is not markup
        with VerticalScroll(id="help-box"):
            yield Static(Text(f"Keys: {self.under_name or 'everywhere'}", style="bold"))
            yield Static(table)
            note = "\nread-only session: keys that change a queue are off." if self.app.settings.read_only else ""
            yield Static(Text(note + "\nesc or ? closes this help.", style="dim"))

    def action_dismiss(self) -> None:
        self.dismiss(None)
