"""The Textual application: a thin face over the pollers and readers.

Network I/O never runs on the UI event loop: pollers and every reader call run on the backend
thread (``console.poller.BackendThread``); results arrive as messages.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Awaitable, Callable, TypeVar

from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message

from backends.contract import QueueRef, Reader
from backends.errors import BackendError
from console.config import Settings
from console.connections import connect_options
from console import keymap
from console.keymap import KEYS, for_screen
from console.poller import BackendThread, Poller, Snapshot
from console.safe_text import clean
from themes import DEFAULT_THEME, STYLESHEET, THEMES

T = TypeVar("T")


def bindings_for(screen: str) -> list[Binding]:
    """The table's default keys, each Binding with its id: a user keymap reaches them through
    Textual's keymap (``QueueConsoleApp.__init__``), whenever the screen's class was made."""
    return [Binding(k.keys, k.id, k.description, show=k.show, priority=k.priority, id=k.id)
            for k in for_screen(screen, KEYS)]


class View:
    """One view of the history: which it is (``key``), the screen showing it, and how to show it
    again once that screen is gone (a queue at the state it was last on, a job, the failures)."""

    def __init__(self, screen) -> None:
        self.screen = screen
        self.key = view_key(screen)

    def reopen(self):
        from console.screens.dead_letters import DeadLetterScreen
        from console.screens.job import JobScreen
        from console.screens.queue import QueueScreen

        old = self.screen
        if isinstance(old, QueueScreen):
            return QueueScreen(old.queue, old.state)
        if isinstance(old, JobScreen):
            return JobScreen(old.queue, old.job_id)
        if isinstance(old, DeadLetterScreen):
            return DeadLetterScreen(old.query_text)
        return None


def view_key(screen) -> tuple | None:
    """What a screen shows, for the view history; None for what is no view (help, ``:``,
    confirmations, progress): those have no breadcrumb."""
    if getattr(screen, "crumb", None) is None:
        return None
    queue = getattr(screen, "queue", None)
    return (type(screen).__name__, queue.key if queue is not None else None, getattr(screen, "job_id", None))


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
        keymap.use(settings.keys)  # [keys] of the config file (checked when the settings loaded)
        self.set_keymap(keymap.changed_keys())
        self.snapshots: dict[str, Snapshot] = {}
        self.pollers: list[Poller] = []
        self.backend_thread: BackendThread | None = None
        self.frozen = False
        self.command_history: list[str] = []
        #: the views shown, oldest first (``-`` goes back to the one before the current)
        self.view_history: list[View] = []
        self._poller_runs: list = []  # the pollers' futures on the backend thread (ctx cancels them)
        from console.config import config_path
        from themes import user_themes

        mine, self.theme_errors = user_themes(config_path().parent / "themes")
        for theme in (*THEMES, *mine):
            self.register_theme(theme)
        self.theme = settings.theme if settings.theme in self.available_themes else DEFAULT_THEME

    # -- lifecycle ------------------------------------------------------------------------
    def on_mount(self) -> None:
        from console.screens.overview import OverviewScreen

        for error in self.theme_errors:
            self.notify(error, severity="warning", timeout=10)
        if self.settings.theme != self.theme:
            self.notify(f"unknown theme {self.settings.theme!r}; using {self.theme} (:theme lists them)",
                        severity="warning")
        self.backend_thread = BackendThread()
        self._start_pollers()
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self.push_screen(OverviewScreen())

    def _start_pollers(self) -> None:
        assert self.backend_thread is not None
        options = connect_options(self.settings)
        for url in self.settings.effective_urls():
            poller = Poller(url, options, self.settings.refresh, self._from_backend)
            self.pollers.append(poller)
            self._poller_runs.append(self.backend_thread.submit(poller.run()))

    def _from_backend(self, snapshot: Snapshot) -> None:
        # called on the backend thread; post_message is thread-safe
        self.post_message(SnapshotArrived(snapshot))

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        if all(p.url != message.snapshot.connection for p in self.pollers):
            return  # a late one from a connection dropped by :ctx
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

    # -- the command palette (ctrl+p): the binding table's actions that work here and now ----
    #: ``:`` commands that need no name, offered in the palette too (those that change queues only
    #: outside read-only mode)
    PALETTE_COMMANDS = ("dlq", "pause all", "resume all", "ro")

    def get_system_commands(self, screen):
        """Every action of the binding table that works on ``screen`` now (``working_keys``: none
        that changes a queue in read-only mode), by its description, with its key; then the
        ``:`` commands that need no argument. Textual's own generic commands are not offered."""
        from textual.app import SystemCommand

        from console.keymap import COMMANDS, label
        from console.screens.help import working_keys

        for key in working_keys(screen):
            run = partial(screen.run_action, key.id) if key.screens != ("app",) else partial(self.run_action, key.id)
            yield SystemCommand(key.description, f"key {label(key.keys)}", run)
        usage = dict(COMMANDS)
        for line in self.PALETTE_COMMANDS:
            verb = line.split()[0]
            if self.settings.read_only and verb in ("pause", "resume", "ro"):
                continue  # changes queues (or is already so)
            yield SystemCommand(f":{line}", usage.get(line, ""), partial(self.run_command, line))

    # -- the : command line (console.screens.command) -------------------------------------
    def action_command(self) -> None:
        from console.screens.command import CommandScreen

        if isinstance(self.screen, CommandScreen):
            return
        names = sorted({s.queue.name for snap in self.snapshots.values() for s in snap.statuses})
        words = ["dlq", "pause all", "resume all", "ro", "help", "quit"]
        words += [f"{verb} {n}" for verb in ("q", "pause", "resume") for n in names]
        words += [f"theme {t}" for t in sorted(self.available_themes)]
        words += [f"ctx {c}" for c in sorted(self.settings.contexts)]
        self.push_screen(CommandScreen(self.command_history, words), self._command_done)

    def _command_done(self, line: str | None) -> None:
        if line:
            self.run_command(line)

    def run_command(self, line: str) -> None:
        from console.screens.command import CommandError, find_queue, parse

        try:
            cmd = parse(line)
            self._run(cmd, find_queue)
        except CommandError as exc:
            self.notify(str(exc), severity="error")

    def _overview(self):
        from console.screens.overview import OverviewScreen

        return next(s for s in self.screen_stack if isinstance(s, OverviewScreen))

    def _to_overview(self) -> None:
        from console.screens.overview import OverviewScreen

        while not isinstance(self.screen, OverviewScreen) and len(self.screen_stack) > 2:
            self.pop_screen()

    def _run(self, cmd, find_queue) -> None:
        from console.screens.command import CommandError

        queues = [s.queue for snap in self.snapshots.values() for s in snap.statuses]
        if cmd.verb == "quit":
            self.exit()
        elif cmd.verb == "help":
            self.action_help()
        elif cmd.verb == "queue":
            from console.screens.queue import QueueScreen

            queue = find_queue(cmd.arg, queues)
            self._to_overview()
            self.push_screen(QueueScreen(queue))
        elif cmd.verb == "dlq":
            from console.screens.dead_letters import DeadLetterScreen

            self._to_overview()
            self.push_screen(DeadLetterScreen())
        elif cmd.verb in ("pause", "resume"):
            if self.settings.read_only:
                raise CommandError(f"{cmd.verb}: refused, this session is read-only")
            only = None if cmd.arg.lower() == "all" else {find_queue(cmd.arg, queues).key}
            self._overview().pause_all(cmd.verb, only)
        elif cmd.verb == "theme":
            if cmd.arg not in self.available_themes:
                raise CommandError(f"no theme {cmd.arg!r} (themes: {', '.join(sorted(self.available_themes))})")
            self.theme = cmd.arg
        elif cmd.verb == "ro":
            self.settings = self.settings.model_copy(update={"read_only": True})
            self._bindings_changed()
            self.notify("read-only for the rest of this session")
        elif cmd.verb == "ctx":
            self.switch_context(cmd.arg)

    def _bindings_changed(self) -> None:
        for screen in self.screen_stack:
            screen.refresh_bindings()
        self.broadcast_snapshots()

    def switch_context(self, name: str) -> None:
        """Drop the connections of this context and connect to those of ``name`` (its URLs,
        prefixes, schema, backend; read-only when it says so or this session already is)."""
        from console.screens.command import CommandError

        ctx = self.settings.contexts.get(name)
        if ctx is None:
            known = ", ".join(sorted(self.settings.contexts)) or "none defined"
            raise CommandError(f"unknown context {name!r} (known: {known})")
        for run in self._poller_runs:
            run.cancel()  # the poller closes its readers on cancellation
        self._poller_runs, self.pollers, self.snapshots = [], [], {}
        # the write URL belongs to a context's servers: never carried over to another context's
        update = {"context": name, "read_only": bool(ctx.read_only) or self.settings.read_only,
                  "write_url": ctx.write_url}
        for field_name, value in (("urls", ctx.urls), ("backend", ctx.backend)):
            if value:
                update[field_name] = value
        if ctx.given_options():  # the config keys the backends declare (prefixes, schema, ...)
            update["backend_options"] = {**self.settings.backend_options, **ctx.given_options()}
        self.settings = self.settings.model_copy(update=update)
        self._to_overview()
        self._start_pollers()
        self._bindings_changed()
        self.notify(f"context {name}")

    def breadcrumbs(self) -> list[str]:
        """Where the user is: one crumb per view on the stack (``queues › emails › failed``)."""
        out = []
        for screen in self.screen_stack:
            crumb = getattr(screen, "crumb", None)
            if crumb is not None:
                out.append(crumb() if callable(crumb) else crumb)
        return out

    # -- the view history: ``-`` goes back to the previous view --------------------------------
    HISTORY_LIMIT = 20  # views remembered (each keeps its screen object while remembered)

    def _screen_changed(self, screen) -> None:
        # after the handler that changed screens: a view passed through on the way (``:q NAME``
        # backs out to the overview, then opens the queue) is not remembered
        self.call_later(self._note_view)

    def _note_view(self) -> None:
        screen = self.screen
        key = view_key(screen)
        if key is None:
            return
        if self.view_history and self.view_history[-1].key == key:
            self.view_history[-1].screen = screen  # the same view, maybe shown again by a new screen
        else:
            self.view_history.append(View(screen))
            del self.view_history[:-self.HISTORY_LIMIT]
        self.refresh_bindings()

    def previous_view(self) -> View | None:
        """The view shown before the current one (the top view under any help or ``:`` line);
        None when there is none."""
        current = next((k for k in map(view_key, reversed(self.screen_stack)) if k is not None), None)
        if current is None:
            return None
        return next((v for v in reversed(self.view_history) if v.key != current), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "previous_view":
            return self.previous_view() is not None
        return True

    def action_previous_view(self) -> None:
        """``-``: the view before this one. Still on the stack (below): back to it; otherwise it is
        opened again on top, so that ``esc`` comes back here and ``-`` again toggles."""
        target = self.previous_view()
        if target is None or view_key(self.screen) is None:
            return  # nothing before, or a help / confirmation is open: it answers its own keys
        if target.screen in self.screen_stack:
            while self.screen is not target.screen and len(self.screen_stack) > 2:
                self.pop_screen()
            return
        screen = target.reopen()
        if screen is not None:
            self.push_screen(screen)

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
