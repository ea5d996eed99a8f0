"""The full-screen job view (``enter`` on a job): the whole job detail — payload, error history
latest first, stack traces, logs, options — with the whole terminal to scroll in. ``esc`` goes
back to the list, with its page, cursor and marks as they were."""
from __future__ import annotations

from functools import partial

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


class JobScreen(Screen):
    BINDINGS = bindings_for("job")

    def crumb(self) -> str:
        return f"job {one_line(self.job_id, 30)}"

    def __init__(self, queue: QueueRef, job_id: str) -> None:
        super().__init__()
        self.queue = queue
        self.job_id = job_id
        self.detail: JobDetail | None = None

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

    def load_page(self) -> None:  # r (refresh now) reads the job again
        self.load()

    def action_back(self) -> None:
        self.app.pop_screen()
