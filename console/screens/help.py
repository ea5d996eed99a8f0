"""``?``: every key that works on the screen underneath, from the binding table."""
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

        self.under_name = ("overview" if isinstance(under, OverviewScreen)
                           else "dlq" if isinstance(under, DeadLetterScreen) else "queue")

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("key", style="bold cyan")
        table.add_column("action")
        for key in for_screen(self.under_name) + for_screen("app"):
            table.add_row(Text(label(key.keys)), Text(key.description))  # Text: a "[" key is not markup
        with VerticalScroll(id="help-box"):
            yield Static(Text(f"Keys: {self.under_name}", style="bold"))
            yield Static(table)
            yield Static(Text("\nesc closes this help. docs/keys.md lists every screen.", style="dim"))

    def action_dismiss(self) -> None:
        self.dismiss(None)
