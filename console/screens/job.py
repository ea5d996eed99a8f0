"""The full-screen job view (``enter`` on a job): the whole job detail — payload, error history
latest first, stack traces, logs, options — with the whole terminal to scroll in. ``esc`` goes
back to the list, with its page, cursor and marks as they were.

Where the store has flows (``Capabilities.flows``), a list above the detail shows the job's flow
parent and its children (at most ``Flow.cap``, pending first) with their states and the pending
dependency count (``Reader.flow``); ``enter`` opens the highlighted one."""
from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from backends.contract import Flow, FlowJob, JobDetail, QueueRef
from console import formatting as fmt
from console.app import bindings_for
from console.safe_text import one_line
from console.widgets.footer import KeyFooter
from console.widgets.job_detail import JobDetailView
from console.widgets.status_bar import ConnectionBar


#: how a parent counts a child (BullMQ's getDependenciesCount names), as the flow list says it
DEPENDENCY_LABEL = {"unprocessed": "pending", "processed": "processed", "failed": "failed", "ignored": "ignored"}


def flow_title(flow: Flow) -> Text:
    """``flow  parent reports/41 (waiting children, 2 pending)  ·  children 120: 118 pending, 2 processed
    (50 listed)``"""
    t = Text("flow", style="bold")
    if flow.parent is not None:
        p = flow.parent
        t.append(f"  parent {one_line(p.queue, 30)}/{one_line(p.id, 40)} ", style="bold cyan")
        state = (p.state or "gone").replace("_", " ")
        pending = "" if flow.parent_pending is None else f", {fmt.count(flow.parent_pending)} pending"
        t.append(f"({state}{pending})", style="dim")
    if flow.total:
        parts = [f"{fmt.count(flow.counts.get(kind, 0))} {DEPENDENCY_LABEL[kind]}"
                 for kind in DEPENDENCY_LABEL if flow.counts.get(kind)]
        t.append(f"  children {fmt.count(flow.total)}: " + ", ".join(parts))
        if len(flow.children) < flow.total:
            t.append(f" ({len(flow.children)} of {fmt.count(flow.total)} listed)", style="dim")
    t.append("  enter opens", style="dim")
    return t


class JobScreen(Screen):
    BINDINGS = bindings_for("job")

    def crumb(self) -> str:
        return f"job {one_line(self.job_id, 30)}"

    def __init__(self, queue: QueueRef, job_id: str) -> None:
        super().__init__()
        self.queue = queue
        self.job_id = job_id
        self.detail: JobDetail | None = None
        self.flow: Flow | None = None
        #: the flow list's rows: (relation, the linked job)
        self.flow_rows: list[tuple[str, FlowJob]] = []

    def compose(self) -> ComposeResult:
        yield ConnectionBar(id="connections")
        yield Static(id="queue-title")
        yield Static(id="flow-title", classes="-hidden")
        yield DataTable(id="flow-table", cursor_type="row", classes="-hidden")
        with VerticalScroll(id="job-scroll"):
            yield JobDetailView(id="job-full")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(ConnectionBar).show(list(self.app.snapshots.values()), getattr(self.app, "frozen", False))
        self.query_one("#queue-title", Static).update(Text.assemble(
            (one_line(self.queue.name, 50), "bold"), ("  ›  job ", "dim"), (one_line(self.job_id, 60), "bold")))
        table = self.query_one("#flow-table", DataTable)
        for key, label in (("rel", "flow"), ("queue", "queue"), ("id", "job"), ("state", "state"), ("dep", "as child")):
            table.add_column(label, key=key)
        self.query_one("#job-scroll").focus()
        self.load()

    def load(self) -> None:
        self.query_one(JobDetailView).show_loading(self.job_id)
        self.run_worker(partial(self._fetch, self.job_id), exclusive=True, group="job")

    async def _fetch(self, job_id: str) -> None:
        try:
            detail = await self.app.backend_call(self.queue, lambda r: r.job(self.queue, job_id),
                                                 f"reading job {job_id}")
        except Exception as exc:  # shown, never a crash
            self.query_one(JobDetailView).show_error(job_id, str(exc))
            return
        self.detail = detail
        self.query_one(JobDetailView).show(job_id, detail)
        flow = None
        if detail is not None and self._can("flows"):
            try:
                flow = await self.app.backend_call(self.queue, lambda r: r.flow(self.queue, job_id),
                                                   f"reading the flow of job {job_id}")
            except Exception as exc:  # the detail stays; the flow says why it is missing
                self.notify(f"flow of job {job_id}: {exc}", severity="warning")
        self.show_flow(flow)

    def _can(self, capability: str) -> bool:
        poller = self.app.poller_for(self.queue)
        reader = poller.reader_for(self.queue) if poller else None
        return reader is not None and bool(getattr(reader.queue_capabilities(self.queue), capability, False))

    def show_flow(self, flow: Flow | None) -> None:
        self.flow = flow if flow is not None and not flow.empty else None
        self.flow_rows = []
        if self.flow is not None:
            if self.flow.parent is not None:
                self.flow_rows.append(("parent", self.flow.parent))
            self.flow_rows += [("child", child) for child in self.flow.children]
        title = self.query_one("#flow-title", Static)
        table = self.query_one("#flow-table", DataTable)
        title.set_class(self.flow is None, "-hidden")
        table.set_class(not self.flow_rows, "-hidden")
        table.clear()
        for relation, job in self.flow_rows:
            # Text, never str: a DataTable reads str cells as markup, and names and ids are queue data
            table.add_row(Text(relation), Text(one_line(job.queue, 30)), Text(one_line(job.id, 40)),
                          Text((job.state or "gone").replace("_", " ")),
                          Text(DEPENDENCY_LABEL.get(job.dependency or "", "")))
        if self.flow is not None:
            title.update(flow_title(self.flow))
            if self.flow_rows:
                table.focus()
        self.refresh_bindings()

    def _target(self) -> tuple[QueueRef | None, FlowJob] | None:
        table = self.query_one("#flow-table", DataTable)
        if not self.flow_rows or not 0 <= table.cursor_row < len(self.flow_rows):
            return None
        job = self.flow_rows[table.cursor_row][1]
        queues = [s.queue for snap in self.app.snapshots.values() for s in snap.statuses]
        match = next((q for q in queues if q.namespace == job.namespace and q.name == job.queue
                      and q.connection == self.queue.connection and q.backend == self.queue.backend), None)
        return match, job

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_flow_job":
            return bool(self.flow_rows)
        return True

    def action_open_flow_job(self) -> None:
        target = self._target()
        if target is None:
            return
        queue, job = target
        if queue is None:
            self.notify(f"queue {job.queue} ({job.namespace}) is not among the queues found here yet", severity="warning")
            return
        self.app.push_screen(JobScreen(queue, job.id))

    def load_page(self) -> None:  # r (refresh now) reads the job again
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
