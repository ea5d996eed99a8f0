"""What the Pilot tests of the TUI share: the terminal size, the app for a Redis URL and key prefix,
waiting on a condition (never on wall time), reading a table's rows and a widget's text, and the
steps that open a queue's failed jobs."""
from __future__ import annotations

import time

from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.config import Settings

SIZE = (160, 45)


async def wait_for(pilot, cond, timeout: float = 30.0, what: str = "condition"):
    """Let the app run until ``cond()`` holds (an exception counts as not yet); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def app_for(url: str, prefix: str, **extra) -> QueueConsoleApp:
    return QueueConsoleApp(Settings(urls=[url], prefixes=[prefix], refresh=0.5, **extra))


def plain(renderable) -> str:
    """A Rich renderable (a widget's content) as the plain text it shows."""
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


async def to_state(pilot, screen, state: str) -> None:
    """Tab through a queue view's state tabs to ``state``, one press at a time, each once the one
    before has switched the state: a tab pressed before the queue's status has brought its tabs (on
    a loaded machine, seconds after the view opens) finds only the first tab and is lost."""
    await wait_for(pilot, lambda: screen.query(f"#state-{state}"), what=f"the {state} tab")
    for _ in range(12):
        if screen.state == state:
            return
        before = screen.state
        await pilot.press("tab")
        await wait_for(pilot, lambda: screen.state != before, what=f"tab to leave {before}")
    raise AssertionError(f"tab never reached {state}")


async def open_failed(pilot, app, count: int, queues: int = 1, focus_jobs: bool = False):
    """From the overview (``queues`` rows): open the queue under the cursor, tab to its failed jobs
    and wait until ``count`` rows show. Returns the queue screen and its job table."""
    from console.screens.queue import QueueScreen

    await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == queues, what="queue rows")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue screen")
    screen = app.screen
    jobs = screen.query_one("#job-table", DataTable)
    if focus_jobs:
        jobs.focus()
    await to_state(pilot, screen, "failed")  # waiting -> delayed -> active -> completed -> failed
    await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == count, what=f"{count} failed rows")
    return screen, jobs
