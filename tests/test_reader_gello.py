"""Gello readers (Redis and PostgreSQL) against real servers, with jobs made by the reference
producer and worker of tests/gello_reference.py (written from shared/formats/gello.md).

Redis keys live under the test's own prefix (the Gello key prefix is configurable); PostgreSQL
tables live in a schema of the test's own, dropped afterwards.
"""
from __future__ import annotations

import hashlib
import json
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from backends.errors import BadCursor, BadRequest, Unsupported
from backends.registry import ConnectOptions, open_readers
from tests.gello_reference import PgGello, RedisGello


async def fail_always(job):
    raise RuntimeError("boom")


async def ok(job):
    return None


# ---------------------------------------------------------------------- Redis fixtures
@pytest.fixture
async def rg(redis_url, prefix):
    client = aioredis.Redis.from_url(redis_url)
    yield RedisGello(client, prefix)
    await client.aclose()


async def open_gello_redis(redis_url, prefix, **kw):
    readers = await open_readers(redis_url, ConnectOptions(gello_prefixes=[prefix], store_prefix=f"{prefix}:console",
                                                           client_name=f"qc-gello-{uuid.uuid4().hex[:8]}", **kw))
    gello = [r for r in readers if r.backend == "gello"]
    return readers, gello[0] if gello else None


@pytest.fixture
async def greader(redis_url, prefix, rg):
    opened = []

    async def make(**kw):
        readers, reader = await open_gello_redis(redis_url, prefix, **kw)
        opened.extend(readers)
        return reader

    yield make
    for r in opened:
        await r.close()


async def make_mixed_queue(rg: RedisGello, q: str = "mail") -> dict[str, list[str]]:
    """pending, processing, scheduled (delayed + retry backoff) and dead jobs, all by the reference."""
    for i in range(5):
        await rg.enqueue(q, "send", {"i": i}, priority=("low", "normal", "high", "critical")[i % 4],
                         max_attempts=1, idempotency_key=f"idem-{i}")
    await rg.work(q, fail_always, limit=3)  # 3 dead (maxAttempts 1)
    for i in range(4):
        await rg.enqueue(q, "send", {"j": i}, max_attempts=2)
    await rg.work(q, fail_always, limit=2)  # the 2 left of the first batch die
    await rg.work(q, fail_always, limit=2)  # 2 fail once (maxAttempts 2): retry backoff in scheduled
    assert len(seen_now := (await rg.ids(q))["scheduled"]) == 2 and len((await rg.ids(q))["dead"]) == 5, seen_now
    await rg.claim(q)  # one processing
    for i in range(3):
        await rg.enqueue(q, "later", {"k": i}, delay_ms=3_600_000 + i)
    for i in range(7):
        await rg.enqueue(q, "send", {"w": i})
    return await rg.ids(q)


async def walk(reader, ref, state, limit):
    ids, cursor, pages = [], None, 0
    while True:
        page = await reader.page(ref, state, cursor, limit)
        ids += [j.id for j in page.jobs]
        pages += 1
        cursor = page.next_cursor
        assert pages < 100
        if cursor is None:
            return ids, page


async def test_redis_counts_pages_and_detail_match_the_reference(rg, greader, prefix):
    seen = await make_mixed_queue(rg)
    reader = await greader()
    assert reader is not None and reader.capabilities.pause is False and reader.capabilities.retry
    disc = await reader.discover()
    assert [q.name for q in disc.queues] == ["mail"]
    ref = disc.queues[0]
    assert ref.backend == "gello" and ref.namespace == prefix
    [status] = await reader.statuses([ref])
    assert status.native == {k: len(v) for k, v in seen.items()}
    assert status.counts == {"waiting": len(seen["pending"]), "delayed": len(seen["scheduled"]),
                             "active": len(seen["processing"]), "completed": None, "failed": len(seen["dead"]),
                             "cancelled": None}
    assert status.paused is False and status.server_time_ms
    for state, native in (("waiting", "pending"), ("active", "processing"), ("delayed", "scheduled"),
                          ("failed", "dead")):
        ids, last = await walk(reader, ref, state, 2)
        assert ids == seen[native], state
        assert last.total == len(seen[native])
    dead = (await reader.page(ref, "failed", None, 10)).jobs
    assert all(j.failed_reason and j.failed_reason.text == "boom" and j.finished_ms for j in dead)
    assert [j.finished_ms for j in dead] == sorted((j.finished_ms for j in dead), reverse=True)
    # detail: priority and idempotency key
    first_dead = json.loads((await rg.members("mail"))["dead"][-1])
    detail = await reader.job(ref, first_dead["meta"]["id"])
    assert detail.summary.state == "failed" and detail.summary.native_state == "dead"
    assert detail.extra["priority"] == first_dead["meta"]["priority"]
    assert detail.extra["idempotency key"] == first_dead["meta"]["idempotencyKey"]
    assert '"status": "processing"' in detail.extra["idempotency record"]
    assert json.loads(detail.data.text) == first_dead["payload"]
    assert detail.max_attempts == 1 and detail.attempts_started == 1
    assert detail.stacktrace[0].text == "boom"
    # a fresh reader finds a job it never listed (bounded search), in any state
    other = await greader()
    await other.discover()
    waiting_id = seen["pending"][0]
    d = await other.job(ref, waiting_id)
    assert d.summary.state == "waiting" and d.extra["priority"] == "normal"
    assert await other.job(ref, "no-such-job") is None


