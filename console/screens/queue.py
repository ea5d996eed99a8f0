"""One queue: throughput chart, state tabs, a server-paged job table and the job detail pane."""
from __future__ import annotations

import asyncio
from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static, Tab, Tabs

from backends.contract import JobDetail, Page, QueueRef, QueueStatus
from backends.errors import BackendError
from console import formatting as fmt
from console.actions import Refused, Selection
from console.app import bindings_for
from console.screens.navigation import FilterBox, TableNavigation
from console.keymap import CAPABILITY, WRITES, hint
from console.screens.confirm import TOGGLE, ConfirmScreen, confirm_title, preview_text
from console.screens.progress import MutationHost
from console.poller import Snapshot
from console.safe_text import one_line
from console.widgets.fast_table import FastTable
from console.widgets.job_detail import JobDetailView
from console.widgets.footer import KeyFooter
from console.widgets.status_bar import ConnectionBar, ErrorBanner
from console.widgets.throughput_chart import ThroughputChart

PAGE_SIZE = 50
#: the page on screen is read again every N refreshes: live states every time; finished states,
#: whose totals can cost a count on big tables (pg-boss completed), less often (r: at once)
PAGE_REFRESH_EVERY = {"completed": 10, "cancelled": 10, "failed": 3}


#: workers are read every N refreshes (one CLIENT LIST per read on Redis)
WORKERS_EVERY = 5

#: seconds the cursor rests on a job before the detail pane reads it: holding j through a page
#: reads the job it stops on, not every job it passes (each move cancels the read before it)
DETAIL_SETTLE_S = 0.12


def workers_text(gauges, status) -> Text:
    """``  2 workers``; ``  ⚠ 5 waiting, no worker connected`` (unless paused); empty when the
    store does not know its workers."""
    t = Text()
    if gauges is None or gauges.workers is None:
        return t
    waiting = (status.counts.get("waiting") or 0) if status is not None else 0
    if gauges.workers == 0 and waiting and not (status is not None and status.paused):
        t.append(f"  ⚠ {fmt.count(waiting)} waiting, no worker connected", style="bold yellow")
    else:
        t.append(f"  {fmt.plural(gauges.workers, 'worker')}", style="dim")
    return t


def page_line(page_no: int, shown: int, total: int | None, has_next: bool, state: str = "") -> str:
    """``page 2: jobs 51–64 of 64``. The total is counted apart from the page, so it can be behind
    the rows: the last page's end is the true total, and no total is below the rows shown."""
    start = (page_no - 1) * PAGE_SIZE
    if not shown:
        return f"page {page_no}: no {state + ' ' if state else ''}jobs" + (" here" if page_no > 1 else "")
    end = start + shown
    if not has_next:
        total = end
    elif total is not None:
        total = max(total, end)
    return f"page {page_no}: jobs {start + 1}–{end} of {fmt.count(total)}" + ("" if has_next else " (all)")


