"""Retry and purge of Gello dead jobs through the action layer, on real Redis and PostgreSQL,
with the reference worker of tests/gello_reference.py. After every action the jobs are conserved:
each job id is in exactly one place (pending/processing/scheduled/dead, or jobs/failed_jobs, or
completed by the worker), none lost, none duplicated -- also when the connection is killed in the
middle of a bulk retry."""
from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
import redis.asyncio as aioredis

from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Refused, Selection
from tests.gello_reference import PgGello, RedisGello


async def fail_always(job):
    raise RuntimeError("boom")


def actions_for(reader, **kw) -> Actions:
    return Actions(lambda q: reader, operator="test@host", **kw)


# ---------------------------------------------------------------------- Redis
class RedisWorld:
    def __init__(self, url, prefix, rg: RedisGello):
        self.url, self.prefix, self.rg = url, prefix, rg
        self.readers = []
        self.completed: list[str] = []

    async def reader(self):
        name = f"qc-gello-{uuid.uuid4().hex[:8]}"
        readers = await open_readers(self.url, ConnectOptions(backend="gello", gello_prefixes=[self.prefix],
                                                              store_prefix=f"{self.prefix}:console", client_name=name))
        self.readers += readers
        [reader] = readers
        reader.name = name
        self.ref = (await reader.discover()).queues[0]
        return reader

    async def make_dead(self, n: int, q: str = "work") -> list[str]:
        ids = [(await self.rg.enqueue(q, "task", {"i": i}, priority="high", max_attempts=1,
                                      idempotency_key=f"k{uuid.uuid4().hex[:6]}"))["meta"]["id"] for i in range(n)]
        await self.rg.work(q, fail_always)
        return ids

    async def run_worker(self, q: str = "work") -> list[str]:
        async def handler(job):
            self.completed.append(job["meta"]["id"])
        done = await self.rg.work(q, handler)
        return [i for i, s in done if s == "completed"]

    async def conserved(self, expected: set[str], q: str = "work") -> dict[str, list[str]]:
        where = await self.rg.ids(q)
        where["completed"] = list(self.completed)
        seen = [i for ids in where.values() for i in ids]
        assert len(seen) == len(set(seen)), f"a job is in two places: {where}"
        assert set(seen) == expected, f"lost {expected - set(seen)}, extra {set(seen) - expected}"
        return where


@pytest.fixture
async def rw(redis_url, prefix):
    client = aioredis.Redis.from_url(redis_url)
    w = RedisWorld(redis_url, prefix, RedisGello(client, prefix))
    yield w
    for r in w.readers:
        await r.close()
    await client.aclose()


async def test_redis_retry_marked_then_reference_worker_completes_them(rw):
    ids = await rw.make_dead(6)
    reader = await rw.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(rw.ref, job_ids=ids[:3]), reset_attempts=True)
    assert preview.count == 3
    report = await acts.execute(preview)
    assert report.complete and report.done == 3, report.summary()
    pending = [json.loads(m) for m in (await rw.rg.members("work"))["pending"]]
    assert sorted(j["meta"]["id"] for j in pending) == sorted(ids[:3])
    for j in pending:  # what gello.md says a retry from outside does
        assert j["meta"]["attempts"] == 0 and j["meta"]["failedAt"] is None and j["lastError"] is None
        assert j["meta"]["scheduledAt"] and j["meta"]["priority"] == "high" and j["meta"]["idempotencyKey"]
    assert sorted(await rw.run_worker()) == sorted(ids[:3])
    where = await rw.conserved(set(ids))
    assert sorted(where["dead"]) == sorted(ids[3:])
    audit = await reader.console_store().audit_read(5)
    assert audit[0]["action"] == "retry" and audit[0]["count"] == 3 and audit[0]["backend"] == "gello"
    # pause is not offered: the action layer refuses it
    with pytest.raises(Refused):
        acts.check_allowed("pause", rw.ref)