async def test_redis_malformed_dead_members_are_listed_and_purgeable(rg, greader, prefix, sync_redis):
    await rg.enqueue("q", "t", {"a": 1}, max_attempts=1)
    await rg.work("q", fail_always)
    bad = [b"not json{<script>\x1b[31m", b'{"meta":{"queue":"q"},"payload":1}', b"[1,2]", b"\xff\xfe binary"]
    for i, raw in enumerate(bad):
        await rg.client.zadd(rg.key("q", "dead"), {raw: 1000 + i})
    reader = await greader()
    ref = (await reader.discover()).queues[0]
    page = await reader.page(ref, "failed", None, 50)
    by_id = {j.id: j for j in page.jobs}
    assert len(page.jobs) == 5
    for raw in bad:
        mid = "malformed:" + hashlib.sha1(raw).hexdigest()
        assert mid in by_id and by_id[mid].state == "failed"
        assert by_id[mid].failed_reason.size == len(raw)
    assert by_id["malformed:" + hashlib.sha1(bad[0]).hexdigest()].failed_reason.text == bad[0].decode()
    detail = await reader.job(ref, "malformed:" + hashlib.sha1(bad[1]).hexdigest())
    assert detail.extra["malformed"] == "lacks meta.id" and detail.data.text == bad[1].decode()
    # purge exactly one malformed member (also from a reader that never listed it)
    fresh = await greader()
    await fresh.discover()
    target = "malformed:" + hashlib.sha1(bad[0]).hexdigest()
    [out] = await fresh.remove_jobs(ref, [target], "failed")
    assert out.ok and out.status == "removed"
    left = sync_redis.zrange(f"{prefix}:queue:q:dead", 0, -1)
    assert bad[0] not in left and len(left) == 4 and all(b in left for b in bad[1:])
    # retrying a malformed member is refused, and it stays
    [r] = await reader.retry_jobs(ref, ["malformed:" + hashlib.sha1(bad[2]).hexdigest()])
    assert not r.ok and r.status == "malformed"
    assert sync_redis.zscore(f"{prefix}:queue:q:dead", bad[2]) is not None


async def test_redis_registry_detection_and_bad_input(redis_url, prefix, rg, greader):
    # no Gello keys under this prefix: only the BullMQ reader, as before
    readers, gello = await open_gello_redis(redis_url, prefix)
    try:
        assert [r.backend for r in readers] == ["bullmq"] and gello is None
    finally:
        for r in readers:
            await r.close()
    # --backend gello forces it; discover() then finds no queues and says what it looked for
    reader = await greader(backend="gello")
    disc = await reader.discover()
    assert disc.queues == [] and f"{prefix}:queue:*" in disc.looked_for and "no Gello keys" in disc.note
    # keys appear: detected next to BullMQ
    await rg.enqueue("q1", "t", {})
    readers, gello = await open_gello_redis(redis_url, prefix)
    try:
        assert [r.backend for r in readers] == ["bullmq", "gello"]
        ref = (await gello.discover()).queues[0]
        with pytest.raises(BadCursor):
            await gello.page(ref, "waiting", "z:nan:0")
        with pytest.raises(BadCursor):
            await gello.page(ref, "failed", "l:3")
        with pytest.raises(BadRequest):
            await gello.page(ref, "completed")
        with pytest.raises(Unsupported):
            await gello.set_paused(ref, True)
    finally:
        for r in readers:
            await r.close()
    # a key of the wrong type is named, not a crash
    await rg.client.set(rg.key("q2", "dead"), b"x")
    reader = await greader()
    disc = await reader.discover()
    # ... and listed as malformed beside the others (tests/test_malformed_gello.py has more)
    assert [q.name for q in disc.queues] == ["q1", "q2"]
    statuses = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    assert statuses["q1"].malformed is None and "not a zset" in reader.queue_capabilities(disc.queues[1]).read_only_reason
    assert statuses["q2"].malformed == f"{rg.key('q2', 'dead')} is not a zset"


# ---------------------------------------------------------------------- PostgreSQL fixtures
@pytest.fixture
async def pg(postgres_url):
    schema = f"gello_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres_url, timeout=10)
    ref_impl = PgGello(conn, schema)
    await ref_impl.install()
    yield ref_impl
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_store" CASCADE')
    await conn.close()


