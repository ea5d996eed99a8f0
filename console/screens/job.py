"""The full-screen job view (``enter`` on a job): the whole job detail — payload, error history
latest first, stack traces, logs, options — with the whole terminal to scroll in. ``esc`` goes
back to the list, with its page, cursor and marks as they were."""
from __future__ import annotations

from functools import partial

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from backends.contract import JobDetail, QueueRef
from console.app import bindings_for
from console.safe_text import one_line
from console.widgets.footer import KeyFooter
from console.widgets.job_detail import JobDetailView
from console.widgets.status_bar import ConnectionBar


def parent_of(extra: dict[str, str]) -> tuple[str, str, str] | None:
    """(namespace, queue name, job id) of a flow child's parent, from the job record's ``parent``
    (BullMQ: ``{"id": ..., "queueKey": "<prefix>:<queue>"}``) or ``parentKey`` (``<prefix>:<queue>:<id>``)."""
    import json

    raw = extra.get("parent")
    if raw:
        try:
            data = json.loads(raw)
            prefix, _, name = str(data.get("queueKey", "")).rpartition(":")
            if prefix and name and data.get("id") is not None:
                return prefix, name, str(data["id"])
        except (ValueError, AttributeError):
            pass
    key = extra.get("parentKey") or ""
    rest, _, job_id = key.rpartition(":")
    prefix, _, name = rest.rpartition(":")
    return (prefix, name, job_id) if prefix and name and job_id else None


class JobScreen(Screen):
    BINDINGS = bindings_for("job")

    def crumb(self) -> str:
        return f"job {one_line(self.job_id, 30)}"

    def __init__(self, queue: QueueRef, job_id: str) -> None:
        super().__init__()
        self.queue = queue
        self.job_id = job_id
        self.detail: JobDetail | None = None
        self.flow_parent: tuple[QueueRef, str] | None = None  # a flow child's parent, when it is on screen

    def compose(self) -> ComposeResult:
        yield ConnectionBar(id="connections")
        yield Static(id="queue-title")
        with VerticalScroll(id="job-scroll"):
            yield JobDetailView(id="job-full")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(ConnectionBar).show(list(self.app.snapshots.values()), getattr(self.app, "frozen", False))
        self.query_one("#queue-title", Static).update(Text.assemble(
            (one_line(self.queue.name, 50), "bold"), ("  ›  job ", "dim"), (one_line(self.job_id, 60), "bold")))
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
        self.flow_parent = self._find_parent(detail)
        if self.flow_parent is not None:
            queue, parent_id = self.flow_parent
            view = self.query_one(JobDetailView)
            view.update(Group(Text.assemble(("parent ", "bold"), (f"{one_line(queue.name, 50)} / job {one_line(parent_id, 60)}", "bold cyan"),
                                            ("  (enter opens it)", "dim")), view.content))
        self.refresh_bindings()

    def _find_parent(self, detail: JobDetail | None):
        where = parent_of(detail.extra) if detail is not None else None
        if where is None:
            return None
        prefix, name, parent_id = where
        queues = [s.queue for snap in self.app.snapshots.values() for s in snap.statuses]
        match = next((q for q in queues if q.namespace == prefix and q.name == name
                      and q.connection == self.queue.connection), None)
        return (match, parent_id) if match is not None else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_parent":
            return self.flow_parent is not None
        return True

    def action_open_parent(self) -> None:
        if self.flow_parent is not None:
            queue, parent_id = self.flow_parent
            self.app.push_screen(JobScreen(queue, parent_id))

    def load_page(self) -> None:  # r (refresh now) reads the job again
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
