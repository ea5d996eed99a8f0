"""The overview: every queue on every connection, with counts, throughput and latency."""
from __future__ import annotations

from functools import lru_cache

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from backends.contract import CANONICAL_STATES, QueueStatus
from console import formatting as fmt
from console.app import bindings_for
from console.keymap import CAPABILITY, WRITES
from console.screens.navigation import FilterBox, TableNavigation
from console.screens.progress import MutationHost
from console.poller import Snapshot
from console.safe_text import one_line
from console.widgets.fast_table import FastTable
from console.widgets.footer import KeyFooter
from console.widgets.signal_colors import rich_styles
from console.widgets.status_bar import ConnectionBar, ErrorBanner


def visible_states(statuses: list[QueueStatus]) -> list[str]:
    """Canonical states every backend has, plus those some backend reports (``–`` where absent)."""
    cols = [s for s in CANONICAL_STATES if s != "cancelled"]
    if any(st.counts.get("cancelled") is not None for st in statuses):
        cols.append("cancelled")
    extra = sorted({s for st in statuses for s, v in st.counts.items() if s not in CANONICAL_STATES and v})
    return cols + extra


@lru_cache(maxsize=4096)
def _cell(label: str, style: str = "", justify: str | None = None) -> Text:
    """One cell's Text, shared by every cell that shows the same: at 1,000 queues most count, rate
    and latency cells repeat ("0", "-", "…"), and 16,000 Text objects of their own were ~4 MiB of
    RSS. Shared, so never changed in place (the tables draw them without changing them)."""
    return Text(label, style=style, justify=justify)


def _shows(cell: Text) -> tuple:
    return cell.plain, str(cell.style), cell.justify, tuple(cell.spans)


def _row_key(status: QueueStatus) -> str:
    return "\x1f".join(status.queue.key)