class QueueScreen(MutationHost, TableNavigation, FilterBox, Screen):
    BINDINGS = bindings_for("queue")

    def crumb(self) -> str:
        return f"{one_line(self.queue.name, 40)} › {self.state.replace('_', ' ')}"

    def __init__(self, queue: QueueRef, state: str = "waiting") -> None:
        super().__init__()
        self.queue = queue
        self.state = state
        self.status: QueueStatus | None = None
        self.snapshots: list[Snapshot] = []
        self.cursors: list[str | None] = [None]  # cursor of each page visited (server-side paging)
        self.page: Page | None = None
        #: (state, page number) of the rows on screen: n/p move from there only, so quick presses
        #: while a page loads cannot push the page number past the rows shown
        self._shown_at: tuple[str, int] | None = None
        self.page_error: str | None = None
        self.filter_text = ""
        self._shown_ids: list[str] = []
        self._detail_for: str | None = None
        self.marks: set[str] = set()
        self._ticks = 0
        self._anchor: int | None = None  # row of the last mark, for a range mark
        #: the user's c / d choice; None: the chart and the detail pane follow the terminal's size
        self._chart_shown: bool | None = None
        self._detail_shown: bool | None = None
        self.gauges = None  # QueueGauges of this queue, where the store knows them

    def compose(self) -> ComposeResult:
        yield ConnectionBar(id="connections")
        yield ErrorBanner(id="banner", classes="banner")
        yield Static(id="queue-title")
        yield ThroughputChart(id="chart")
        # the tab of the state opened on is there from the start, so that it is the one Tabs
        # activates (``-`` reopens a queue at the tab it was on); the others are put around it
        yield Tabs(Tab(Text(self.state.replace("_", " ")), id=f"state-{self.state}"), id="states")
        yield Input(placeholder="filter this page by id, name or error (esc to clear)", id="filter")
        with Horizontal(id="body"):
            with Vertical(id="jobs"):
                yield FastTable(id="job-table", cursor_type="row", zebra_stripes=True)
                yield Static(id="page-info")
            with VerticalScroll(id="detail"):
                yield JobDetailView(id="job-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#job-table", DataTable)
        for key, label in (("id", "id"), ("name", "name"), ("when", "when"), ("attempts", "att"), ("error", "error")):
            table.add_column(label, key=key)
        table.focus()
        self._fit(self.app.size)
        self.update_from_snapshots(list(self.app.snapshots.values()))
        self.load_page()

    # -- layout --------------------------------------------------------------------------
    #: below these sizes the chart (9 rows) and the detail pane (half the width) start hidden, so
    #: that an 80x24 terminal keeps its rows and columns for the jobs; c and d show them
    CHART_MIN_HEIGHT = 32
    DETAIL_MIN_WIDTH = 110

    def on_resize(self, event) -> None:
        self._fit(event.size)

    def _fit(self, size) -> None:
        chart = self._chart_shown if self._chart_shown is not None else size.height >= self.CHART_MIN_HEIGHT
        detail = self._detail_shown if self._detail_shown is not None else size.width >= self.DETAIL_MIN_WIDTH
        self.query_one("#chart").set_class(not chart, "-hidden")
        self.query_one("#detail").set_class(not detail, "-hidden")

    def action_toggle_chart(self) -> None:
        chart = self.query_one("#chart")
        self._chart_shown = chart.has_class("-hidden")
        chart.set_class(not self._chart_shown, "-hidden")

    # -- snapshots -----------------------------------------------------------------------
    def update_from_snapshots(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots
        self.query_one(ConnectionBar).show(snapshots, getattr(self.app, "frozen", False))
        self.query_one(ErrorBanner).show(snapshots)
        snap = next((s for s in snapshots if s.connection == self.queue.connection), None)
        if snap is None:
            return
        self.status = next((s for s in snap.statuses if s.queue.key == self.queue.key), self.status)
        self.refresh_bindings()  # capabilities are known once the connection is up
        self._render_title()
        self._render_tabs()
        self.query_one(ThroughputChart).show(snap.throughput.get(self.queue.key), snap.latency.get(self.queue.key))
        self._ticks += 1
        if self.is_current and snap.connected and self._ticks % PAGE_REFRESH_EVERY.get(self.state, 1) == 0:
            self.load_page()
        if self.is_current and snap.connected and self._ticks % WORKERS_EVERY == 1:
            self.run_worker(self._fetch_gauges(), exclusive=True, group="gauges")

    async def _fetch_gauges(self) -> None:
        """Workers connected (BullMQ: CLIENT LIST as getWorkers reads it) and the oldest wait."""
        try:
            gauges = await self.app.backend_call(self.queue, lambda r: r.gauges([self.queue]), "reading workers")
        except Exception:
            return  # a server that refuses CLIENT LIST: unknown, and the title says nothing
        self.gauges = next((g for g in gauges if g.queue.key == self.queue.key), None)
        if self.is_attached and self.query("#queue-title"):  # the view may be closing meanwhile
            self._render_title()

    def frozen_changed(self, frozen: bool) -> None:
        self.query_one(ConnectionBar).show(self.snapshots, frozen)

    def _render_title(self) -> None:
        t = Text()
        t.append(one_line(self.queue.name, 60), style="bold")
        poller = self.app.poller_for(self.queue)
        reader = poller.reader_for(self.queue) if poller else None
        where = reader.capabilities.namespace_label if reader else "namespace"
        t.append(f"  {self.queue.backend} · {where} {one_line(self.queue.namespace, 30)}", style="dim")
        if self.status is not None:
            if self.status.paused:
                t.append("  PAUSED", style="bold yellow")
            for key, value in self.status.info.items():
                t.append(f"  {key}: {one_line(value, 40)}", style="dim")
            if self.status.malformed:
                t.append(f"  MALFORMED: {one_line(self.status.malformed, 80)}", style="bold red")
        reason = reader.queue_capabilities(self.queue).read_only_reason if reader else None
        if reason:
            t.append(f"  read-only: {one_line(reason, 100)}", style="yellow")
        t.append_text(workers_text(self.gauges, self.status))
        self.query_one("#queue-title", Static).update(t)

    def _states(self) -> list[str]:
        if self.status is None or self.status.malformed:
            return [self.state]
        return [s for s, v in self.status.counts.items() if v is not None]

    def _render_tabs(self) -> None:
        tabs = self.query_one(Tabs)
        states = self._states()
        for state in states:
            label = f"{state.replace('_', ' ')} {fmt.count(self.status.counts.get(state)) if self.status else ''}"
            tab_id = f"state-{state}"
            existing = tabs.query(f"#{tab_id}")
            if existing:
                existing.first(Tab).label = Text(one_line(label, 40))
            else:
                later = [f"state-{s}" for s in states[states.index(state) + 1:] if tabs.query(f"#state-{s}")]
                tabs.add_tab(Tab(Text(one_line(label, 40)), id=tab_id), before=later[0] if later else None)
        if tabs.active != f"state-{self.state}" and self.state in states:
            tabs.active = f"state-{self.state}"

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is None or event.tab.id is None:
            return
        self._switch_state(event.tab.id.removeprefix("state-"))

    def _switch_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.query_one(ConnectionBar).show(self.snapshots, getattr(self.app, "frozen", False))
            self.cursors = [None]
            self.marks.clear()
            self.load_page()

    # -- paging --------------------------------------------------------------------------
    def load_page(self) -> None:
        cursor = self.cursors[-1]
        state = self.state
        self.run_worker(partial(self._fetch_page, state, cursor), exclusive=True, group="page")

    async def _fetch_page(self, state: str, cursor: str | None) -> None:
        try:
            page = await self.app.backend_call(
                self.queue, lambda r: r.page(self.queue, state, cursor, PAGE_SIZE), f"listing {state} jobs"
            )
        except Exception as exc:  # shown on screen, never a crash
            self.page_error = str(exc)
            self._render_page_info()
            return
        if state != self.state or cursor != self.cursors[-1] or not self.is_attached:
            return  # the user moved on meanwhile (another state, page, or off this screen)
        self.page, self.page_error = page, None
        self._shown_at = (state, len(self.cursors))
        try:
            self._render_jobs()
        except NoMatches:
            pass  # the screen was closed while the page was on its way

    def _filtered_jobs(self):
        if self.page is None:
            return []
        if not self.filter_text:
            return self.page.jobs
        needle = self.filter_text.lower()
        return [j for j in self.page.jobs if needle in j.id.lower() or needle in (j.name or "").lower()
                or (j.failed_reason and needle in j.failed_reason.text.lower())]

    def _render_jobs(self) -> None:
        table = self.query_one("#job-table", DataTable)
        jobs = self._filtered_jobs()
        ids = [j.id for j in jobs]
        selected = self._shown_ids[table.cursor_row] if self._shown_ids and 0 <= table.cursor_row < len(self._shown_ids) else None
        if ids != self._shown_ids:
            table.clear()
            for j in jobs:
                when = j.finished_ms or j.processed_ms or j.created_ms
                table.add_row(
                    Text(("● " if j.id in self.marks else "") + one_line(j.id, 36),
                         style="bold magenta" if j.id in self.marks else ""),
                    Text("MALFORMED", style="bold reverse red") if j.malformed else Text(one_line(j.name or "-", 24)),
                    Text(fmt.clock(when, self.app.settings.utc)[5:19] if when else "-", style="dim"),
                    Text("-" if j.attempts_made is None else str(j.attempts_made), justify="right"),
                    Text(one_line(j.malformed or (j.failed_reason.text if j.failed_reason else ""), 80), style="red"),
                    key=j.id,
                )
            self._shown_ids = ids
            if selected in ids:
                table.move_cursor(row=ids.index(selected))
        self._render_page_info()
        if ids and self._detail_for not in ids:
            self.show_detail(ids[min(table.cursor_row, len(ids) - 1)] if table.cursor_row >= 0 else ids[0])
        if not ids:
            self.query_one(JobDetailView).show_empty(f"no {self.state.replace('_', ' ')} jobs on this page")
            self._detail_for = None

    def _render_page_info(self) -> None:
        info = self.query_one("#page-info", Static)
        if self.page_error:
            info.update(Text(f"⚠ {one_line(self.page_error, 150)}", style="bold red"))
            return
        if self.page is None:
            info.update("loading…")
            return
        more, back = ("  n: next page" if self.page.next_cursor else ""), ("  p: previous" if len(self.cursors) > 1 else "")
        filt = f"  filter {one_line(repr(self.filter_text), 40)}: {len(self._filtered_jobs())} shown" if self.filter_text else ""
        if self.marks:
            keys = hint(["retry", "purge"], lambda a: self.check_action(a, ()) is not False)
            filt += f"  {len(self.marks)} marked" + (f" ({keys})" if keys else "")
        bad = sum(1 for j in self.page.jobs if j.malformed)
        filt += f"  {bad} could not be read (MALFORMED)" if bad else ""
        line = page_line(len(self.cursors), len(self.page.jobs), self.page.total, bool(self.page.next_cursor),
                         self.state.replace("_", " "))
        info.update(Text(f"{line}{more}{back}{filt}", style="dim"))

    def _page_on_screen(self) -> bool:
        """The rows shown are the page that ``cursors`` points at (no page move still loading)."""
        return self.page is not None and self._shown_at == (self.state, len(self.cursors))

    def action_next_page(self) -> None:
        if self._page_on_screen() and self.page is not None and self.page.next_cursor:
            self.cursors.append(self.page.next_cursor)
            self.load_page()

    def action_prev_page(self) -> None:
        if self._page_on_screen() and len(self.cursors) > 1:
            self.cursors.pop()
            self.load_page()

    # -- detail --------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.show_detail(event.row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show_job()

    def show_detail(self, job_id: str) -> None:
        self._detail_for = job_id
        self.query_one(JobDetailView).show_loading(job_id)
        self.run_worker(partial(self._fetch_detail, job_id), exclusive=True, group="detail")

    async def _fetch_detail(self, job_id: str) -> None:
        await asyncio.sleep(DETAIL_SETTLE_S)  # cancelled here when the cursor moves on
        try:
            detail: JobDetail | None = await self.app.backend_call(
                self.queue, lambda r: r.job(self.queue, job_id), f"reading job {job_id}"
            )
        except Exception as exc:
            if self._detail_for == job_id:
                self.query_one(JobDetailView).show_error(job_id, str(exc))
            return
        if self._detail_for == job_id and self.is_attached:
            try:
                self.query_one(JobDetailView).show(job_id, detail)
            except NoMatches:
                pass  # the screen was closed meanwhile

    def action_show_job(self) -> None:
        from console.screens.job import JobScreen

        job_id = self._highlighted_id()
        if job_id is not None:
            self.app.push_screen(JobScreen(self.queue, job_id))

    def action_toggle_detail(self) -> None:
        detail = self.query_one("#detail")
        self._detail_shown = detail.has_class("-hidden")
        detail.set_class(not self._detail_shown, "-hidden")

    # -- navigation ----------------------------------------------------------------------
    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("-shown"):
            box.value = ""
            box.remove_class("-shown")
            self.filter_text = ""
            self._render_jobs()
            self.query_one("#job-table").focus()
            return
        if self.query_one("#detail").has_focus_within or self.focused is self.query_one("#detail"):
            self.query_one("#job-table").focus()
            return
        self.app.pop_screen()

    def action_next_state(self) -> None:
        self._step_state(+1)

    def action_prev_state(self) -> None:
        self._step_state(-1)

    def _step_state(self, step: int) -> None:
        """tab / shift+tab: the state switches at once, and the tab follows. (Moving the tab and
        switching on its TabActivated message lost the key when a status refresh came in between:
        _render_tabs put the tab back on the old state.)"""
        states = self._states()
        if self.state not in states:
            return
        state = states[(states.index(self.state) + step) % len(states)]
        self._switch_state(state)
        tabs = self.query_one(Tabs)
        if tabs.query(f"#state-{state}"):
            tabs.active = f"state-{state}"

    def refilter(self) -> None:
        self._render_jobs()

    # -- mutations (through console.actions, on the backend thread) -----------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITES and self.app.settings.read_only:
            return False  # not offered in read-only mode (and the action layer refuses anyway)
        capability = CAPABILITY.get(action)
        if capability is not None:
            poller = self.app.poller_for(self.queue)
            reader = poller.reader_for(self.queue) if poller else None
            if reader is not None and not getattr(reader.queue_capabilities(self.queue), capability):
                return False  # this queue (system, layout or version) cannot do it: the key is not offered
        return True

    def _highlighted_id(self) -> str | None:
        table = self.query_one("#job-table", DataTable)
        if self._shown_ids and 0 <= table.cursor_row < len(self._shown_ids):
            return self._shown_ids[table.cursor_row]
        return None

    def action_mark(self) -> None:
        job_id = self._highlighted_id()
        if job_id is None:
            return
        self.marks.symmetric_difference_update({job_id})
        table = self.query_one("#job-table", DataTable)
        row = table.cursor_row
        self._anchor = row
        self._shown_ids = []
        self._render_jobs()
        table.move_cursor(row=min(row + 1, table.row_count - 1))
        self._render_page_info()

    def action_mark_range(self) -> None:
        """Mark every row from the last marked row to the cursor (this page)."""
        table = self.query_one("#job-table", DataTable)
        row = table.cursor_row
        start = self._anchor if self._anchor is not None else row
        lo, hi = sorted((start, row))
        self.marks.update(self._shown_ids[lo:hi + 1])
        self._anchor = row
        self._shown_ids = []
        self._render_jobs()
        table.move_cursor(row=row)
        self._render_page_info()

    def action_retry(self) -> None:
        self._mutate("retry")

    def action_purge(self) -> None:
        self._mutate("purge")

    def _mutate(self, action: str) -> None:
        if self.state not in ("failed", "completed"):
            self.notify(f"{action} applies to failed or completed jobs", severity="warning")
            return
        ids = sorted(self.marks) if self.marks else [i for i in [self._highlighted_id()] if i]
        if ids and (run := self.claim_mutation(action)) is not None:
            # an app worker, not exclusive: neither a second keypress nor leaving the view cancels it
            self.app.run_worker(self._mutate_flow(run, action, ids), group="mutate")

    async def _mutate_flow(self, run, action: str, ids: list[str]) -> None:
        try:
            acts = self.app.actions()
            reset, ok = False, TOGGLE
            while ok == TOGGLE:  # t in the retry confirmation: preview again with attempts reset
                try:
                    acts.check_allowed(action, self.queue)
                    preview = await self.app.on_backend(acts.preview(
                        action, Selection(self.queue, state=self.state, job_ids=ids), reset_attempts=reset))
                except Exception as exc:
                    self.notify(one_line(str(exc), 200), severity="error")
                    return
                ok = await self.app.push_screen_wait(ConfirmScreen(
                    confirm_title(action, [preview]), preview_text(preview, self.app.settings.utc),
                    toggle="reset attempts" if action == "retry" else None, toggle_on=reset))
                reset = not reset if ok == TOGGLE else reset
            if not ok:
                self.notify(f"{action} cancelled: nothing changed")
                return
            [(_, report)] = await self.execute_previews(run, [preview])
        finally:
            self.release_mutation(run)
        if isinstance(report, Exception):
            self.notify(one_line(str(report), 200), severity="error")
            return
        self.notify(one_line(report.summary(), 300), severity="information" if report.complete else "error",
                    timeout=8)
        if self.is_attached:
            self.marks.clear()
            self._shown_ids = []
            self.load_page()

    def action_promote(self) -> None:
        if self.state != "delayed":
            self.notify("promote applies to delayed jobs (the delayed tab)", severity="warning")
            return
        self._simple("promote")

    def action_cancel_jobs(self) -> None:
        if self.state in ("completed", "failed", "cancelled"):
            self.notify("only jobs not yet finished can be cancelled", severity="warning")
            return
        self._simple("cancel")

    def _simple(self, action: str) -> None:
        ids = sorted(self.marks) if self.marks else [i for i in [self._highlighted_id()] if i]
        if ids and (run := self.claim_mutation(action)) is not None:
            self.app.run_worker(self._simple_flow(run, action, ids), group="mutate")

    async def _simple_flow(self, run, action: str, ids: list[str]) -> None:
        try:
            await self._simple_steps(run, action, ids)
        finally:
            self.release_mutation(run)

    async def _simple_steps(self, run, action: str, ids: list[str]) -> None:
        acts = self.app.actions()
        try:
            acts.check_allowed(action, self.queue)
        except Exception as exc:
            self.notify(one_line(str(exc), 200), severity="error")
            return
        body = Text(f"{action} {len(ids)} {self.state} jobs of {one_line(self.queue.qualified, 80)} at "
                    f"{one_line(self.queue.connection, 80)}\n"
                    + "\n".join(f"  {one_line(i, 60)}" for i in ids[:10]) + ("\n  …" if len(ids) > 10 else ""))
        if not await self.app.push_screen_wait(ConfirmScreen(f" {action} {len(ids)} jobs? ", body)):
            self.notify(f"{action} cancelled: nothing changed")
            return
        run.started, run.total = True, len(ids)
        try:
            report = await asyncio.shield(self.app.on_backend(acts.apply_to_ids(action, self.queue, ids)))
        except Exception as exc:
            self.notify(one_line(str(exc), 200), severity="error")
            return
        self.notify(one_line(report.summary(), 300), severity="information" if report.complete else "error")
        if self.is_attached:
            self.marks.clear()
            self._shown_ids = []
            self.load_page()

    def action_dead_letters(self) -> None:
        from console.screens.dead_letters import DeadLetterScreen

        self.app.push_screen(DeadLetterScreen(f"queue:{self.queue.qualified}"))

    def action_toggle_pause(self) -> None:
        if (run := self.claim_mutation("pause")) is not None:
            self.app.run_worker(self._pause_flow(run), group="mutate")

    async def _pause_flow(self, run) -> None:
        try:
            await self._pause_steps(run)
        finally:
            self.release_mutation(run)

    async def _pause_steps(self, run) -> None:
        paused = not (self.status.paused if self.status else False)
        verb = "pause" if paused else "resume"
        acts = self.app.actions()
        try:
            acts.check_allowed(verb, self.queue)
        except Refused as exc:
            self.notify(str(exc), severity="error")
            return
        try:  # how this store will pause (e.g. pg-boss: best-effort parking without the trigger)
            notes = await self.app.backend_call(self.queue, lambda r: r.pause_notes(self.queue, paused),
                                                f"checking how to {verb}")
        except BackendError as exc:
            notes = [f"could not check how to {verb}: {exc}"]
        body = Text(f"{verb} {one_line(self.queue.qualified, 80)} at {one_line(self.queue.connection, 80)}\n"
                    + ("Workers finish their active jobs and take no new ones until resumed." if paused
                       else "Workers start taking jobs again.")
                    + "".join(f"\nnote: {one_line(n, 200)}" for n in notes))
        if not await self.app.push_screen_wait(ConfirmScreen(f" {verb} queue {one_line(self.queue.name, 40)}? ", body)):
            return
        run.started, run.total = True, 1
        [result] = await asyncio.shield(self.app.on_backend(acts.set_paused([self.queue], paused)))
        if result["ok"]:
            self.notify(f"{verb}d {one_line(self.queue.name, 60)}"
                        + (f": {one_line(result['note'], 200)}" if result.get("note") else ""),
                        severity="warning" if result.get("note") else "information")
        else:
            self.notify(one_line(str(result.get("error")), 200), severity="error")
        self.app.action_refresh()
