"""The reader contract suite: every declared backend runs the same tests on a real server, with its
queue made by the library itself (BullMQ for Python's Queue and Worker, on Redis and on PostgreSQL;
pg-boss 12.38's own schema and rows; Gello's reference producer and worker, tests/gello_reference.py).

Each world makes one queue ``contract`` with 5 waiting and 3 failed jobs and reports the ids the
library holds per state. The suite checks counts against those, pages (every id exactly once over
small pages, total = count), detail, cursors, bad input (the same errors everywhere: an unknown
state is UnknownState for reads and mutations, an unknown job id is "not-found"), and each mutation
capability -- retry one, bulk retry in batches, remove one, bulk purge in batches, promote, cancel,
pause: a backend either does it (and the job really moves, as the library's own rows/keys show) or
declares it off (and the call raises Unsupported). A new backend adds a world here (see
docs/development.md); ``add_delayed`` is asked only of backends that declare promote.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from backends.contract import QueueRef, Reader
from backends.errors import BadCursor, BadRequest, Unsupported, UnknownState
from backends.registry import ConnectOptions, open_readers
from tests import pgboss_helpers as h
from tests.gello_reference import PgGello, RedisGello

QUEUE = "contract"
WAITING, FAILED = 5, 3


async def _fail(job, token=None):
    raise RuntimeError("contract boom")


class World:
    """One backend's queue: ``reader``, ``ref`` and ``truth()`` (ids per canonical state, as the
    library holds them)."""

    reader: Reader
    ref: QueueRef

    async def truth(self) -> dict[str, set[str]]:
        raise NotImplementedError

    async def add_delayed(self) -> str:
        """One more job, delayed by the library (only asked of backends that declare promote)."""
        raise NotImplementedError

    async def close(self) -> None:
        await self.reader.close()


async def _add_delayed(opts: dict) -> str:
    from bullmq import Queue

    queue = Queue(QUEUE, opts)
    try:
        return str((await queue.add("task", {"d": 1}, {"delay": 3_600_000})).id)
    finally:
        await queue.close()


async def _only(url: str, options: ConnectOptions, backend: str) -> tuple[Reader, QueueRef]:
    readers = await open_readers(url, options)
    [reader] = [r for r in readers if r.backend == backend]
    for other in readers:
        if other is not reader:
            await other.close()
    disc = await reader.discover()
    [ref] = [q for q in disc.queues if q.name == QUEUE]
    return reader, ref


class BullMQWorld(World):
    async def setup(self, redis_url: str, prefix: str) -> None:
        from bullmq import Queue, Worker

        self.client = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.conn = conn = {"connection": redis_url, "prefix": prefix}
        queue = Queue(QUEUE, conn)
        try:
            failed = [(await queue.add("task", {"i": i}, {"attempts": 1})).id for i in range(FAILED)]
            worker = Worker(QUEUE, _fail, {**conn, "concurrency": 3})
            try:
                for _ in range(400):
                    if await self.client.zcard(f"{prefix}:{QUEUE}:failed") == FAILED:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await worker.close(force=True)
            assert len(failed) == FAILED
            for i in range(WAITING):
                await queue.add("task", {"w": i})
        finally:
            await queue.close()
        self.reader, self.ref = await _only(redis_url, ConnectOptions(prefixes=[prefix], store_prefix=f"{prefix}:console"),
                                            "bullmq")

    async def truth(self):
        k = f"{self.prefix}:{QUEUE}"
        return {"waiting": {m.decode() for m in await self.client.lrange(f"{k}:wait", 0, -1)},
                "delayed": {m.decode() for m in await self.client.zrange(f"{k}:delayed", 0, -1)},
                "failed": {m.decode() for m in await self.client.zrange(f"{k}:failed", 0, -1)}}

    async def add_delayed(self):
        return await _add_delayed(self.conn)

    async def close(self):
        await super().close()
        await self.client.aclose()


class PgBossWorld(World):
    async def setup(self, postgres_url: str) -> None:
        self.url, self.schema = postgres_url, h.new_schema("contract")
        self.store = f"{self.schema}_store"
        await h.install(postgres_url, "v12", self.schema)
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, self.schema, QUEUE)
            for i in range(FAILED):
                await h.add_job(conn, self.schema, QUEUE, "failed", started_s=-5, completed_s=-4 + i,
                                output={"message": "contract boom"}, retry_limit=0)
            for i in range(WAITING):
                await h.add_job(conn, self.schema, QUEUE, "created", created_s=-10 + i)
        self.reader, self.ref = await _only(postgres_url, ConnectOptions(schema=self.schema, store_schema=self.store),
                                            "pgboss")

    async def truth(self):
        async with h.admin(self.url) as conn:
            rows = await conn.fetch(f'SELECT id::text AS id, state::text AS state, start_after > now() AS later '
                                    f'FROM "{self.schema}".job WHERE name = $1', QUEUE)
        queued = [r for r in rows if r["state"] in ("created", "retry")]
        return {"waiting": {r["id"] for r in queued if not r["later"]},
                "delayed": {r["id"] for r in queued if r["later"]},
                "failed": {r["id"] for r in rows if r["state"] == "failed"},
                "cancelled": {r["id"] for r in rows if r["state"] == "cancelled"}}

    async def add_delayed(self):
        async with h.admin(self.url) as conn:
            return await h.add_job(conn, self.schema, QUEUE, "created", start_after_s=3600)

    async def close(self):
        await super().close()
        await h.drop(self.url, self.schema)
        await h.drop(self.url, self.store)


class GelloRedisWorld(World):
    async def setup(self, redis_url: str, prefix: str) -> None:
        self.client = aioredis.Redis.from_url(redis_url)
        self.gello = RedisGello(self.client, prefix)
        for i in range(FAILED):
            await self.gello.enqueue(QUEUE, "send", {"i": i}, max_attempts=1)
        await self.gello.work(QUEUE, _fail, limit=FAILED)
        for i in range(WAITING):
            await self.gello.enqueue(QUEUE, "send", {"w": i})
        self.reader, self.ref = await _only(
            redis_url, ConnectOptions(backend="gello", prefixes=[prefix], store_prefix=f"{prefix}:console"), "gello")

    async def truth(self):
        ids = await self.gello.ids(QUEUE)
        return {"waiting": set(ids["pending"]), "failed": set(ids["dead"])}

    async def close(self):
        await super().close()
        await self.client.aclose()


class GelloPgWorld(World):
    async def setup(self, postgres_url: str) -> None:
        import asyncpg

        self.schema = f"gello_{uuid.uuid4().hex[:10]}"
        self.conn = await asyncpg.connect(postgres_url, timeout=10)
        self.gello = PgGello(self.conn, self.schema)
        await self.gello.install()
        for i in range(FAILED):
            await self.gello.enqueue(QUEUE, "send", {"i": i}, max_attempts=1)
        await self.gello.work(QUEUE, _fail, limit=FAILED)
        for i in range(WAITING):
            await self.gello.enqueue(QUEUE, "send", {"w": i})
        self.reader, self.ref = await _only(
            postgres_url, ConnectOptions(backend="gello", schema=self.schema, store_schema=f"{self.schema}_store"),
            "gello")

    async def truth(self):
        ids = await self.gello.ids(QUEUE)
        return {"waiting": {str(i) for i in ids["waiting"]}, "failed": {str(i) for i in ids["failed"]}}

    async def close(self):
        await super().close()
        await self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        await self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}_store" CASCADE')
        await self.conn.close()


class BullMQPgWorld(World):
    """BullMQ 6 on PostgreSQL, written by BullMQ for Python's PostgreSQL backend."""

    async def setup(self, postgres_url: str) -> None:
        from bullmq import Queue, Worker

        self.url, self.schema = postgres_url, f"qct_bmpg_{uuid.uuid4().hex[:8]}"
        self.opts = opts = {"backend": "postgres", "connection": postgres_url, "schema": self.schema}
        queue = Queue(QUEUE, opts)
        try:
            for i in range(FAILED):
                await queue.add("task", {"i": i}, {"attempts": 1})
            worker = Worker(QUEUE, _fail, {**opts, "drainDelay": 1})
            try:
                for _ in range(1200):
                    if (await queue.getJobCounts("failed"))["failed"] == FAILED:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await worker.close()
            for i in range(WAITING):
                await queue.add("task", {"w": i})
        finally:
            await queue.close()
        self.reader, self.ref = await _only(
            postgres_url, ConnectOptions(backend="bullmq-postgres", schema=self.schema,
                                         store_schema=f"{self.schema}_store"), "bullmq-postgres")

    async def truth(self):
        async with h.admin(self.url) as conn:
            rows = await conn.fetch(f'SELECT id::text AS id, state::text AS state FROM "{self.schema}".job '
                                    "WHERE queue = $1", QUEUE)
        return {state: {r["id"] for r in rows if r["state"] == state} for state in ("waiting", "delayed", "failed")}

    async def add_delayed(self):
        return await _add_delayed(self.opts)

    async def close(self):
        try:
            await super().close()
        finally:
            await h.drop(self.url, self.schema)
            await h.drop(self.url, f"{self.schema}_store")