async def test_redis_bulk_retry_uses_a_snapshot_and_purge_older_than(rw, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 4)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 4)
    early = await rw.make_dead(10)
    reader = await rw.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(rw.ref))
    assert preview.count == 10
    await asyncio.sleep(0.01)
    late = await rw.make_dead(3)
    report = await acts.execute(preview)
    assert report.complete and report.done == 10 and report.batches >= 3, report.summary()
    where = await rw.conserved(set(early) | set(late))
    assert sorted(where["pending"]) == sorted(early) and sorted(where["dead"]) == sorted(late)
    # purge older than 1 s: only the old ones, in batches; malformed members go with them
    assert sorted(await rw.run_worker()) == sorted(early)  # the retried jobs complete
    await asyncio.sleep(1.1)
    await rw.rg.client.zadd(rw.rg.key("work", "dead"), {b"{not json": 1})
    newer = await rw.make_dead(2)
    preview = await acts.preview("purge", Selection(rw.ref, older_than_ms=1000))
    assert preview.count == 4  # 3 late + 1 malformed
    report = await acts.execute(preview)
    assert report.complete and report.done == 4
    where = await rw.conserved(set(early) | set(newer))
    assert sorted(where["dead"]) == sorted(newer)


async def test_redis_purge_marked_and_unknown_ids(rw):
    ids = await rw.make_dead(3)
    waiting = (await rw.rg.enqueue("work", "t", {}))["meta"]["id"]
    reader = await rw.reader()
    await reader.page(rw.ref, "waiting")  # the reader has seen it waiting
    acts = actions_for(reader)
    report = await acts.execute(await acts.preview("purge", Selection(rw.ref, job_ids=[ids[0], waiting, "nope"])))
    assert report.done == 1
    assert sorted(o.status for o in report.skipped) == ["not-found", "not-in-state"]
    await rw.conserved(set(ids[1:]) | {waiting})


async def test_redis_connection_killed_mid_bulk_retry_then_second_run_finishes(rw, monkeypatch, sync_redis):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 10)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    ids = await rw.make_dead(45)
    reader = await rw.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(rw.ref))

    def kill_after_first_batch(done, total):
        if done == 10:
            for c in sync_redis.client_list():
                if c.get("name") == reader.name:
                    sync_redis.client_kill_filter(_id=c["id"])

    report = await acts.execute(preview, progress=kill_after_first_batch)
    assert not report.complete and report.error and report.done == 10
    where = await rw.conserved(set(ids))
    assert len(where["pending"]) == 10 and len(where["dead"]) == 35
    reader2 = await rw.reader()
    acts2 = actions_for(reader2)
    report2 = await acts2.execute(await acts2.preview("retry", Selection(rw.ref)))
    assert report2.complete and report2.done == 35
    where = await rw.conserved(set(ids))
    assert len(where["pending"]) == 45
    assert sorted(await rw.run_worker()) == sorted(ids)
    await rw.conserved(set(ids))


async def test_redis_two_consoles_retrying_the_same_jobs_retry_each_once(rw):
    ids = await rw.make_dead(20)
    a, b = await rw.reader(), await rw.reader()
    await a.page(rw.ref, "failed", None, 100)
    await b.page(rw.ref, "failed", None, 100)
    ra, rb = await asyncio.gather(a.retry_jobs(rw.ref, ids), b.retry_jobs(rw.ref, ids))
    assert sum(o.ok for o in ra) + sum(o.ok for o in rb) == 20
    where = await rw.conserved(set(ids))
    assert len(where["pending"]) == 20


