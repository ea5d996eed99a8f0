"""Faults under the TUI, on a private redis-server of the test's own (never the machine's).

- A late refresh is marked stale with its age as soon as it is late (two refresh intervals), long
  before the call's timeout fires: before, under CLIENT PAUSE the dot stayed green until the 10 s
  timeout.
- Redis restarted, every connection killed, the server paused (CLIENT PAUSE) or stopped (SIGSTOP):
  every screen (overview, queue view, failures view) keeps answering keys, shows the banner, and
  recovers with fresh data once the server is back.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.config import Settings
from console.screens.dead_letters import DeadLetterScreen
from console.screens.help import HelpScreen
from console.screens.overview import OverviewScreen
from console.screens.queue import QueueScreen
from tests.fixed_data import write_fixed_queue
from tests.private_redis import FAULT_PORTS, PrivateRedis, running
from tests.tui_harness import SIZE, plain, wait_for

PREFIX = "bull"


@pytest.fixture
def server():
    with running(FAULT_PORTS) as srv:
        with srv.client() as c:
            write_fixed_queue(c, PREFIX, "orders", failed=3, completed=0, waiting=2, delayed=0)
        yield srv


def _bar(app) -> str:
    return plain(app.screen.query_one("#connections").content)


def _banner_shown(app) -> bool:
    return app.screen.query_one("#banner").has_class("-shown")


async def _off_loop(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


@pytest.mark.timeout(120)
async def test_late_refresh_is_marked_stale_with_its_age_before_the_timeout(server):
    # refresh 0.5 s: late after 1 s; the op timeout (30 s) is far away, so the only thing that can
    # mark the data stale before the banner is the late-refresh check
    app = QueueConsoleApp(Settings(urls=[server.url], prefixes=[PREFIX], refresh=0.5, op_timeout=30))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="first counts")
        assert "STALE" not in _bar(app)
        # (CLIENT UNPAUSE would itself wait under a pause of ALL commands: the pause ends by itself)
        with server.client() as c:
            c.execute_command("CLIENT", "PAUSE", "8000", "ALL")
        await wait_for(pilot, lambda: "STALE" in _bar(app), timeout=25, what="stale mark")
        text = _bar(app)
        assert "data from " in text and "s ago" in text and "refresh late" in text
        assert not _banner_shown(app)  # the timeout has not fired: only the late refresh marked it
        assert all(snap.error is None and snap.connected for snap in app.snapshots.values())
        assert app.screen.query_one(DataTable).row_count == 1  # the last data stays on screen
        await wait_for(pilot, lambda: "STALE" not in _bar(app), timeout=30, what="fresh again")


def _restart(server: PrivateRedis) -> None:
    server.start()  # stopped with SHUTDOWN SAVE: the queue comes back from the RDB file


def _kill_clients(server: PrivateRedis) -> None:
    with server.client() as c:
        for client in c.client_list():
            if client.get("name") == "queue-console":
                c.client_kill_filter(_id=client["id"])


def _pause(server: PrivateRedis) -> None:
    with server.client() as c:  # far longer than the op timeout (2 s); it ends by itself
        c.execute_command("CLIENT", "PAUSE", "8000", "ALL")


def _nothing(server: PrivateRedis) -> None:
    pass


FAULTS = {
    # fault -> (inject, heal, lasting): a lasting fault shows the banner before it is healed
    "restart": (lambda s: s.stop(), _restart, True),
    "client-kill": (_kill_clients, _nothing, False),  # the console reconnects by itself
    "client-pause": (_pause, _nothing, True),
    "sigstop": (PrivateRedis.sigstop, PrivateRedis.sigcont, True),
}


async def _open(pilot, app, screen: str) -> None:
    if screen == "queue":
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue view")
        await wait_for(pilot, lambda: app.screen.query_one("#job-table", DataTable).row_count == 2, what="jobs")
    elif screen == "failures":
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen), what="failures view")
        await wait_for(pilot, lambda: app.screen.query_one("#groups", DataTable).row_count >= 1, what="groups")


def _has_data(app, screen: str) -> bool:
    if screen == "overview":
        return app.screen.query_one("#queues", DataTable).row_count == 1
    if screen == "queue":
        return app.screen.query_one("#job-table", DataTable).row_count == 2 and not app.screen.page_error
    return app.screen.query_one("#groups", DataTable).row_count >= 1


async def _until_data(pilot, app, screen: str, timeout: float = 60) -> None:
    """Ask again (r) and wait until the screen shows its data. The failures view scans once per r and
    not by itself: a scan that ran on a connection the fault had broken ends with the queue
    unreadable and no groups, and waiting on that one scan never ends (the restart case, once in a
    loaded run); so each scan that ends without data is followed by another r."""
    await pilot.press("r")
    deadline = time.monotonic() + timeout
    while not _has_data(app, screen):
        assert time.monotonic() < deadline, f"no data on {screen} within {timeout} s"
        if screen == "failures" and not app.screen.scanning:
            await pilot.press("r")
        await pilot.pause(0.2)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_screen_survives_a_fault_and_recovers(server, fault):
    inject, heal, lasting = FAULTS[fault]
    app = QueueConsoleApp(Settings(urls=[server.url], prefixes=[PREFIX], refresh=0.5, op_timeout=2,
                                   connect_timeout=2))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="first counts")
        for screen in ("overview", "queue", "failures"):
            await _open(pilot, app, screen)
            await _off_loop(inject, server)
            try:
                if lasting:
                    await wait_for(pilot, lambda: _banner_shown(app), timeout=30, what=f"banner on {screen}")
                    # the screen still answers keys while the server does not
                    await pilot.press("question_mark")
                    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
                    await pilot.press("escape")
                    await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), what="back")
            finally:
                await _off_loop(heal, server)
            await pilot.press("r")  # ask for the page again too (the queue view reloads its page)
            await wait_for(pilot, lambda: not _banner_shown(app) and "STALE" not in _bar(app), timeout=60,
                           what=f"recovery on {screen}")
            await _until_data(pilot, app, screen)
            while not isinstance(app.screen, OverviewScreen):
                await pilot.press("escape")
                await pilot.pause(0.1)