@pytest.fixture(params=["bullmq", "pgboss", "gello-redis", "gello-postgres", "bullmq-postgres"])
async def world(request, redis_url, prefix, postgres_url):
    kind = request.param
    if kind in ("bullmq", "gello-redis"):
        w = BullMQWorld() if kind == "bullmq" else GelloRedisWorld()
        await w.setup(redis_url, prefix)
    else:
        w = {"pgboss": PgBossWorld, "gello-postgres": GelloPgWorld, "bullmq-postgres": BullMQPgWorld}[kind]()
        await w.setup(postgres_url)
    yield w
    await w.close()


async def walk(reader: Reader, ref: QueueRef, state: str, limit: int = 2):
    ids, cursor, pages, total = [], None, 0, None
    while True:
        page = await reader.page(ref, state, cursor, limit)
        assert len(page.jobs) <= limit and all(j.state == state for j in page.jobs)
        ids += [j.id for j in page.jobs]
        total = page.total if total is None else total
        pages += 1
        assert pages < 50
        cursor = page.next_cursor
        if cursor is None:
            return ids, total


async def count(world: World, state: str) -> int:
    [status] = await world.reader.statuses([world.ref])
    return status.counts[state]


async def declared_off(world: World, capability: str, call) -> bool:
    """True when the queue declares ``capability`` off, after checking that ``call()`` is refused
    (Unsupported); False when the backend offers it and the test goes on."""
    if getattr(world.reader.queue_capabilities(world.ref), capability):
        return False
    with pytest.raises(Unsupported):
        await call()
    return True


