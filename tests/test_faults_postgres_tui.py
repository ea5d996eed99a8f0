"""Faults under the TUI on a private PostgreSQL (pgserver, never the machine's server): the
console's sessions terminated (pg_terminate_backend), and pg-boss's job table locked (ACCESS
EXCLUSIVE, so every read waits until its statement timeout). Every screen (overview, queue view,
failures view) keeps answering keys, shows the banner while the fault lasts, and recovers.
"""
from __future__ import annotations

import asyncio

import pytest
from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.config import Settings
from console.screens.help import HelpScreen
from console.screens.overview import OverviewScreen
from tests import pgboss_helpers as h
from tests.pg_servers import EmbeddedPostgres
from tests.test_faults_tui import _banner_shown, _bar, _has_data, _open
from tests.tui_harness import SIZE, wait_for

SCHEMA = "pgboss"


@pytest.fixture(scope="module")
def pg():
    server = EmbeddedPostgres()

    async def setup():
        await h.install(server.url, "v12", SCHEMA)
        async with h.admin(server.url) as conn:
            await h.create_queue(conn, SCHEMA, "orders")
            for _ in range(2):
                await h.add_job(conn, SCHEMA, "orders", "created")
            for i in range(3):
                await h.add_job(conn, SCHEMA, "orders", "failed", started_s=-5, completed_s=-4 + i,
                                output={"message": "boom"})

    asyncio.run(setup())
    yield server
    server.stop()


class Terminate:
    """Every session of the console is ended by the server (as an operator's pg_terminate_backend)."""

    lasting = False

    def __init__(self, url: str) -> None:
        self.url = url

    async def inject(self) -> None:
        async with h.admin(self.url) as conn:
            ended = await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE application_name LIKE 'queue-console%' AND pid <> pg_backend_pid()")
        assert ended >= 1  # the console's read pool keeps a session open: the fault did hit it

    async def heal(self) -> None:
        pass


class LockJobs:
    """A session holds ACCESS EXCLUSIVE on pgboss.job: reads wait for their statement timeout."""

    lasting = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = None
        self.tx = None

    async def inject(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.url, timeout=10)
        self.tx = self.conn.transaction()
        await self.tx.start()
        # the lock waits for every transaction that touched the table: bounded, so that a console
        # session left idle in a transaction fails here, named, instead of hanging the test
        await self.conn.execute("SET LOCAL lock_timeout = '30s'")
        try:
            await self.conn.execute(f'LOCK TABLE "{SCHEMA}".job IN ACCESS EXCLUSIVE MODE')
        except asyncpg.LockNotAvailableError:
            async with h.admin(self.url) as admin:
                holders = await admin.fetch(
                    "SELECT application_name, state, now() - xact_start AS in_xact, wait_event, left(query, 200) AS query "
                    "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
            await self.heal()
            raise AssertionError(f"LOCK TABLE waited 30 s; the sessions: {[dict(r) for r in holders]}") from None

    async def heal(self) -> None:
        if self.tx is not None:
            await self.tx.rollback()
        if self.conn is not None:
            await self.conn.close()
        self.conn = self.tx = None


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", [Terminate, LockJobs])
async def test_every_screen_survives_a_postgres_fault_and_recovers(pg, fault):
    f = fault(pg.url)
    app = QueueConsoleApp(Settings(urls=[pg.url], schema=SCHEMA, refresh=0.5, op_timeout=2, connect_timeout=2))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="first counts")
        for screen in ("overview", "queue", "failures"):
            await _open(pilot, app, screen)
            await f.inject()
            try:
                if f.lasting:
                    await wait_for(pilot, lambda: _banner_shown(app), timeout=30, what=f"banner on {screen}")
                    await pilot.press("question_mark")
                    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
                    await pilot.press("escape")
                    await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), what="back")
            finally:
                await f.heal()
            await pilot.press("r")
            await wait_for(pilot, lambda: not _banner_shown(app) and "STALE" not in _bar(app), timeout=60,
                           what=f"recovery on {screen}")
            await pilot.press("r")
            await wait_for(pilot, lambda: _has_data(app, screen), timeout=30, what=f"data on {screen}")
            while not isinstance(app.screen, OverviewScreen):
                await pilot.press("escape")
                await pilot.pause(0.1)