@pytest.fixture
async def pgreader(postgres_url, pg):
    opened = []

    async def make(**kw):
        kw.setdefault("gello_schema", pg.schema)
        readers = await open_readers(postgres_url, ConnectOptions(client_name=f"qc-gello-{uuid.uuid4().hex[:8]}", **kw))
        opened.extend(readers)
        found = [r for r in readers if r.backend == "gello"]
        if found:
            found[0].store_schema = f"{pg.schema}_store"
        return readers, (found[0] if found else None)

    yield make
    for r in opened:
        await r.close()


async def make_pg_queue(pg: PgGello, q: str = "mail") -> dict[str, list[str]]:
    for i in range(5):
        await pg.enqueue(q, "send", {"i": i}, priority=("low", "normal", "high", "critical")[i % 4], max_attempts=1,
                         idempotency_key=f"idem-{i}")
    await pg.work(q, fail_always, limit=3)
    for i in range(3):
        await pg.enqueue(q, "later", {"k": i}, delay_ms=3_600_000 + i)
    for i in range(7):
        await pg.enqueue(q, "send", {"w": i}, priority="high" if i % 2 else "normal")
    await pg.claim(q)
    await pg.claim(q)
    await pg.enqueue("other", "x", [1, 2])
    return await pg.ids(q)


async def test_pg_counts_pages_and_detail_match_the_reference(pg, pgreader):
    seen = await make_pg_queue(pg)
    readers, reader = await pgreader()
    assert [r.backend for r in readers] == ["pgboss", "gello"]
    disc = await reader.discover()
    assert [q.name for q in disc.queues] == ["mail", "other"] and disc.note is None
    ref = disc.queues[0]
    assert ref.namespace == pg.schema
    statuses = await reader.statuses(disc.queues)
    assert statuses[0].native == {k: len(v) for k, v in seen.items()}
    assert statuses[0].counts["waiting"] == len(seen["waiting"]) and statuses[0].counts["completed"] is None
    assert statuses[1].counts["waiting"] == 1
    for state in ("waiting", "delayed", "active", "failed"):
        ids, last = await walk(reader, ref, state, 2)
        assert ids == seen[state], state
        assert last.total == len(seen[state])
    failed = (await reader.page(ref, "failed")).jobs
    assert failed[0].failed_reason.text == "boom" and failed[0].attempts_made == 1
    detail = await reader.job(ref, seen["waiting"][0])
    assert detail.extra["priority"] == "high" and detail.extra["idempotency key"] == "(none)"
    row = await pg.db.fetchrow(f"SELECT id, priority, idempotency_key FROM {pg.s}.jobs WHERE idempotency_key IS NOT NULL LIMIT 1")
    d2 = await reader.job(ref, row["id"])
    assert d2.extra["priority"] == row["priority"] and d2.extra["idempotency key"] == row["idempotency_key"]
    d3 = await reader.job(ref, seen["failed"][0])
    assert d3.summary.state == "failed" and json.loads(d3.data.text) and d3.stacktrace[0].text == "boom"
    assert await reader.job(ref, "nope") is None
    with pytest.raises(BadCursor):
        await reader.page(ref, "failed", "bm90IGEgY3Vyc29y")
    with pytest.raises(BadRequest):
        await reader.page(ref, "completed")


async def test_pg_layout_problems_name_the_column(pg, pgreader, postgres_url):
    await pg.db.execute(f"ALTER TABLE {pg.s}.jobs DROP COLUMN job_type")
    await pg.db.execute(f"ALTER TABLE {pg.s}.failed_jobs ADD COLUMN tenant text")
    readers, reader = await pgreader()
    assert reader is not None  # failed_jobs exists: detected, and explained
    disc = await reader.discover()
    assert disc.queues == []
    assert "missing column 'job_type'" in disc.note and "extra column 'tenant'" in disc.note
    assert reader.capabilities.retry is False and "job_type" in reader.capabilities.read_only_reason
    # an extra NOT NULL column without a default: read, but retry refused
    await pg.db.execute(f"ALTER TABLE {pg.s}.jobs ADD COLUMN job_type text NOT NULL DEFAULT 't'")
    await pg.db.execute(f"ALTER TABLE {pg.s}.jobs ADD COLUMN owner text NOT NULL")
    await pg.db.execute(f"ALTER TABLE {pg.s}.jobs ALTER COLUMN job_type DROP DEFAULT")
    _, reader = await pgreader()
    disc = await reader.discover()
    assert "extra column 'owner'" in disc.note and "NOT NULL" in disc.note
    assert reader.capabilities.retry is False and reader.capabilities.purge is True
    # no Gello tables in a schema: only pg-boss, as before; forced: a note, no crash
    readers, reader = await pgreader(gello_schema=f"{pg.schema}_none")
    assert [r.backend for r in readers] == ["pgboss"] and reader is None
    readers, reader = await pgreader(backend="gello", gello_schema=f"{pg.schema}_none")
    assert [r.backend for r in readers] == ["gello"]
    disc = await reader.discover()
    assert disc.queues == [] and "does not exist" in disc.note