# ---------------------------------------------------------------------- PostgreSQL
class PgWorld:
    def __init__(self, url, pg: PgGello):
        self.url, self.pg = url, pg
        self.readers = []
        self.completed: list[str] = []

    async def reader(self):
        name = f"qc-gello-{uuid.uuid4().hex[:8]}"
        readers = await open_readers(self.url, ConnectOptions(backend="gello", gello_schema=self.pg.schema,
                                                              client_name=name))
        self.readers += readers
        [reader] = readers
        reader.name = name
        reader.store_schema = f"{self.pg.schema}_store"
        self.ref = (await reader.discover()).queues[0]
        return reader

    async def make_dead(self, n: int, q: str = "work") -> list[str]:
        ids = [await self.pg.enqueue(q, "task", {"i": i}, priority="critical", max_attempts=1) for i in range(n)]
        await self.pg.work(q, fail_always)
        return ids

    async def run_worker(self, q: str = "work") -> list[str]:
        async def handler(row):
            self.completed.append(row["id"])
        done = await self.pg.work(q, handler)
        return [i for i, s in done if s == "completed"]

    async def conserved(self, expected: set[str], q: str = "work") -> dict[str, list[str]]:
        where = await self.pg.ids(q)
        where["completed"] = list(self.completed)
        seen = [i for ids in where.values() for i in ids]
        assert len(seen) == len(set(seen)), f"a job is in two places: {where}"
        assert set(seen) == expected, f"lost {expected - set(seen)}, extra {set(seen) - expected}"
        return where


@pytest.fixture
async def pw(postgres_url):
    schema = f"gello_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres_url, timeout=10)
    pg = PgGello(conn, schema)
    await pg.install()
    w = PgWorld(postgres_url, pg)
    yield w
    for r in w.readers:
        await r.close()
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_store" CASCADE')
    await conn.close()


async def test_pg_retry_marked_then_reference_worker_completes_them(pw):
    ids = await pw.make_dead(5)
    reader = await pw.reader()
    acts = actions_for(reader)
    report = await acts.execute(await acts.preview("retry", Selection(pw.ref, job_ids=ids[:2] + ["nope"])))
    assert report.done == 2 and [o.status for o in report.skipped] in (["not-found"], [])
    rows = await pw.pg.db.fetch(f"SELECT id, attempts, started_at FROM {pw.pg.s}.jobs")
    assert sorted(r["id"] for r in rows) == sorted(ids[:2])
    assert all(r["attempts"] == 0 and r["started_at"] is None for r in rows)
    assert sorted(await pw.run_worker()) == sorted(ids[:2])
    where = await pw.conserved(set(ids))
    assert sorted(where["failed"]) == sorted(ids[2:])
    # purge one marked, then older-than (everything left is older than 0 s)
    report = await acts.execute(await acts.preview("purge", Selection(pw.ref, job_ids=[ids[2]])))
    assert report.done == 1
    assert await reader.count_finished_before(pw.ref, "failed", await reader.server_time_ms()) == 2
    report = await acts.execute(await acts.preview("purge", Selection(pw.ref, older_than_ms=0)))
    assert report.complete and report.done == 2
    await pw.conserved(set(ids[:2]))
    store = reader.console_store()
    if store is not None:
        audit = await store.audit_read(5)
        assert audit and audit[0]["backend"] == "gello"


async def test_pg_bulk_retry_snapshot_in_batches(pw, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 3)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 3)
    early = await pw.make_dead(8)
    reader = await pw.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(pw.ref))
    assert preview.count == 8
    await asyncio.sleep(0.01)
    late = await pw.make_dead(2)
    report = await acts.execute(preview)
    assert report.complete and report.done == 8 and report.batches >= 3, report.summary()
    where = await pw.conserved(set(early) | set(late))
    assert sorted(where["waiting"]) == sorted(early) and sorted(where["failed"]) == sorted(late)