class OverviewScreen(MutationHost, TableNavigation, FilterBox, Screen):
    BINDINGS = bindings_for("overview")
    crumb = "queues"

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[QueueStatus] = []
        self.snapshots: list[Snapshot] = []
        self.filter_text = ""
        self._columns: list[str] = []
        self._rows: list[str] = []
        self._row_sigs: dict[str, tuple] = {}  # row -> the numbers its cells were drawn from
        self._stale = False
        self._in_view: set[tuple] = set()  # queue keys of the rows on screen at the last render

    def compose(self) -> ComposeResult:
        yield ConnectionBar(id="connections")
        yield ErrorBanner(id="banner", classes="banner")
        yield Input(placeholder="filter queues by name (esc to clear)", id="filter")
        yield Static(id="empty")
        # the queue name stays on screen when the counts scroll right (80 columns)
        table = FastTable(id="queues", cursor_type="row", zebra_stripes=True, fixed_columns=1)
        yield table
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#empty", Static).update("connecting…")
        self.query_one("#empty").add_class("-shown")
        table = self.query_one(DataTable)
        table.focus()
        # after the frame that shows the scroll: telling the pollers brings a refresh forward on
        # the backend thread, whose reply parsing would share the GIL with drawing that frame
        self.watch(table, "scroll_y", lambda _old, _new: self.call_after_refresh(self._scrolled), init=False)
        for poller in getattr(self.app, "pollers", []):
            if poller.focus is None:
                poller.set_focus(frozenset())  # nothing on screen yet: no latency of every queue first
        self.update_from_snapshots(list(self.app.snapshots.values()))

    # -- data ----------------------------------------------------------------------------
    def update_from_snapshots(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots
        self.statuses = [s for snap in snapshots for s in snap.statuses]
        if not self.is_current:
            self._stale = True  # under another screen: draw when it comes back, not every tick
            return
        self._stale = False
        self.query_one(ConnectionBar).show(snapshots, getattr(self.app, "frozen", False))
        self.query_one(ErrorBanner).show(snapshots, getattr(self.app, "banner_note", None))
        self._render_table()
        self._render_empty()
        self._set_focus()

    #: rows above and below the screen polled every tick too (pages away), so that paging and
    #: scrolling show counts read a tick ago
    FOCUS_MARGIN_PAGES = 1

    def _scrolled(self) -> None:
        self._set_focus()
        table = self.query_one(DataTable)
        fresh = frozenset().union(*(snap.fresh for snap in self.snapshots))
        statuses = self._visible()
        in_view = self._rows_in_view(table, statuses)
        if in_view <= fresh or [_row_key(s) for s in statuses] != self._rows:
            return
        # rows whose counts the last tick did not read show their age: those rows alone (a page
        # down must not go through every row of a 1,000-queue table)
        self._in_view = in_view
        top = int(table.scroll_y)
        shown = statuses[top:top + max(table.size.height, 1)]
        self._update_rows(table, shown, [_row_key(s) for s in shown])

    def _set_focus(self) -> None:
        """Tell each poller which of its queues are on screen (with a page either side): those are
        read every tick, the rest on the poller's slower full cycle (console.poller.FULL_EVERY)."""
        table = self.query_one(DataTable)
        statuses = self._visible()
        height = max(table.size.height, 1)
        start = max(int(table.scroll_y) - height * self.FOCUS_MARGIN_PAGES, 0)
        shown = statuses[start:int(table.scroll_y) + height * (1 + self.FOCUS_MARGIN_PAGES)]
        if 0 <= table.cursor_row < len(statuses):
            shown.append(statuses[table.cursor_row])
        for poller in getattr(self.app, "pollers", []):
            poller.set_focus(frozenset(s.queue.key for s in shown if s.queue.connection == poller.url))

    def on_screen_resume(self) -> None:
        if self._stale:
            self.update_from_snapshots(self.snapshots)

    def frozen_changed(self, frozen: bool) -> None:
        self.query_one(ConnectionBar).show(self.snapshots, frozen)

    def _render_empty(self) -> None:
        empty = self.query_one("#empty", Static)
        if self.statuses:
            empty.remove_class("-shown")
            return
        lines = []
        for snap in self.snapshots:
            if not snap.connected and snap.error:
                continue  # the banner says it
            for disc in snap.discoveries:
                lines.append(one_line(f"No queues found at {snap.connection}: looked for {', '.join(disc.looked_for)}.", 300))
                lines += [one_line(x, 300) for x in (disc.note, disc.hint and disc.hint[0].upper() + disc.hint[1:] + ".")
                          if x]
        empty.update(Text("\n".join(lines) or "connecting…"))
        empty.add_class("-shown")

    def _visible(self) -> list[QueueStatus]:
        if not self.filter_text:
            return self.statuses
        needle = self.filter_text.lower()
        return [s for s in self.statuses if needle in s.queue.name.lower() or needle in s.queue.backend]

    def _render_table(self) -> None:
        table = self.query_one(DataTable)
        statuses = self._visible()
        columns = visible_states(self.statuses)
        # the selected queue, before a change of columns (a state appearing) clears the rows
        selected = self._rows[table.cursor_row] if self._rows and 0 <= table.cursor_row < len(self._rows) else None
        if columns != self._columns:
            table.clear(columns=True)
            table.add_column("queue", key="queue")
            table.add_column("backend", key="backend")
            table.add_column("paused", key="paused")
            for c in columns:
                table.add_column(Text(c.replace("_", " "), justify="right"), key=c)
            table.add_column("done/s", key="rate")
            table.add_column("completed ▁▃▅ failed", key="spark")
            table.add_column("wait p50", key="wait")
            table.add_column("run p50", key="run")
            self._columns, self._rows = columns, []
        keys = [_row_key(s) for s in statuses]
        self._in_view = self._rows_in_view(table, statuses)
        if keys != self._rows:
            table.clear()
            self._row_sigs = {}
            for s, key in zip(statuses, keys):
                self._row_sigs[key] = self._row_signature(s)
                table.add_row(*self._cells(s), key=key)
            self._rows = keys
            if selected in keys:
                table.move_cursor(row=keys.index(selected))
        else:
            self._update_rows(table, statuses, keys)

    def _update_rows(self, table: DataTable, statuses: list[QueueStatus], keys: list[str]) -> None:
        """Only rows whose numbers changed, and in them only the cells whose text or style changed:
        at 1,000 queues most of them do not. A new cell is compared with the one the table holds
        (no copy of what each cell shows is kept beside the table: 16,000 of them at 1,000 queues)."""
        col_keys = ["queue", "backend", "paused", *self._columns, "rate", "spark", "wait", "run"]
        for s, key in zip(statuses, keys):
            sig = self._row_signature(s)
            if self._row_sigs.get(key) == sig:
                continue
            self._row_sigs[key] = sig
            for col, value in zip(col_keys, self._cells(s)):
                old = table.get_cell(key, col)
                if not isinstance(old, Text) or _shows(old) != _shows(value):
                    table.update_cell(key, col, value)

    @staticmethod
    def _rows_in_view(table: DataTable, statuses: list[QueueStatus]) -> set[tuple]:
        top = int(table.scroll_y)
        return {s.queue.key for s in statuses[top:top + max(table.size.height, 1)]}

    def _stale_age(self, s: QueueStatus, snap: Snapshot | None) -> float | None:
        """Seconds since the counts of a row on screen were read, when the last refresh did not read
        them (a row scrolled into view before the poller's next tick); None when they are fresh."""
        if snap is None or s.queue.key not in self._in_view or s.queue.key in snap.fresh or not snap.fresh:
            return None
        at = snap.read_at.get(s.queue.key)
        return None if at is None or snap.last_ok is None else float(round(max(snap.last_ok - at, 0.0)))

    def _snapshot_of(self, status: QueueStatus) -> Snapshot | None:
        for snap in self.snapshots:
            if snap.connection == status.queue.connection:
                return snap
        return None

    def _row_signature(self, s: QueueStatus) -> tuple:
        """Everything a row's cells are drawn from, as plain values (cheap to build and compare)."""
        snap = self._snapshot_of(s)
        history = snap.throughput.get(s.queue.key) if snap else None
        lat = snap.latency.get(s.queue.key) if snap else None
        caps = self._capabilities(s)
        return (s.queue.name, s.paused, self._stale_age(s, snap), tuple(s.counts.get(c) for c in self._columns), tuple(s.estimated),
                (history.completed(12), history.failed(8), history.last(), rich_styles(self.app.current_theme))
                if history is not None else None,
                (lat.wait_p50_ms, lat.run_p50_ms) if lat else None,
                None if caps is None else (caps.throughput, caps.latency))

    def _cells(self, s: QueueStatus) -> list:
        snap = self._snapshot_of(s)
        history = snap.throughput.get(s.queue.key) if snap else None
        lat = snap.latency.get(s.queue.key) if snap else None
        stale = self._stale_age(s, snap)
        name = Text(one_line(s.queue.name, 40))
        if stale is not None:  # counts read a while ago: dimmed, with their age
            name.append(f" ({fmt.duration(stale)} ago)", style="dim")
        cells: list = [
            name,
            _cell(one_line(s.queue.backend, 20), "dim"),
            _cell("PAUSED", "bold yellow") if s.paused else _cell("-", "dim"),
        ]
        if s.malformed:  # counts cannot be read: say so in the row, with the reason (escaped)
            cells[2] = _cell("MALFORMED", "bold reverse red")
            cells += [_cell("–", "dim", "right") for _ in self._columns]
            cells += [Text(""), Text(one_line(s.malformed, 60), style="red"), Text(""), Text("")]
            return cells
        for c in self._columns:
            value = s.counts.get(c)
            label = fmt.count(value) + ("~" if c in s.estimated else "")
            style = "bold red" if c == "failed" and value else ("dim" if not value else "")
            if stale is not None:
                style = "dim"
            cells.append(_cell(label, style, "right"))
        caps = self._capabilities(s)
        last = history.last() if history is not None else None
        if history is not None and last is not None:
            done_per_s, _, capped = last
            rate = f"{done_per_s:.1f}" + ("+" if capped else "")
            ok, bad = rich_styles(self.app.current_theme)  # the theme's success and error
            spark = Text(fmt.sparkline(history.completed(12), 12), style=ok)
            spark.append(" ")
            spark.append(fmt.sparkline(history.failed(8), 8), style=bad)
        else:  # "…" while the first samples come in; "–" where the queue system has no such number
            rate, spark = ("…" if caps is None or caps.throughput else "–"), Text("")
        no_latency = "…" if caps is None or caps.latency else "–"
        cells += [
            _cell(rate, "", "right"),
            spark,
            _cell(fmt.duration_ms(lat.wait_p50_ms) if lat else no_latency, "", "right"),
            _cell(fmt.duration_ms(lat.run_p50_ms) if lat else no_latency, "", "right"),
        ]
        return cells

    def _capabilities(self, status: QueueStatus):
        poller = self.app.poller_for(status.queue)
        reader = poller.reader_for(status.queue) if poller else None
        return reader.capabilities if reader is not None else None

    def selected_status(self) -> QueueStatus | None:
        table = self.query_one(DataTable)
        visible = self._visible()
        if not visible or not 0 <= table.cursor_row < len(visible):
            return None
        return visible[table.cursor_row]

    # -- actions -------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_queue()

    def action_open_queue(self) -> None:
        from console.screens.queue import QueueScreen

        status = self.selected_status()
        if status is not None:
            self.app.push_screen(QueueScreen(status.queue))

    def action_dead_letters(self) -> None:
        from console.screens.dead_letters import DeadLetterScreen

        self.app.push_screen(DeadLetterScreen())

    def refilter(self) -> None:
        self._render_table()

    # -- pause / resume every queue (console.screens.pause_all) ----------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITES and self.app.settings.read_only:
            return False  # not offered in read-only mode (and the action layer refuses anyway)
        capability = CAPABILITY.get(action)
        if capability is not None and self.statuses:
            caps = [self._capabilities(s) for s in self.statuses]
            if all(c is not None and not getattr(c, capability) for c in caps):
                return False  # no queue on screen can do it (e.g. Gello alone has no pause)
        return True

    def action_pause_all(self) -> None:
        self.pause_all("pause")

    def action_resume_all(self) -> None:
        self.pause_all("resume")

    def pause_all(self, verb: str, only: set[tuple] | None = None) -> None:
        from console.screens import pause_all

        if self.check_action(f"{verb}_all", ()) is False:
            self.notify(f"{verb} is not available here" + (" (read-only)" if self.app.settings.read_only else ""),
                        severity="warning")
            return
        if (run := self.claim_mutation(verb)) is not None:
            statuses = {s.queue.key: s for s in self.statuses}
            self.app.run_worker(pause_all.flow(self, run, verb, statuses, only), group="mutate")

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("-shown"):
            box.value = ""
            box.remove_class("-shown")
            self.filter_text = ""
            self._render_table()
            self.query_one(DataTable).focus()
