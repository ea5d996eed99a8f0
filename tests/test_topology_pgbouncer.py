"""pg-boss through Debian's PgBouncer in transaction pooling mode, started by the test on loopback.

PgBouncer either refuses the console's startup parameters ("unsupported startup parameter") or,
with ``ignore_startup_parameters``, accepts and drops them. Either way reads and mutations work,
no named prepared statement is relied on (statement_cache_size=0), and the read-only guard holds
per transaction: a write through the read path is refused by PostgreSQL.
"""
from __future__ import annotations

import uuid

import asyncpg
import pytest

from backends import postgres_topology as topo
from backends.pgboss.layout import quote_ident
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Selection
from tests import pgboss_helpers as h
from tests.topology_servers import PgBouncer

IGNORED = "statement_timeout,idle_in_transaction_session_timeout,jit,max_parallel_workers_per_gather," \
          "default_transaction_read_only,lock_timeout"


@pytest.fixture(params=["refuses", "ignores"])
def bouncer(request, postgres_url):
    b = PgBouncer(postgres_url, ignore=IGNORED if request.param == "ignores" else "")
    yield b
    b.close()


@pytest.fixture
async def schema(postgres_url):
    name = h.new_schema("v12")
    await h.install(postgres_url, "v12", name)
    async with h.admin(postgres_url) as conn:
        await h.create_queue(conn, name, "work")
    store = f"qcs_{uuid.uuid4().hex[:10]}"
    yield name, store
    await h.drop(postgres_url, name)
    await h.drop(postgres_url, store)


@pytest.mark.timeout(60)
async def test_reads_and_retry_through_pgbouncer_transaction_pooling(bouncer, schema, postgres_url):
    name, store = schema
    async with h.admin(postgres_url) as conn:
        failed = [await h.add_job(conn, name, "work", "failed", started_s=-40, completed_s=-30, retry_count=2,
                                  output={"message": f"boom {i}"}) for i in range(7)]
        for _ in range(3):
            await h.add_job(conn, name, "work", "created")
    [reader] = await open_readers(bouncer.url, ConnectOptions(schema=name))
    try:
        reader.store_schema = store
        assert topo.known_mode(bouncer.url) is True
        disc = await reader.discover()
        [queue] = [q for q in disc.queues if q.name == "work"]
        # several rounds: every statement on whatever server connection PgBouncer hands out
        for _ in range(3):
            [status] = await reader.statuses([queue])
            assert status.counts["failed"] == 7 and status.counts["waiting"] == 3
        page = await reader.page(queue, "failed", None, 50)
        assert sorted(j.id for j in page.jobs) == sorted(failed)

        acts = Actions(lambda q: reader, operator="test@host")
        report = await acts.execute(await acts.preview("retry", Selection(queue, state="failed")))
        assert report.complete and report.done == 7
        async with h.admin(postgres_url) as conn:
            states = await conn.fetch(f"SELECT state::text FROM {quote_ident(name)}.job WHERE id = ANY($1::uuid[])",
                                      failed)
        assert [r[0] for r in states] == ["retry"] * 7
        [status] = await reader.statuses([queue])
        assert status.counts["failed"] == 0 and status.counts["waiting"] == 10
    finally:
        await reader.close()


@pytest.mark.timeout(60)
async def test_read_only_guard_holds_per_transaction_behind_pgbouncer(bouncer, schema, postgres_url):
    name, _store = schema
    async with h.admin(postgres_url) as conn:
        job = await h.add_job(conn, name, "work", "failed", started_s=-40, completed_s=-30)
    [reader] = await open_readers(bouncer.url, ConnectOptions(schema=name))
    try:
        update = f"UPDATE {quote_ident(name)}.job SET state = 'retry' WHERE id = $1::uuid"
        for _ in range(3):
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await reader.pool.execute(update, job)
            async with reader.pool.acquire() as conn:
                with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                    async with conn.transaction():
                        await conn.execute(update, job)
                # the statement timeout travels with each transaction too
                assert await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'") != "0"
        async with h.admin(postgres_url) as conn:
            assert await conn.fetchval(f"SELECT state::text FROM {quote_ident(name)}.job WHERE id = $1::uuid",
                                       job) == "failed"
    finally:
        await reader.close()