async def test_pg_connection_killed_mid_bulk_retry_then_second_run_finishes(pw, monkeypatch, postgres_url):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 10)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    ids = await pw.make_dead(35)
    reader = await pw.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(pw.ref))
    admin = await asyncpg.connect(postgres_url, timeout=10)
    locker = await asyncpg.connect(postgres_url, timeout=10)
    real = reader.retry_batch
    calls = []

    async def interrupted(*args):
        """The second batch blocks on a table lock (inside its statement) and its backend is
        terminated there: the statement dies mid-way."""
        calls.append(1)
        if len(calls) != 2:
            return await real(*args)
        tx = locker.transaction()
        await tx.start()
        await locker.execute(f"LOCK TABLE {pw.pg.s}.jobs IN SHARE MODE")
        task = asyncio.create_task(real(*args))
        try:
            for _ in range(200):
                n = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                                         "AND wait_event_type = 'Lock'", reader.write_application_name)
                if n:
                    break
                await asyncio.sleep(0.02)
            assert n, "the batch never waited on the lock"
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                                reader.write_application_name)
            return await task
        finally:
            await tx.rollback()

    monkeypatch.setattr(reader, "retry_batch", interrupted)
    try:
        report = await acts.execute(preview)
    finally:
        await admin.close()
        await locker.close()
    assert not report.complete and report.error and report.done == 10, report.summary()
    where = await pw.conserved(set(ids))
    assert len(where["waiting"]) == 10 and len(where["failed"]) == 25
    reader2 = await pw.reader()
    acts2 = actions_for(reader2)
    report2 = await acts2.execute(await acts2.preview("retry", Selection(pw.ref)))
    assert report2.complete and report2.done == 25, report2.summary()
    assert sorted(await pw.run_worker()) == sorted(ids)
    await pw.conserved(set(ids))


async def test_cli_status_and_dlq_retry_with_backend_gello(rw, capsys, monkeypatch, tmp_path):
    from console.cli import main

    for name in ("QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_READ_ONLY", "QUEUE_CONSOLE_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(cfg))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{rw.prefix}:console")  # audit/ledger under our prefix
    ids = await rw.make_dead(3)
    flags = ["--url", rw.url, "--backend", "gello", "--prefix", rw.prefix]

    def cli(*args):
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    code, out, err = await asyncio.to_thread(cli, "status", "--json", *flags)
    assert code in (0, None), err
    [rec] = json.loads(out)["queues"]
    assert rec["backend"] == "gello" and rec["native"] == {"pending": 0, "processing": 0, "scheduled": 0, "dead": 3}
    assert rec["paused"] is False
    code, out, err = await asyncio.to_thread(cli, "dlq", "retry", "work", "--job", ids[0], "--yes", *flags)
    assert code in (0, None), err
    where = await rw.conserved(set(ids))
    assert where["pending"] == [ids[0]]
    code, out, err = await asyncio.to_thread(cli, "pause", "work", "--yes", *flags)
    assert code == 4 and "Traceback" not in err
    audit = await rw.rg.client.xrevrange(f"{rw.prefix}:console:audit", count=5)
    assert audit and b'"backend": "gello"' in audit[0][1][b"record"]


async def test_redis_policy_later_requeues_go_to_gellos_scheduled_set(rw, sync_redis):
    """A rate-limited plan: later starts are scheduled by Gello itself (the scheduled set, score =
    start time), so the console does not hold them; the worker takes them when due."""
    from console.policy import policy_from_toml

    ids = await rw.make_dead(3)
    reader = await rw.reader()
    acts = actions_for(reader, policy=policy_from_toml("[policy.fairness]\nrate = 0.1\n"))
    preview = await acts.preview("retry", Selection(rw.ref, job_ids=ids))
    assert [d.mode for d in preview.plan.accepted] == ["immediate", "delayed", "delayed"]
    report = await acts.execute(preview)
    assert report.complete and report.done == 3, report.summary()
    members = await rw.rg.members("work")
    assert len(members["pending"]) == 1 and len(members["scheduled"]) == 2
    scores = sorted(sync_redis.zrange(f"{rw.prefix}:queue:work:scheduled", 0, -1, withscores=True), key=lambda m: m[1])
    (_, first), (_, second) = scores
    now_ms = int(sync_redis.time()[0]) * 1000
    assert first >= now_ms + 5_000 and second - first >= 9_500
    await rw.conserved(set(ids))
