"""Interop: queues written by pg-boss for Node (10.4.2, 11.1.2, 12.38.0) read by queue-console.

``tests/interop/pgboss/fixture.mjs`` (run per version in a schema of the test's own) makes jobs in
every state -- completed, failed after a retry (with its dead-letter copy), active, waiting (one
with priority), delayed, cancelled -- and prints what pg-boss's API reports (getQueues,
getQueueSize / getQueueStats, getJobById). The reader's counts, pages and details must equal SQL
over pg-boss's own tables and what the API says.

Node is found and ``npm ci`` run by ``tests/interop/node_env.py`` (``require_node_dir``); without
Node the tests are skipped loudly ("INTEROP SKIPPED: ..."), and with ``CI`` set they fail instead.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from backends.pgboss.layout import quote_ident
from backends.registry import ConnectOptions, open_readers
from tests import pgboss_helpers as h
from tests.interop import node_env

pytestmark = pytest.mark.interop

PGBOSS_DIR = Path(__file__).resolve().parent / "interop" / "pgboss"
PINNED = {"pgboss10": "10.4.2", "pgboss11": "11.1.2", "pgboss12": "12.38.0"}
NATIVE = ("created", "retry", "active", "completed", "cancelled", "failed")


@dataclass
class World:
    lib: str
    schema: str
    url: str
    doc: dict


@pytest.fixture(scope="module", params=sorted(PINNED))
def world(request, postgres_url):
    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    lib = request.param
    schema = h.new_schema(lib)
    try:
        done = subprocess.run([env.node, str(PGBOSS_DIR / "fixture.mjs"), postgres_url, lib, schema],
                              cwd=PGBOSS_DIR, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, f"fixture.mjs failed ({done.returncode}):\n{done.stderr[-4000:]}"
        doc = json.loads(done.stdout.strip().splitlines()[-1])
        yield World(lib=lib, schema=schema, url=postgres_url, doc=doc)
    finally:
        import asyncio

        asyncio.run(h.drop(postgres_url, schema))


async def _reader(w: World):
    return (await open_readers(w.url, ConnectOptions(schema=w.schema)))[0]


async def _sql(w: World, sql: str, *args):
    async with h.admin(w.url) as conn:
        return await conn.fetch(sql.replace("{s}", quote_ident(w.schema)), *args)


def test_fixture_made_every_state(world):
    w = world
    assert w.doc["version"] == PINNED[w.lib]
    for role in ("completed", "failed", "active", "waiting", "delayed", "cancelled"):
        assert w.doc["ids"][role], role
    failed = w.doc["jobs"][w.doc["ids"]["failed"][0]]
    assert failed["state"] == "failed" and failed["retryCount"] == 1 and failed["retryLimit"] == 1


async def test_counts_equal_sql_and_the_pgboss_api(world):
    w = world
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        assert sorted(q.name for q in disc.queues) == ["main", "main_dlq", "other"]
        st = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    finally:
        await reader.close()
    for name, s in st.items():
        rows = await _sql(w, "SELECT state::text, count(*) FROM {s}.job WHERE name = $1 GROUP BY 1", name)
        want = {k: 0 for k in NATIVE}
        want.update({r[0]: r[1] for r in rows})
        assert s.native == want, name
        assert s.estimated == []
    main = st["main"]
    ids = w.doc["ids"]
    assert (main.counts["waiting"], main.counts["delayed"], main.counts["active"], main.counts["completed"],
            main.counts["failed"], main.counts["cancelled"]) == (3, 1, 1, 1, 1, 1) == (
        len(ids["waiting"]), len(ids["delayed"]), 1, 1, 1, 1)
    assert st["main_dlq"].counts["waiting"] == 1  # the dead-letter copy of the failed job
    assert st["main_dlq"].info["dead letter of"] == "main" and main.info["dead letter queue"] == "main_dlq"
    api = w.doc["api"]["main"]
    if "getQueueSize" in api:  # v10: created + retry
        assert api["getQueueSize"] == main.native["created"] + main.native["retry"]
    if "getQueueStats" in api:  # v11 / v12: a live recount
        stats = api["getQueueStats"]
        stats = stats[-1] if isinstance(stats, list) else stats
        assert stats["queuedCount"] == main.native["created"] + main.native["retry"]
        assert stats["deferredCount"] == main.counts["delayed"]
        assert stats["activeCount"] == main.counts["active"]
        if "readyCount" in stats:
            assert stats["readyCount"] == main.counts["waiting"]
        if "failedCount" in stats:
            assert stats["failedCount"] == main.counts["failed"]
        if w.lib == "pgboss11":
            assert stats["totalCount"] == sum(main.native.values())


async def test_pages_and_details_equal_sql_and_getjobbyid(world):
    w = world
    ids = w.doc["ids"]
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        main = next(q for q in disc.queues if q.name == "main")
        orders = {
            "waiting": "state < 'active' AND start_after <= now() ORDER BY priority DESC, created_on, id",
            "delayed": "state < 'active' AND start_after > now() ORDER BY start_after, id",
            "active": "state = 'active' ORDER BY started_on, id",
            "completed": "state = 'completed' ORDER BY completed_on DESC, id DESC",
            "failed": "state = 'failed' ORDER BY completed_on DESC, id DESC",
            "cancelled": "state = 'cancelled' ORDER BY completed_on DESC, id DESC",
        }
        for state, tail in orders.items():
            want = [r[0] for r in await _sql(w, "SELECT id::text FROM {s}.job WHERE name = 'main' AND " + tail)]
            assert sorted(want) == sorted(ids[state])
            got, cursor = [], None
            while True:
                page = await reader.page(main, state, cursor, 2)
                got += [j.id for j in page.jobs]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert got == want, state
            assert page.total == len(want)
        # the priority-5 job comes first, as pg-boss's fetch would take it
        first = await reader.page(main, "waiting", None, 1)
        assert first.jobs[0].id == ids["waiting"][2]
        for role, role_ids in ids.items():
            queue = next(q for q in disc.queues if q.name == ("other" if role == "other" else "main"))
            for job_id in role_ids:
                api = w.doc["jobs"][job_id]
                d = await reader.job(queue, job_id)
                assert d is not None
                assert d.summary.native_state == api["state"]
                assert json.loads(d.data.text) == api["data"]
                assert d.summary.attempts_made == api["retryCount"]
                assert d.max_attempts == api["retryLimit"] + 1
                assert d.extra.get("singleton_key") == api.get("singletonKey")
                assert d.extra.get("policy") == api.get("policy")
                if api["state"] == "completed":
                    assert json.loads(d.return_value.text) == api["output"]
                if api["state"] == "failed":
                    assert d.summary.failed_reason.text == api["output"]["message"] == "final failure"
                    assert d.stacktrace and "final failure" in d.stacktrace[0].text
                assert d.summary.state == {"created": "waiting", "retry": "waiting"}.get(api["state"], api["state"]) \
                    or role == "delayed"
    finally:
        await reader.close()
