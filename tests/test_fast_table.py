"""console.widgets.fast_table.FastTable draws exactly what Textual's DataTable draws (segment by
segment, styles and click metadata included) and redraws a cell when its value changes."""
from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from console.widgets.fast_table import FastTable

HOSTILE = "\x1b[31mred\x1b[0m [bold]not markup[/] 日本語 ✓"


def _rows() -> list[list]:
    rows = []
    for i in range(60):
        name = Text(f"queue-{i:03d}")
        if i % 7 == 0:
            name.append(" (4s ago)", style="dim")
        rows.append([
            name,
            Text("bullmq", style="dim"),
            Text("PAUSED", style="bold yellow") if i % 5 == 0 else Text("-", style="dim"),
            Text(f"{i * 1234:,}", style="bold red" if i % 3 else "", justify="right"),
            Text(f"{i}", justify="center"),
            Text("x" * (i % 9), justify="left"),
            Text("", style="dim"),
            "plain [b]str[/b] cell",  # DataTable's formatter: markup
            Text(HOSTILE if i % 11 == 0 else "ok", style="red"),
            Text("tab\there" if i == 3 else "trailing  " if i % 2 else "no tab", justify="right"),
            Text("two\nlines" if i == 4 else "one line"),
        ])
    return rows


class One(App):
    """One table (DataTable or FastTable) with the same columns, rows and state."""

    def __init__(self, kind: type[DataTable]) -> None:
        super().__init__()
        self.kind = kind

    def compose(self) -> ComposeResult:
        yield self.kind(id="t", cursor_type="row", zebra_stripes=True, fixed_columns=1)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for c in ("queue", "backend", "paused", "failed", "mid", "left", "empty", "str", "error", "tabs", "lines"):
            table.add_column(Text(c, justify="right") if c == "failed" else c, key=c)
        for i, row in enumerate(_rows()):
            table.add_row(*row, key=f"r{i}")


def _lines(table: DataTable) -> list[list[Segment]]:
    return [list(Segment.simplify(table.render_line(y))) for y in range(table.size.height)]


async def _drawn(kind: type[DataTable], steps) -> list[list[list[Segment]]]:
    """The table's lines after each step (a function of the table)."""
    app = One(kind)
    out = []
    async with app.run_test(size=(200, 30)) as pilot:
        table = app.query_one(DataTable)
        for step in steps:
            step(table)
            await pilot.pause()
            out.append(_lines(table))
    return out


def _scroll_and_update(table: DataTable) -> None:
    table.move_cursor(row=12)
    table.scroll_to(x=7, y=5, animate=False)
    table.update_cell("r13", "failed", Text("123,456,789,012", style="bold red", justify="right"))
    table.update_cell("r14", "queue", Text("renamed", style="italic"))


async def test_fast_table_draws_what_data_table_draws():
    steps = [lambda t: None, lambda t: t.blur(), _scroll_and_update, lambda t: t.focus(),
             lambda t: t.move_cursor(row=14), lambda t: t.clear(), lambda t: [t.add_row(*r) for r in _rows()[::-1]]]
    slow, fast = await _drawn(DataTable, steps), await _drawn(FastTable, steps)
    assert len(fast) == len(slow) == len(steps)
    for i, (s, f) in enumerate(zip(slow, fast)):
        assert f == s, f"step {i}"
    assert "renamed" in "".join(seg.text for line in fast[2] for seg in line)


async def test_fast_table_redraws_a_changed_cell_and_keeps_the_others():
    app = One(FastTable)
    async with app.run_test(size=(200, 30)) as pilot:
        fast = app.query_one(FastTable)
        await pilot.pause()
        before = _lines(fast)
        fast.update_cell("r2", "failed", Text("999", justify="right"))
        await pilot.pause()
        after = _lines(fast)
        changed = [y for y in range(len(before)) if before[y] != after[y]]
        assert changed == [3]  # the header is line 0: row r2 is line 3, and only it
        # the plain one-line cells took the direct path: Textual's own cache holds the header and
        # the cells that are not (a str, a tab, two lines, the cropped ones) only
        assert len(fast._drawn) > 5 * len(fast._cell_render_cache)
        assert "999" in "".join(s.text for s in after[3])


async def test_rows_a_screen_away_are_drawn_before_a_page_down_asks():
    app = One(FastTable)
    async with app.run_test(size=(200, 30)) as pilot:
        fast = app.query_one(FastTable)
        for i, row in enumerate(_rows() * 3):  # 240 rows
            fast.add_row(*row, key=f"more{i}")
        fast.focus()
        fast.move_cursor(row=40)
        fast.scroll_to(y=40, animate=False)
        await pilot.pause(1.0)  # the timer draws the screens above and below
        drawn: list[int] = []
        draw = fast._draw

        def counted(*args):
            drawn.append(args[0])
            return draw(*args)

        fast._draw = counted
        fast.action_page_down()
        await pilot.pause()
        top, page = int(fast.scroll_y), fast.scrollable_content_region.height - fast.header_height
        assert top > 40
        on_screen = {r for r in drawn if top <= r < top + page}
        assert on_screen <= {40, fast.cursor_row}, sorted(on_screen)  # the two cursor rows, no others
        assert f"queue-{top % 60:03d}" in "".join(s.text for line in _lines(fast) for s in line)
