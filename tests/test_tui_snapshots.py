"""SVG snapshots of the screens at a fixed terminal size, on fixed data.

The console shows its connection URL, so these tests start a Redis of their own on a unix socket of
the run's own behind a URL that is the same in every run (tests.servers.SocketRedis), whatever
QC_TEST_REDIS_URL says. Each test waits for every part of the screen it shows to be filled (rows,
the latency column, the detail pane, the footer's keys) before the screenshot, never on time alone. Clocks do not appear:
the data has fixed timestamps and the refresh interval is longer than the test, so no throughput
sample is taken. Update with ``pytest tests/test_tui_snapshots.py --snapshot-update`` after
looking at the report.
"""
from __future__ import annotations

import time

import pytest
import redis
from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.config import Settings
from console.screens.help import HelpScreen
from console.screens.queue import QueueScreen
from tests.fixed_data import write_fixed_queue
from tests.servers import SocketRedis
from tests.tui_harness import to_state

SIZE = (150, 40)


@pytest.fixture(scope="module")
def snapshot_redis():
    server = SocketRedis()
    client = redis.Redis(unix_socket_path=server.path)
    write_fixed_queue(client, "snap", "emails", failed=12, completed=8, waiting=5, delayed=3)
    write_fixed_queue(client, "snap", "payments", failed=0, completed=2, waiting=4, delayed=0, paused=True)
    write_fixed_queue(client, "snap", "thumbnails", failed=2, completed=30, waiting=0, delayed=0)
    client.close()
    yield server.url
    server.stop()


def make_app(url: str) -> QueueConsoleApp:
    return QueueConsoleApp(Settings(urls=[url], prefixes=["snap"], refresh=3600, utc=True))  # times: +00:00 anywhere


async def _wait(pilot, cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                await pilot.pause(0.2)
                return
        except Exception:
            pass
        await pilot.pause(0.1)
    raise AssertionError("snapshot precondition not reached")


async def _overview_ready(app, pilot):
    await _wait(pilot, lambda: app.screen.query_one(DataTable).row_count == 3
                and "ms" in str(app.screen.query_one(DataTable).get_row_at(0)[-1]))
    await _wait(pilot, lambda: any(k.action == "help" for k in app.screen.query("FooterKey")))


async def _queue_failed_ready(app, pilot):
    await _wait(pilot, lambda: app.screen.query_one(DataTable).row_count == 3)
    await pilot.press("enter")
    await _wait(pilot, lambda: isinstance(app.screen, QueueScreen))
    screen = app.screen
    await to_state(pilot, screen, "failed")
    await _wait(pilot, lambda: screen.state == "failed"
                and screen.query_one("#job-table", DataTable).row_count == 12
                and "error (latest)" in str(screen.query_one("#job-detail").content.renderables[1])
                and "no worker connected" in str(screen.query_one("#queue-title").content))
    await _wait(pilot, lambda: any(k.action == "help" for k in screen.query("FooterKey")))


def test_overview_snapshot(snap_compare, snapshot_redis):
    app = make_app(snapshot_redis)

    async def ready(pilot):
        await _overview_ready(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_queue_failed_tab_snapshot(snap_compare, snapshot_redis):
    app = make_app(snapshot_redis)

    async def ready(pilot):
        await _queue_failed_ready(app, pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_help_snapshot(snap_compare, snapshot_redis):
    app = make_app(snapshot_redis)

    async def ready(pilot):
        await _overview_ready(app, pilot)  # the overview under the help, as complete as its own snapshot
        await pilot.press("question_mark")
        await _wait(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.query_one("#help-box").children)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("size,theme", [((80, 24), "queue-console"), ((200, 60), "queue-console-light")],
                         ids=["80x24-dark", "200x60-light"])
@pytest.mark.parametrize("view", ["overview", "queue_failed"])
def test_sizes_and_themes_snapshot(snap_compare, snapshot_redis, size, theme, view):
    """80x24 (chart and detail folded, ? first in the footer) and 200x60 in the light theme."""
    app = QueueConsoleApp(Settings(urls=[snapshot_redis], prefixes=["snap"], refresh=3600, theme=theme, utc=True))
    ready = _overview_ready if view == "overview" else _queue_failed_ready

    async def run_before(pilot):
        await ready(app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
