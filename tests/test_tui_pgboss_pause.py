"""The TUI's pause of a pg-boss queue says how it will pause before asking (Pilot, real PostgreSQL
with pg-boss 12.38.0's DDL): with a role that owns the job table the confirmation has no note and
the pause installs the hold trigger; with a role that does not, the confirmation says it falls
back to best-effort parking, and the result is a parked queue."""
from __future__ import annotations

import uuid

from rich.text import Text

from backends.pgboss.layout import quote_ident
from backends.pgboss.writer import HOLD_TRIGGER
from console.app import QueueConsoleApp
from console.config import Settings
from console.screens.confirm import ConfirmScreen
from console.screens.queue import QueueScreen
from tests import pgboss_helpers as h
from tests.tui_harness import SIZE, wait_for


async def _pause_in_tui(url: str, schema: str, store: str) -> str:
    """Open the only queue, press P, return the confirmation's text, answer yes, wait for it."""
    from textual.widgets import DataTable

    app = QueueConsoleApp(Settings(urls=[url], schema=schema, store_schema=store, refresh=0.5))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="the queue")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue screen")
        await wait_for(pilot, lambda: app.screen.status is not None, what="queue status")
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        body = app.screen.body
        text = body.plain if isinstance(body, Text) else str(body)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.status is not None
                       and app.screen.status.paused, what="paused status")
    return text


async def test_tui_pause_says_how_it_will_pause(postgres_url):
    schema, store = h.new_schema("v12tui"), f"qcs_{uuid.uuid4().hex[:10]}"
    await h.install(postgres_url, "v12", schema)
    try:
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, schema, "work")
            await h.add_job(conn, schema, "work")
        async with h.non_owner(postgres_url, schema, store) as limited:
            text = await _pause_in_tui(limited, schema, store)
            assert "does not own" in text and "best-effort parking" in text, text
            async with h.admin(postgres_url) as conn:
                assert await conn.fetchval(f"SELECT mode FROM {quote_ident(store)}.paused_queue") == "park"
        text = await _pause_in_tui(postgres_url, schema, store)
        assert "note:" not in text, text
        async with h.admin(postgres_url) as conn:
            assert await conn.fetchval(f"SELECT mode FROM {quote_ident(store)}.paused_queue") == "hold"
            assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) "
                                       "AND tgname = $2", f"{quote_ident(schema)}.job", HOLD_TRIGGER) == 1
    finally:
        await h.drop(postgres_url, schema)
        await h.drop(postgres_url, store)
