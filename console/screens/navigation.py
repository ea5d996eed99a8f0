"""Keys every list screen shares: j/k/g/G move the focused table; / opens the screen's filter box."""
from __future__ import annotations

from textual.widgets import DataTable, Input


class TableNavigation:
    def nav_table(self) -> DataTable:
        focused = self.focused  # type: ignore[attr-defined]
        if isinstance(focused, DataTable):
            return focused
        return self.query(DataTable).first()  # type: ignore[attr-defined]

    def action_cursor_down(self) -> None:
        self.nav_table().action_cursor_down()

    def action_cursor_up(self) -> None:
        self.nav_table().action_cursor_up()

    def action_cursor_top(self) -> None:
        self.nav_table().move_cursor(row=0)

    def action_cursor_bottom(self) -> None:
        table = self.nav_table()
        table.move_cursor(row=max(table.row_count - 1, 0))


class FilterBox:
    """``/`` shows the screen's ``#filter`` input; typing sets ``filter_text`` and calls
    ``refilter()``; enter goes back to the list."""

    filter_text: str = ""

    def refilter(self) -> None:  # pragma: no cover - screens implement it
        raise NotImplementedError

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)  # type: ignore[attr-defined]
        box.add_class("-shown")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.nav_table().focus()  # type: ignore[attr-defined]
