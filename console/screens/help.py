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


class HelpScreen(ModalScreen[None]):
    BINDINGS = [("escape", "dismiss", "Close"), ("q", "dismiss", "Close"), ("question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        from console.screens.dead_letters import DeadLetterScreen
        from console.screens.overview import OverviewScreen

        from console.screens.job import JobScreen

        self.under_name = ("overview" if isinstance(under, OverviewScreen)
                           else "dlq" if isinstance(under, DeadLetterScreen)
                           else "job" if isinstance(under, JobScreen) else "queue")
        self.under = under

    def keys(self) -> list:
        """The bindings listed: the screen's and the app's, each only where its check lets it run."""
        out = []
        for key in for_screen(self.under_name):
            if self.under.check_action(key.id, ()) is not False:
                out.append(key)
        for key in for_screen("app"):
            if self.app.check_action(key.id, ()) is not False:
                out.append(key)
        return out

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("key", style="bold cyan")
        table.add_column("action")
        for key in self.keys():
            table.add_row(Text(label(key.keys)), Text(key.description))  # Text: a "[" key is not markup
        with VerticalScroll(id="help-box"):
            yield Static(Text(f"Keys: {self.under_name}", style="bold"))
            yield Static(table)
            note = "\nread-only session: keys that change a queue are off." if self.app.settings.read_only else ""
            yield Static(Text(note + "\nesc or ? closes this help.", style="dim"))

    def action_dismiss(self) -> None:
        self.dismiss(None)
