"""A running mutation in the TUI: its progress, and the one way to stop it (an explicit cancel).

No keypress of the screens below cancels a running mutation: a second R, D or P only says that
one is running. ``x`` (here, or on the queue and failures views once this is hidden) asks the
action layer to stop after the batch in flight; the report and the audit record then say
"N of M, cancelled".
"""
from __future__ import annotations

import asyncio
import threading
import weakref

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console.app import bindings_for
from console.safe_text import one_line


class MutationRun:
    """One running mutation. Its cancel request crosses from the UI thread to the backend loop,
    where the action layer waits on an ``asyncio.Event`` between batches."""

    def __init__(self, action: str, total: int) -> None:
        self.action = action
        self.total = total
        self.done = 0
        self.started = False  # False while its preview is read and confirmed
        self.cancellable = False  # retry/purge in batches; promote, cancel and pause are one short step
        self._lock = threading.Lock()
        self._requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def event(self) -> asyncio.Event:
        """The cancel event, made on the running (backend) loop; set at once if already requested."""
        with self._lock:
            if self._event is None:
                self._event = asyncio.Event()
                self._loop = asyncio.get_running_loop()
                if self._requested:
                    self._event.set()
            return self._event

    def cancel(self) -> None:
        with self._lock:
            self._requested = True
            if self._loop is not None and self._event is not None:
                self._loop.call_soon_threadsafe(self._event.set)

    @property
    def cancel_requested(self) -> bool:
        return self._requested


class ProgressScreen(ModalScreen[None]):
    """``retry: 120 of 400`` while it runs; x cancels after the current batch, esc hides it."""

    BINDINGS = bindings_for("progress")

    def __init__(self, run: MutationRun, title: str) -> None:
        super().__init__()
        self.run = run
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(one_line(self.title_text, 120), style="bold reverse"))
            yield Static(id="progress-line")
            yield Static(id="progress-hint")

    def on_mount(self) -> None:
        self.refresh_progress()

    def refresh_progress(self) -> None:
        run = self.run
        self.query_one("#progress-line", Static).update(Text(f"{run.action}: {run.done} of {run.total}"))
        hint = ("cancelling: the run stops after the batch in flight" if run.cancel_requested else
                "x: cancel (after the current batch)    esc: hide (the run goes on; x on the view cancels it)")
        self.query_one("#progress-hint", Static).update(Text("\n" + hint, style="bold"))

    def action_cancel_mutation(self) -> None:
        self.run.cancel()
        self.refresh_progress()

    def action_hide(self) -> None:
        self.dismiss(None)


#: the mutation running in each app (one at a time: a second R/D/P says so instead of starting one)
_RUNNING: "weakref.WeakKeyDictionary[object, MutationRun]" = weakref.WeakKeyDictionary()


class MutationHost:
    """Mixin of the screens that start mutations (queue view, failures view)."""

    def mutation_busy(self) -> bool:
        """True (and says so) while a mutation of this app is being confirmed or running."""
        run = _RUNNING.get(self.app)  # type: ignore[attr-defined]
        if run is None:
            return False
        what = f"{run.done} of {run.total}" if run.started else "being confirmed"
        self.notify(f"a {run.action} is running ({what}); it goes on: x cancels it after the current batch",  # type: ignore[attr-defined]
                    severity="warning")
        return True

    def claim_mutation(self, action: str) -> MutationRun | None:
        """Reserve the app's one mutation slot (None, after a notice, when it is taken)."""
        if self.mutation_busy():
            return None
        run = MutationRun(action, 0)
        _RUNNING[self.app] = run  # type: ignore[attr-defined]
        return run

    def release_mutation(self, run: MutationRun) -> None:
        if _RUNNING.get(self.app) is run:  # type: ignore[attr-defined]
            del _RUNNING[self.app]  # type: ignore[attr-defined]

    def action_cancel_mutation(self) -> None:
        run = _RUNNING.get(self.app)  # type: ignore[attr-defined]
        if run is None or not run.started:
            self.notify("no retry or purge is running")  # type: ignore[attr-defined]
            return
        if not run.cancellable:
            self.notify(f"the {run.action} is one short step and cannot be cancelled")  # type: ignore[attr-defined]
            return
        run.cancel()
        self.notify(f"cancelling the {run.action}: it stops after the batch in flight")  # type: ignore[attr-defined]

    async def execute_previews(self, run: MutationRun, previews: list) -> list[tuple[object, object]]:
        """Run confirmed previews on the backend thread (planned retries of several queues side by
        side, interleaved as planned: Actions.execute_many), with the progress screen. Returns
        (preview, report or exception) pairs. The backend task is shielded: leaving
        the screen or a stray keypress never cancels it; only ``run.cancel()`` stops it, between
        batches."""
        app = self.app  # type: ignore[attr-defined]
        acts = app.actions()
        run.total = sum(p.count for p in previews)
        run.started = run.cancellable = True
        screen = ProgressScreen(run, f" {run.action} {run.total} jobs ")
        await app.push_screen(screen)
        loop = asyncio.get_running_loop()

        def show() -> None:
            if screen.is_attached:
                screen.refresh_progress()

        def progress(done: int, total: int) -> None:  # backend thread
            run.done = done
            loop.call_soon_threadsafe(show)

        async def go():
            return await acts.execute_many(previews, progress=progress, cancel=run.event())

        try:
            try:
                results = await asyncio.shield(app.on_backend(go()))
            except Exception as exc:
                results = [exc] * len(previews)
            run.done = sum(getattr(r, "done", 0) for r in results)
            return list(zip(previews, results))
        finally:
            if app.screen is screen:
                screen.dismiss(None)
