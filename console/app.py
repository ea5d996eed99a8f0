"""The Textual application: a thin face over the pollers and readers.

Network I/O never runs on the UI event loop: pollers and every reader call run on the backend
thread (``console.poller.BackendThread``); results arrive as messages.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message

from backends.contract import QueueRef, Reader
from backends.errors import BackendError
from console.config import Settings
from console.connections import connect_options
from console.keymap import for_screen
from console.poller import BackendThread, Poller, Snapshot
from console.safe_text import clean
from themes import DEFAULT_THEME, STYLESHEET, THEMES

T = TypeVar("T")


def bindings_for(screen: str) -> list[Binding]:
    return [Binding(k.keys, k.id, k.description, show=k.show, priority=k.priority) for k in for_screen(screen)]


class SnapshotArrived(Message):
    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class QueueConsoleApp(App):
    TITLE = "queue-console"
    CSS_PATH = str(STYLESHEET)
    BINDINGS = bindings_for("app")

    def __init__(self, settings: Settings, banner_note: str | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.banner_note = banner_note
        self.snapshots: dict[str, Snapshot] = {}
        self.pollers: list[Poller] = []
        self.backend_thread: BackendThread | None = None
        self.frozen = False
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = settings.theme if settings.theme in self.available_themes else DEFAULT_THEME

    # -- lifecycle ------------------------------------------------------------------------
    def on_mount(self) -> None:
        from console.screens.overview import OverviewScreen

        self.backend_thread = BackendThread()
        options = connect_options(self.settings)
        for url in self.settings.effective_urls():
            poller = Poller(url, options, self.settings.refresh, self._from_backend)
            self.pollers.append(poller)
            self.backend_thread.submit(poller.run())
        self.push_screen(OverviewScreen())

    def _from_backend(self, snapshot: Snapshot) -> None:
        # called on the backend thread; post_message is thread-safe
        self.post_message(SnapshotArrived(snapshot))

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        self.snapshots[message.snapshot.connection] = message.snapshot
        if self.frozen:
            return
        self.broadcast_snapshots()

    def broadcast_snapshots(self) -> None:
        for screen in self.screen_stack:
            update = getattr(screen, "update_from_snapshots", None)
            if update is None or not screen.is_mounted:
                continue
            try:
                update(list(self.snapshots.values()))
            except NoMatches:
                pass  # the screen is being composed or torn down; the next snapshot will do

    async def on_unmount(self) -> None:
        if self.backend_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.backend_thread.stop)

    # -- backend calls from screens -------------------------------------------------------
    def poller_for(self, queue: QueueRef) -> Poller | None:
        for poller in self.pollers:
            if poller.url == queue.connection:
                return poller
        return None

    def actions(self):
        """The action layer, resolving queues to readers through the pollers (backend thread)."""
        from console.actions import Actions

        def reader_for(queue: QueueRef) -> Reader:
            poller = self.poller_for(queue)
            reader = poller.reader_for(queue) if poller else None
            if reader is None:
                raise BackendError(f"not connected to {queue.connection}")
            return reader

        from console.config import load_policy_for

        return Actions(reader_for, read_only=self.settings.read_only, timeout=max(self.settings.op_timeout, 30),
                       policy=load_policy_for(self.settings))

    async def on_backend(self, coro) -> Any:
        """Await a coroutine run on the backend thread (never on the UI loop)."""
        if self.backend_thread is None:
            raise BackendError("not connected")
        return await asyncio.wrap_future(self.backend_thread.submit(coro))

    async def backend_call(self, queue: QueueRef, fn: Callable[[Reader], Awaitable[T]], what: str) -> T:
        """Run a reader call on the backend thread (with its timeout) and await the result."""
        poller = self.poller_for(queue)
        if poller is None or self.backend_thread is None:
            raise BackendError(f"no connection for {queue.connection}")
        future = self.backend_thread.submit(poller.call(queue, fn, what))
        return await asyncio.wrap_future(future)

    # -- notifications ------------------------------------------------------------------
    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Every notification (screens' and widgets' ``notify`` end here): never markup, always
        cleaned. Messages carry queue names and errors: ``[@click=app.quit]`` stays text, and a
        name such as ``crash[/x]q`` cannot raise MarkupError."""
        super().notify(clean(str(message)), title=clean(title), severity=severity, timeout=timeout, markup=False)

    # -- app-wide actions ----------------------------------------------------------------
    def action_help(self) -> None:
        from console.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self.notify("updates frozen (z to resume)" if self.frozen else "updates resumed", timeout=2)
        if not self.frozen:
            self.broadcast_snapshots()
        for screen in self.screen_stack:
            hook = getattr(screen, "frozen_changed", None)
            if hook is not None:
                hook(self.frozen)

    def action_refresh(self) -> None:
        if self.backend_thread is None:
            return
        for poller in self.pollers:
            self.backend_thread.loop.call_soon_threadsafe(poller.refresh_now)
        reload = getattr(self.screen, "load_page", None)
        if reload is not None:
            reload()  # the page on screen too, whatever its refresh cadence


def run_app(settings: Settings, banner_note: str | None = None, **kwargs: Any) -> None:
    QueueConsoleApp(settings, banner_note=banner_note).run(**kwargs)
