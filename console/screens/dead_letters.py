"""Failures: the failed jobs of every queue on every connection, grouped by error signature.

A filter (console/filters.py) narrows what is read; reading runs on the backend thread in bounded
pages with a cap that the screen states. Enter on a group lists its jobs; a job shows its detail
with the latest error first. Marks (space, ``a`` for all matching jobs of the group) and the
actions (R retry, D purge) go through console.actions with a confirmation per run.
"""
from __future__ import annotations


from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from backends.contract import QueueRef
from console import formatting as fmt
from console.actions import Selection
from console.app import bindings_for
from console.screens.navigation import TableNavigation
from console.dlq_scan import PAYLOAD_CAP, ROW_CAP, ScanResult, scan_failed
from console.filters import FilterError, parse_filter
from console.keymap import WRITES, hint
from console.screens.progress import MutationHost
from console.poller import Snapshot
from console.safe_text import one_line
from console.screens.confirm import TOGGLE, ConfirmScreen, confirm_title, preview_text
from console.triage import FailedJob, Group, group_jobs
from console.widgets.job_detail import JobDetailView
from console.widgets.footer import KeyFooter
from console.widgets.status_bar import ConnectionBar, ErrorBanner


def queue_counts(group: Group) -> str:
    """``mail 4 · sms 2``: the group's failed jobs per queue, most first (``backend:name`` where two
    queues of the group share a name)."""
    counts = Counter(q.key for q, _ in group.members)
    refs = {q.key: q for q, _ in group.members}
    names = [refs[k].name for k in counts]
    label = {k: refs[k].name if names.count(refs[k].name) == 1 else refs[k].qualified for k in counts}
    return " · ".join(f"{label[k]} {n:,}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], label[kv[0]])))


class DeadLetterScreen(MutationHost, TableNavigation, Screen):
    BINDINGS = bindings_for("dlq")
    crumb = "failures"

    def __init__(self, query: str = "") -> None:
        super().__init__()
        self.query_text = query
        self._shown_sigs: list[str] = []  # signature of each group row on screen
        self.result: ScanResult | None = None
        self.groups: list[Group] = []
        self.group_items: list[tuple[QueueRef, FailedJob]] = []
        self.marks: set[tuple[tuple, str]] = set()  # (queue key, job id)
        self.scanning = False
        self.error: str | None = None
        self.progress: tuple[int, int] = (0, 0)
        self._anchor: int | None = None

    def compose(self) -> ComposeResult:
        yield ConnectionBar(id="connections")
        yield ErrorBanner(id="banner", classes="banner")
        yield Input(value=self.query_text, id="dlq-filter",
                    placeholder='filter: queue:emails error:timeout age:>2h data.customer:42 (enter to apply)')
        yield Static(id="scan-info")
        yield DataTable(id="groups", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="body"):
            with Vertical(id="jobs"):
                yield DataTable(id="group-jobs", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="detail"):
                yield JobDetailView(id="job-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        groups = self.query_one("#groups", DataTable)
        # queues (with a count each) before the signature, so that 80 columns show them
        for key, label in (("count", "count"), ("queues", "queues"), ("signature", "error signature"),
                           ("first", "first seen"), ("last", "last seen")):
            groups.add_column(label, key=key)
        jobs = self.query_one("#group-jobs", DataTable)
        for key, label in (("queue", "queue"), ("id", "id"), ("when", "failed"), ("error", "error")):
            jobs.add_column(label, key=key)
        groups.focus()
        self.update_from_snapshots(list(self.app.snapshots.values()))
        self.rescan()

    def update_from_snapshots(self, snapshots: list[Snapshot]) -> None:
        self.query_one(ConnectionBar).show(snapshots, getattr(self.app, "frozen", False))
        self.query_one(ErrorBanner).show(snapshots)
        self.snapshots = snapshots

    # -- scanning ------------------------------------------------------------------------
    def rescan(self) -> None:
        try:
            flt = parse_filter(self.query_text)
        except FilterError as exc:
            self.error = str(exc)
            self._render_info()
            return
        self.error = None
        self.scanning, self.progress = True, (0, 0)
        self._render_info()
        self.run_worker(self._scan(flt), group="scan", exclusive=True)

    async def _scan(self, flt) -> None:
        targets = []
        for snap in self.app.snapshots.values():  # the copies the pollers handed to the UI
            poller = next((p for p in self.app.pollers if p.url == snap.connection), None)
            for disc in snap.discoveries if poller else []:
                for q in disc.queues:
                    reader = poller.reader_for(q)
                    if reader is not None:
                        targets.append((q, reader))
        def progress(scanned: int, matched: int) -> None:  # called on the backend thread
            self.app.call_from_thread(self._show_progress, scanned, matched)

        try:
            result = await self.app.on_backend(scan_failed(targets, flt, None, progress, light=True))
        except Exception as exc:
            self.error, self.scanning = str(exc), False
            self._render_info()
            return
        self.result, self.scanning = result, False
        self.groups = group_jobs(result.items)
        self._render_groups()
        self._render_info()

    def _show_progress(self, scanned: int, matched: int) -> None:
        self.progress = (scanned, matched)
        if self.scanning:
            self._render_info()

    def _render_info(self) -> None:
        info = self.query_one("#scan-info", Static)
        if self.error:
            info.update(Text(f"⚠ {one_line(self.error, 200)}", style="bold red"))
            return
        if self.scanning or self.result is None:
            scanned, matched = self.progress
            info.update(Text(f"reading failed jobs… {scanned:,} read, {matched:,} match", style="dim"))
            return
        r = self.result
        t = Text(f"{len(r.items):,} failed jobs in {len(self.groups)} groups (read {r.scanned:,})", style="bold")
        if r.capped:
            cap = PAYLOAD_CAP if parse_filter(self.query_text).needs_payload else ROW_CAP
            t.append(f"  · capped at the newest {cap:,} per queue in {', '.join(one_line(c, 30) for c in r.capped[:4])}",
                     style="yellow")
        if r.errors:
            t.append(f"  · {len(r.errors)} queues unreadable: {one_line(r.errors[0], 80)}", style="red")
        if self.marks:
            keys = hint(["retry", "purge"], lambda a: self.check_action(a, ()) is not False)
            t.append(f"  · {len(self.marks)} marked" + (f" ({keys})" if keys else ""), style="magenta")
        info.update(t)

    def _render_groups(self) -> None:
        """Draw the groups; after a rescan (e.g. after a retry) the cursor stays on the group it was
        on (same signature), or at the same place when that group is gone."""
        table = self.query_one("#groups", DataTable)
        was = table.cursor_row if table.row_count else None
        was_sig = self._shown_sigs[was] if was is not None and was < len(self._shown_sigs) else None
        table.clear()
        utc = self.app.settings.utc
        for i, g in enumerate(self.groups):
            table.add_row(Text(f"{g.count:,}", justify="right"), Text(one_line(queue_counts(g), 60)),
                          Text(one_line(g.signature, 80), style="red"), Text(fmt.clock(g.first_ms, utc)[:19]),
                          Text(fmt.clock(g.last_ms, utc)[:19]), key=str(i))
        self._shown_sigs = [g.signature for g in self.groups]
        if not self.groups:
            self._show_group(None)
            return
        index = self._shown_sigs.index(was_sig) if was_sig in self._shown_sigs else min(was or 0, len(self.groups) - 1)
        table.move_cursor(row=index)
        self._show_group(index)

    def _show_group(self, index: int | None) -> None:
        jobs = self.query_one("#group-jobs", DataTable)
        jobs.clear()
        if index is None or index >= len(self.groups):
            self.group_items = []
            self.query_one(JobDetailView).show_empty("no failed jobs match")
            return
        self.group_items = self.groups[index].members
        self._render_jobs()

    def _render_jobs(self) -> None:
        jobs = self.query_one("#group-jobs", DataTable)
        row = jobs.cursor_row
        jobs.clear()
        for i, (q, j) in enumerate(self.group_items[:2000]):
            marked = (q.key, j.id) in self.marks
            jobs.add_row(Text(one_line(q.qualified, 30)),
                         Text(("● " if marked else "") + one_line(j.id, 30), style="bold magenta" if marked else ""),
                         Text(fmt.clock(j.finished_ms, self.app.settings.utc)[5:19], style="dim"),
                         Text(one_line(j.reason_text, 80), style="red"), key=str(i))
        if self.group_items:
            jobs.move_cursor(row=min(max(row, 0), len(self.group_items[:2000]) - 1))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "groups" and event.row_key.value is not None:
            self._show_group(int(event.row_key.value))
        elif event.data_table.id == "group-jobs" and event.row_key.value is not None:
            q, j = self.group_items[int(event.row_key.value)]
            self.run_worker(self._detail(q, j.id), group="detail", exclusive=True)

    async def _detail(self, q: QueueRef, job_id: str) -> None:
        view = self.query_one(JobDetailView)
        view.show_loading(job_id)
        try:
            detail = await self.app.backend_call(q, lambda r: r.job(q, job_id), f"reading job {job_id}")
        except Exception as exc:
            view.show_error(job_id, str(exc))
            return
        view.show(job_id, detail)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "groups":
            self.query_one("#group-jobs").focus()

    # -- filter --------------------------------------------------------------------------
    def action_edit_filter(self) -> None:
        self.query_one("#dlq-filter", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_text = event.value
        self.marks.clear()
        self.query_one("#groups").focus()
        self.rescan()

    def action_rescan(self) -> None:
        self.rescan()

    def action_back(self) -> None:
        if self.focused is self.query_one("#group-jobs") or self.focused is self.query_one("#dlq-filter"):
            self.query_one("#groups").focus()
            return
        self.app.pop_screen()

    # -- marks and actions ---------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITES and self.app.settings.read_only:
            return False
        return True

    def _current(self) -> tuple[QueueRef, FailedJob] | None:
        jobs = self.query_one("#group-jobs", DataTable)
        if self.group_items and 0 <= jobs.cursor_row < len(self.group_items):
            return self.group_items[jobs.cursor_row]
        return None

    def action_mark(self) -> None:
        cur = self._current()
        if cur is None:
            return
        self.marks.symmetric_difference_update({(cur[0].key, cur[1].id)})
        jobs = self.query_one("#group-jobs", DataTable)
        row = jobs.cursor_row
        self._anchor = row
        self._render_jobs()
        jobs.move_cursor(row=min(row + 1, jobs.row_count - 1))
        self._render_info()

    def action_mark_range(self) -> None:
        jobs = self.query_one("#group-jobs", DataTable)
        row = jobs.cursor_row
        start = self._anchor if self._anchor is not None else row
        lo, hi = sorted((start, row))
        self.marks.update((q.key, j.id) for q, j in self.group_items[lo:hi + 1])
        self._anchor = row
        self._render_jobs()
        self._render_info()

    def action_mark_all(self) -> None:
        """Every job of the selected group that the scan matched (server-side pages, up to the cap)."""
        self.marks.update((q.key, j.id) for q, j in self.group_items)
        self._render_jobs()
        self._render_info()

    def action_retry(self) -> None:
        self._act("retry")

    def action_purge(self) -> None:
        self._act("purge")

    def _act(self, action: str) -> None:
        chosen = [(q, j) for q, j in (self.result.items if self.result else []) if (q.key, j.id) in self.marks]
        if not chosen:
            cur = self._current()
            chosen = [cur] if cur else []
        if chosen and (run := self.claim_mutation(action)) is not None:
            # an app worker, not exclusive: neither a second keypress nor leaving the view cancels it
            self.app.run_worker(self._act_flow(run, action, chosen), group="mutate")

    async def _act_flow(self, run, action: str, chosen: list[tuple[QueueRef, FailedJob]]) -> None:
        try:
            results = await self._act_steps(run, action, chosen)
        finally:
            self.release_mutation(run)
        if results is None:
            return
        summaries = [f"{p.selection.queue.qualified}: {r.summary() if not isinstance(r, (Exception, str)) else r}"
                     for p, r in results]
        self.notify(one_line("; ".join(summaries), 400), timeout=10)
        if self.is_attached:
            self.marks.clear()
            self.rescan()

    async def _act_steps(self, run, action: str, chosen: list[tuple[QueueRef, FailedJob]]):
        acts = self.app.actions()
        by_queue: dict[tuple, tuple[QueueRef, list[str]]] = {}
        for q, j in chosen:
            by_queue.setdefault(q.key, (q, []))[1].append(j.id)
        reset, ok = False, TOGGLE
        while ok == TOGGLE:  # t in the retry confirmation: preview again with attempts reset
            previews = []
            try:
                for q, ids in by_queue.values():
                    acts.check_allowed(action, q)
                    previews.append(await self.app.on_backend(acts.preview(action, Selection(q, job_ids=ids),
                                                                           reset_attempts=reset)))
            except Exception as exc:
                self.notify(one_line(str(exc), 200), severity="error")
                return None
            body = Text()
            for p in previews:
                body.append_text(preview_text(p, self.app.settings.utc))
                body.append("\n")
            ok = await self.app.push_screen_wait(ConfirmScreen(
                confirm_title(action, previews), body, toggle="reset attempts" if action == "retry" else None,
                toggle_on=reset))
            reset = not reset if ok == TOGGLE else reset
        if not ok:
            self.notify(f"{action} cancelled: nothing changed")
            return None
        return await self.execute_previews(run, previews)
