"""A DataTable whose cells are drawn once per value, not once per change anywhere in the table.

Textual's DataTable keys every cached cell and line on one table-wide counter that each
``update_cell`` bumps, and draws an uncached cell through Rich's general layout
(``Styled(Padding(cell))`` -> ``render_lines``: wrap, justify, crop, pad). At 1,000 queues a tick
that changes a few counts therefore redrew every cell on screen, and a page down drew ~650 new
cells the slow way (docs/performance.md, the TUI section). ``FastTable`` keeps the DataTable's API
and look, and changes three things:

- a cell's drawn lines are cached under the cell's own value (the object stored by ``add_row`` /
  ``update_cell``), its row index, width and styles: an update elsewhere leaves them valid;
- a one-line ``Text`` cell that fits its column is drawn directly (justify, pad, styles applied
  with the same Rich calls the DataTable's path makes, without wrapping machinery); anything else
  (wrapping rows, a cell wider than its column, tabs, other renderables) takes Textual's own path;
- after a scroll, the screens below and above are drawn ahead in small timer steps, so that a
  page down only puts cached cells together.

tests/test_fast_table.py checks, line by line, that it draws exactly what DataTable draws.
"""
from __future__ import annotations

from rich.cells import cell_len
from rich.containers import Lines
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.widgets import DataTable

#: drawn cells kept: about eight screens of a 16-column table. Each drawn cell holds its own
#: styles (the click metadata names its row and column), so keeping every cell of a 1,000-row
#: table cost ~25 MiB of RSS (110 -> 114 MiB in the TUI benchmark, budget < 100)
CELL_CACHE = 6_000

#: entries kept in DataTable's own caches (rows, lines, row renderables; cells drawn its way: the
#: header, cells that are not one plain line). They are keyed on the table-wide update counter, so
#: after updates their older entries are never hit again but stay until evicted: at DataTable's
#: sizes (1,000 rows, 1,000 lines, 10,000 cells) that dead weight grew with every tick (RSS 99 -> 101
#: MiB over 30 s idle at 1,000 queues). These keep three screens (the one shown and the two drawn
#: ahead) of a tall terminal.
ROW_CACHE = 300
SLOW_CELL_CACHE = 2_000

_NEWLINE = Text("\n")


#: lines drawn ahead per timer step (about a millisecond each; a key pressed meanwhile waits for one
#: step at most), and the step's interval: the screen below is ready ~50 ms after a page down
AHEAD_STEP = 6
AHEAD_EVERY_S = 0.01


class FastTable(DataTable):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._drawn: LRUCache[tuple, tuple[object, list[list[Segment]]]] = LRUCache(CELL_CACHE)
        self._row_render_cache = LRUCache(ROW_CACHE)
        self._line_cache = LRUCache(ROW_CACHE)
        self._row_renderable_cache = LRUCache(ROW_CACHE)
        self._cell_render_cache = LRUCache(SLOW_CELL_CACHE)
        self._ahead = None  # the timer drawing ahead

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.call_after_refresh(self.draw_ahead)

    def draw_ahead(self) -> None:
        """Draw, into the cell cache, the rows of the screen below and the screen above the one
        shown, a few lines per timer step after the frame (the screen below first): a page down
        then finds its cells drawn (tables of one-line rows and no fixed rows: ours)."""
        if self._ahead is not None:
            self._ahead.stop()
            self._ahead = None
        if not self.is_mounted or self.fixed_rows or self._total_row_height != self.row_count:
            return
        header = self.header_height if self.show_header else 0
        page = max(self.scrollable_content_region.height - header, 1)  # rows on screen: a page down
        top = int(self.scroll_y)
        todo = [r for r in (*range(top + page, top + 2 * page), *range(max(top - page, 0), top))
                if r < self.row_count]

        def step() -> None:
            x, width = int(self.scroll_x), self.size.width
            for row in todo[:AHEAD_STEP]:
                self._render_line(header + row, x, x + width, self.rich_style)
            del todo[:AHEAD_STEP]
            if not todo and self._ahead is not None:
                self._ahead.stop()
                self._ahead = None

        if todo:
            self._ahead = self.set_interval(AHEAD_EVERY_S, step)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        if row_index < 0 or column_index < 0:  # the header and row labels: Textual's own cache
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        row = self.rows.get(row_key)
        if row is None or row.height != 1:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        value = self._data.get(row_key, {}).get(column_key)
        key = (row_key, column_key, row_index, column_index, base_style, width, cursor, hover,
               self._show_hover_cursor, self._pseudo_class_state, self.show_cursor, self.cell_padding,
               row_index < self.fixed_rows or column_index < self.fixed_columns,
               self.cursor_foreground_priority, self.cursor_background_priority)
        hit = self._drawn.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        lines = self._draw(row_index, column_index, base_style, width, cursor, hover, value)
        if lines is None:  # not a plain one-line cell: Textual draws it (and caches it by its counter)
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        self._drawn[key] = (value, lines)
        return lines

    def _draw(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool,
              hover: bool, value: object) -> list[list[Segment]] | None:
        """One line of a one-line Text cell that fits, as DataTable's Styled(Padding(cell)) draws
        it; None for anything else."""
        if not isinstance(value, Text):
            return None
        pad = self.cell_padding
        inner = width - 2 * pad
        plain = value.plain
        if inner < 0 or "\n" in plain or "\t" in plain or value.cell_len > inner:
            return None
        console = self.app.console
        null = Style.null()
        justify = value.justify or "default"
        if not value._spans and justify in ("default", "left", "right", "center"):
            # one style over the whole text (most cells): its padding as Lines.justify makes it
            # (the text's style over the spaces it adds; "default" adds none, render_lines pads)
            style = console.get_style(value.style, default=null) if value.style else None
            body = plain.rstrip() if justify in ("right", "center") else plain
            spare = inner - cell_len(body)
            if justify == "right":
                body, spare = " " * spare + body, 0
            elif justify == "center":
                body, spare = " " * (spare // 2) + body + " " * (spare - spare // 2), 0
            elif justify == "left":
                body, spare = body + " " * spare, 0
            segments = [Segment(body, style)] if body else []
            text_len = inner - spare
        else:
            text = value.copy()
            overflow = text.overflow or "fold"
            text.rstrip_end(inner)
            Lines([text]).justify(console, inner, justify=justify, overflow=overflow)
            text.truncate(inner, overflow=overflow)
            # Text's own console path joins its lines first (its base style becomes a span)
            segments = list(_NEWLINE.join([text]).render(console))
            text_len = text.cell_len
        fill = inner - text_len
        line = ([Segment(" " * pad, null)] if pad else []) + segments
        if fill > 0:
            line.append(Segment(" " * fill, null))
        if pad:
            line.append(Segment(" " * pad, null))
        fixed = row_index < self.fixed_rows or column_index < self.fixed_columns
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, fixed, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        pre = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        return [list(Segment.apply_style(line, style=pre, post_style=post_style))]