async def test_counts_match_the_library(world):
    truth = await world.truth()
    [status] = await world.reader.statuses([world.ref])
    assert status.queue == world.ref
    assert status.counts["waiting"] == len(truth["waiting"]) == WAITING
    assert status.counts["failed"] == len(truth["failed"]) == FAILED


async def test_pages_show_every_job_once_across_cursors(world):
    truth = await world.truth()
    for state in ("waiting", "failed"):
        ids, total = await walk(world.reader, world.ref, state, limit=2)
        assert sorted(ids) == sorted(truth[state]), state
        assert total == len(truth[state])


async def test_failed_rows_are_the_failed_pages_fields(world):
    """``failed_rows`` (what grouping reads) walks the same windows as ``page(…, "failed")`` and holds
    the same id, name, finish time and reason as its rows."""
    truth = await world.truth()
    full, cursor = [], None
    while True:
        page = await world.reader.page(world.ref, "failed", cursor, 2)
        full += [(j.id, j.name, j.finished_ms, j.failed_reason.text if j.failed_reason else None) for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    light, cursor, totals = [], None, set()
    while True:
        rows, cursor, total = await world.reader.failed_rows(world.ref, cursor, 2)
        assert len(rows) <= 2
        light += [tuple(r) for r in rows]
        totals.add(total)
        if cursor is None:
            break
    assert light == full and sorted(r[0] for r in light) == sorted(truth["failed"])
    assert totals == {len(truth["failed"])} and all("contract boom" in (r[3] or "") for r in light)


async def test_detail_of_a_listed_job_and_of_a_missing_one(world):
    page = await world.reader.page(world.ref, "failed", None, 10)
    one = page.jobs[0]
    detail = await world.reader.job(world.ref, one.id)
    assert detail is not None and detail.summary.id == one.id and detail.summary.state == "failed"
    assert detail.summary.failed_reason is not None and "contract boom" in detail.summary.failed_reason.text
    assert await world.reader.job(world.ref, str(uuid.uuid4())) is None
    assert await world.reader.job(world.ref, "no-such-job") is None


async def test_bad_input_raises_the_same_errors_everywhere(world):
    with pytest.raises(UnknownState) as exc:
        await world.reader.page(world.ref, "no_such_state")
    assert isinstance(exc.value, BadRequest) and "no_such_state" in str(exc.value)
    for bad in ("garbage", "9:z:x", "eyJzIjoid2FpdGluZyJ9"):
        with pytest.raises(BadCursor):
            await world.reader.page(world.ref, "waiting", bad)
    # a cursor of one state is refused by another (keyset cursors name their state); a position
    # cursor, which carries none, at least stays inside the other state's list
    first = await world.reader.page(world.ref, "waiting", None, 2)
    assert first.next_cursor is not None
    try:
        page = await world.reader.page(world.ref, "failed", first.next_cursor, 2)
    except BadRequest:
        pass
    else:
        assert {j.id for j in page.jobs} <= (await world.truth())["failed"]


async def test_retry_moves_the_job_or_is_declared_off(world):
    truth = await world.truth()
    job_id = sorted(truth["failed"])[0]
    if await declared_off(world, "retry", lambda: world.reader.retry_jobs(world.ref, [job_id], "failed")):
        return
    [outcome] = await world.reader.retry_jobs(world.ref, [job_id], "failed")
    assert outcome.ok and outcome.job_id == job_id, outcome
    after = await world.truth()
    assert job_id not in after["failed"] and len(after["failed"]) == FAILED - 1
    assert await count(world, "failed") == FAILED - 1
    assert len(after["waiting"]) == WAITING + 1 and await count(world, "waiting") == WAITING + 1
    [outcome] = await world.reader.retry_jobs(world.ref, [job_id], "failed")
    assert not outcome.ok  # not failed any more: nothing moves twice


async def test_remove_deletes_the_job_or_is_declared_off(world):
    truth = await world.truth()
    job_id = sorted(truth["failed"])[0]
    if await declared_off(world, "purge", lambda: world.reader.remove_jobs(world.ref, [job_id], "failed")):
        return
    [outcome] = await world.reader.remove_jobs(world.ref, [job_id], "failed")
    assert outcome.ok, outcome
    after = await world.truth()
    assert job_id not in after["failed"] and after["waiting"] == truth["waiting"]
    assert await count(world, "failed") == FAILED - 1


async def test_pause_resumes_or_is_declared_off(world):
    if await declared_off(world, "pause", lambda: world.reader.set_paused(world.ref, True)):
        return
    await world.reader.set_paused(world.ref, True)
    [status] = await world.reader.statuses([world.ref])
    assert status.paused
    await world.reader.set_paused(world.ref, False)
    [status] = await world.reader.statuses([world.ref])
    assert not status.paused and status.counts["waiting"] == WAITING


async def test_reading_never_goes_through_a_writable_session(world):
    """A SQL reader reads through read-only sessions (its mutations open a writable pool of their
    own); a Redis reader's client has no such mode, so this checks the SQL readers."""
    pool = getattr(world.reader, "pool", None)
    if pool is None:
        pytest.skip("no SQL pool: a Redis reader")
    import asyncpg

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await pool.execute(f"CREATE TEMP TABLE qc_contract_{uuid.uuid4().hex[:8]} (x int)")


# ---------------------------------------------------------------------- mutations per capability
async def _until_done(batch, limit: int = 20) -> int:
    """Run one bulk action's batches to the end (as console.actions does); the jobs they moved."""
    done = 0
    for _ in range(limit):
        out = await batch()
        assert out.done >= 0
        done += out.done
        if not out.more:
            return done
    raise AssertionError(f"bulk action not finished after {limit} batches")


async def test_bulk_retry_moves_every_failed_job_in_batches_or_is_declared_off(world):
    before_ms = await world.reader.server_time_ms()
    assert before_ms is not None
    if await declared_off(world, "retry", lambda: world.reader.retry_batch(world.ref, "failed", before_ms, 2)):
        return
    assert await world.reader.count_finished_before(world.ref, "failed", before_ms) == FAILED
    first = await world.reader.retry_batch(world.ref, "failed", before_ms, 2)
    assert first.done == 2 and first.more, first  # a batch never goes past its count
    rest = await _until_done(lambda: world.reader.retry_batch(world.ref, "failed", before_ms, 2))
    assert first.done + rest == FAILED
    after = await world.truth()
    assert after["failed"] == set() and len(after["waiting"]) == WAITING + FAILED
    assert await count(world, "failed") == 0 and await count(world, "waiting") == WAITING + FAILED
    assert await world.reader.count_finished_before(world.ref, "failed", before_ms) == 0


async def test_bulk_purge_removes_every_failed_job_in_batches_or_is_declared_off(world):
    before_ms = await world.reader.server_time_ms()
    if await declared_off(world, "purge", lambda: world.reader.purge_batch(world.ref, "failed", before_ms, 2)):
        return
    truth = await world.truth()
    first = await world.reader.purge_batch(world.ref, "failed", before_ms, 2)
    assert first.done == 2 and first.more, first
    rest = await _until_done(lambda: world.reader.purge_batch(world.ref, "failed", before_ms, 2))
    assert first.done + rest == FAILED
    after = await world.truth()
    assert after["failed"] == set() and after["waiting"] == truth["waiting"]
    assert await count(world, "failed") == 0 and await count(world, "waiting") == WAITING


async def test_promote_runs_a_delayed_job_now_or_is_declared_off(world):
    waiting = sorted((await world.truth())["waiting"])
    if await declared_off(world, "promote", lambda: world.reader.promote_jobs(world.ref, waiting[:1])):
        return
    job_id = await world.add_delayed()
    assert job_id in (await world.truth())["delayed"] and await count(world, "delayed") == 1
    [outcome] = await world.reader.promote_jobs(world.ref, [job_id])
    assert outcome.ok and outcome.job_id == job_id, outcome
    after = await world.truth()
    assert job_id in after["waiting"] and job_id not in after["delayed"]
    assert await count(world, "delayed") == 0 and await count(world, "waiting") == WAITING + 1
    [again] = await world.reader.promote_jobs(world.ref, [job_id])
    assert not again.ok  # not delayed any more


async def test_cancel_stops_a_waiting_job_or_is_declared_off(world):
    truth = await world.truth()
    job_id = sorted(truth["waiting"])[0]
    if await declared_off(world, "cancel", lambda: world.reader.cancel_jobs(world.ref, [job_id])):
        return
    [outcome] = await world.reader.cancel_jobs(world.ref, [job_id])
    assert outcome.ok and outcome.job_id == job_id, outcome
    after = await world.truth()
    assert job_id in after["cancelled"] and job_id not in after["waiting"]
    assert await count(world, "waiting") == WAITING - 1 and await count(world, "cancelled") == 1
    [again] = await world.reader.cancel_jobs(world.ref, [job_id])
    assert not again.ok


async def test_mutations_refuse_an_unknown_state_and_report_unknown_ids_the_same_everywhere(world):
    caps = world.reader.queue_capabilities(world.ref)
    truth = await world.truth()
    job_id = sorted(truth["failed"])[0]
    now = await world.reader.server_time_ms()
    calls = []
    if caps.retry:
        calls += [world.reader.retry_jobs(world.ref, [job_id], "no_such_state"),
                  world.reader.retry_batch(world.ref, "no_such_state", now, 10),
                  world.reader.count_finished_before(world.ref, "no_such_state", now)]
    if caps.purge:
        calls += [world.reader.remove_jobs(world.ref, [job_id], "no_such_state"),
                  world.reader.purge_batch(world.ref, "no_such_state", now, 10)]
    for call in calls:
        with pytest.raises(UnknownState) as exc:
            await call
        assert "no_such_state" in str(exc.value)
    if caps.retry:  # a state the queue has, which a retry cannot take: a bad request too (exit 2)
        with pytest.raises(BadRequest):
            await world.reader.retry_jobs(world.ref, [sorted(truth["waiting"])[0]], "waiting")
    unknown = [str(uuid.uuid4()), "no-such-job"]
    for name, enabled, call in (
            ("retry", caps.retry, lambda: world.reader.retry_jobs(world.ref, unknown, "failed")),
            ("purge", caps.purge, lambda: world.reader.remove_jobs(world.ref, unknown, "failed")),
            ("promote", caps.promote, lambda: world.reader.promote_jobs(world.ref, unknown)),
            ("cancel", caps.cancel, lambda: world.reader.cancel_jobs(world.ref, unknown))):
        if not enabled:
            continue
        outcomes = await call()
        assert [(o.job_id, o.ok, o.status) for o in outcomes] == [(i, False, "not-found") for i in unknown], name
    after = await world.truth()
    assert after["failed"] == truth["failed"] and after["waiting"] == truth["waiting"]  # nothing moved
