"""vim-style list keys (j, k, g, G) for any screen with tables: they move the focused table."""
from __future__ import annotations

from textual.widgets import DataTable


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
