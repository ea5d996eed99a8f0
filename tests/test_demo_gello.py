"""The demo's Gello workload (console/demo_gello.py), written from docs/backends/gello.md.

1. Redis: the workload runs for a few seconds under the test's own key prefix (never the shared
   server's ``gello``) on the session's Redis; ``open_readers`` finds a Gello reader that sees the
   four queues, counts that move, dead jobs with their errors, and priorities and idempotency keys
   in the job detail.
2. Redis interop: jobs made by the demo's producer (workers off) are claimed and completed by the
   reference worker of tests/gello_reference.py, so the demo writes the real format.
3. The same two for PostgreSQL, in a schema of the test's own.
4. ``queue-console demo [--backend postgres] --no-ui`` (its own embedded server) runs the Gello
   workload beside BullMQ (default prefix ``gello``) or pg-boss (schema ``public``), and stops
   cleanly on SIGTERM.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from backends.gello import record as rec_mod
from backends.registry import ConnectOptions, open_readers
from console import demo_gello as demo
from tests import pgboss_helpers as h
from tests.gello_reference import PgGello, RedisGello

ROOT = Path(__file__).resolve().parent.parent
QUEUES = sorted(demo.QUEUES)


async def ok(job):
    return None


def _start(workload):
    try:
        workload.start(wait_s=30)
    except BaseException:
        workload.stop()
        raise
    return workload


def test_new_job_is_a_gello_record():
    job = demo.new_job("orders", "place-order", {"a": 1}, priority="critical", max_attempts=5,
                       idempotency_key="k1", run_at_ms=demo.now_ms() + 60_000)
    assert set(job) == {"meta", "payload", "lastError"}
    assert set(job["meta"]) == {"id", "queue", "jobType", "priority", "attempts", "maxAttempts", "createdAt",
                                "scheduledAt", "startedAt", "completedAt", "failedAt", "idempotencyKey"}
    rec = rec_mod.parse(demo.dumps(job))
    assert rec.ok and rec.meta["priority"] == "critical" and rec.meta["idempotencyKey"] == "k1"
    assert rec_mod.parse_iso_ms(rec.meta["scheduledAt"]) > rec_mod.parse_iso_ms(rec.meta["createdAt"])
    with pytest.raises(ValueError):
        demo.new_job("q", "t", None, priority="urgent")
    assert [demo.backoff_ms(n, 1000) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert demo.backoff_ms(20, 1000) == 60_000


# ---------------------------------------------------------------------------------------- Redis
async def _gello_redis(redis_url: str, prefix: str):
    readers = await open_readers(redis_url, ConnectOptions(gello_prefixes=[prefix], store_prefix=f"{prefix}:console",
                                                           client_name=f"qc-demo-gello-{uuid.uuid4().hex[:6]}"))
    gello = [r for r in readers if r.backend == "gello"]
    return readers, (gello[0] if gello else None)


async def _close(readers):
    for r in readers:
        await r.close()


async def _statuses(reader) -> dict:
    disc = await reader.discover()
    return {s.queue.name: s for s in await reader.statuses(disc.queues)}


def _total(st: dict, key: str) -> int:
    return sum((s.counts.get(key) or 0) for s in st.values())


async def test_redis_workload_feeds_the_gello_reader(redis_url, prefix):
    workload = _start(demo.GelloRedisWorkload(redis_url, prefix=prefix, speed=4.0, poll_s=0.05))
    readers, reader = await _gello_redis(redis_url, prefix)
    try:
        assert reader is not None, [r.backend for r in readers]
        assert reader.capabilities.pause is False
        first = await _statuses(reader)
        assert {"orders", "exports", "notifications"} <= set(first)  # seeded; invoices once one is sent
        assert first["exports"].counts["delayed"] >= 8  # the seeded scheduled exports
        deadline = time.monotonic() + 25
        while True:
            await asyncio.sleep(0.5)
            st = await _statuses(reader)
            c = workload.counts
            ok_ = (sorted(st) == QUEUES and c.get("completed", 0) > 30 and c.get("retry", 0) > 0 and c.get("dead", 0) > 1
                   and c.get("duplicate", 0) > 0 and st["notifications"].counts["failed"] > 0)
            if ok_ or time.monotonic() > deadline:
                break
        assert workload.error is None
        assert ok_, (workload.counts, {n: s.native for n, s in st.items()})
        assert any(st[q].native != first[q].native for q in first)  # counts move
        assert all(s.counts["completed"] is None and not s.paused for s in st.values())

        # dead jobs carry their errors; the hostile seed job is among them, its text kept raw
        reasons = []
        for q in QUEUES:
            page = await reader.page(st[q].queue, "failed", limit=100)
            reasons += [j.failed_reason.text for j in page.jobs if j.failed_reason]
            assert all(j.native_state == "dead" and j.finished_ms for j in page.jobs)
        assert reasons and any("HTTP 502" in r and "\x1b[31m" in r for r in reasons)

        # priorities and idempotency keys in the job detail
        priorities, keys = set(), set()
        for q, state in (("orders", "waiting"), ("orders", "failed"), ("orders", "delayed"),
                         ("invoices", "waiting"), ("invoices", "delayed"), ("exports", "delayed"),
                         ("notifications", "failed")):
            page = await reader.page(st[q].queue, state, limit=20)
            for j in page.jobs[:10]:
                detail = await reader.job(st[q].queue, j.id)
                if detail is None:  # taken by a worker between the page and the look
                    continue
                priorities.add(detail.extra["priority"])
                if detail.extra["idempotency key"] != "(none)":
                    keys.add(detail.extra["idempotency key"])
        assert len(priorities) >= 3 and priorities <= set(demo.PRIORITIES), priorities
        assert keys
    finally:
        await _close(readers)
        workload.stop()
    assert not workload.running


async def test_reference_worker_completes_demo_jobs_redis(redis_url, prefix):
    workload = _start(demo.GelloRedisWorkload(redis_url, prefix=prefix, speed=8.0, workers=False))
    await asyncio.sleep(1.5)
    workload.stop()
    assert workload.error is None and not workload.running and workload.counts.get("sent", 0) > 5

    client = aioredis.Redis.from_url(redis_url)
    try:
        ref = RedisGello(client, prefix)
        done = {}
        for q in demo.QUEUES:
            before = await ref.ids(q)
            assert not before["processing"] and not before["dead"]
            out = await ref.work(q, ok)
            assert [i for i, _ in out] == before["pending"]  # oldest first, every one, nothing else
            assert all(what == "completed" for _, what in out)
            after = await ref.ids(q)
            assert after["pending"] == [] and after["processing"] == []
            assert after["scheduled"] == before["scheduled"]  # not due yet
            done[q] = len(out)
        assert done["orders"] >= 4 and sum(done.values()) > 5
        # the demo's idempotency keys are what the reference worker marks completed
        raw = await client.get(f"{prefix}:idempotency:orders-seed-0")
        assert raw is not None and json.loads(raw)["status"] == "completed"
    finally:
        await client.aclose()

    # and the demo's worker takes jobs the reference producer made
    client = aioredis.Redis.from_url(redis_url)
    try:
        ref = RedisGello(client, prefix)
        made = [(await ref.enqueue("orders", "place-order", {"n": i}, priority="high"))["meta"]["id"]
                for i in range(5)]
    finally:
        await client.aclose()
    workload = _start(demo.GelloRedisWorkload(redis_url, prefix=prefix, speed=8.0, producers=False, poll_s=0.05))
    try:
        client = aioredis.Redis.from_url(redis_url)
        try:
            ref = RedisGello(client, prefix)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                ids = await ref.ids("orders")
                left = [i for i in made if i in ids["pending"] or i in ids["processing"]]
                if not left:
                    break
                await asyncio.sleep(0.1)
            assert not left
        finally:
            await client.aclose()
    finally:
        workload.stop()
    assert workload.error is None and workload.counts.get("completed", 0) + workload.counts.get("retry", 0) \
        + workload.counts.get("dead", 0) >= 5


# ----------------------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def schema(postgres_url):
    name = h.new_schema("gellodemo")
    yield name
    asyncio.run(h.drop(postgres_url, name))


async def test_pg_workload_feeds_the_gello_reader(postgres_url, schema):
    workload = _start(demo.GelloPgWorkload(postgres_url, schema=schema, speed=4.0, poll_s=0.05))
    readers = await open_readers(postgres_url, ConnectOptions(gello_schema=schema))
    try:
        gello = [r for r in readers if r.backend == "gello"]
        assert gello, [r.backend for r in readers]
        reader = gello[0]
        first = await _statuses(reader)
        assert {"orders", "exports", "notifications"} <= set(first)
        deadline = time.monotonic() + 25
        while True:
            await asyncio.sleep(0.5)
            st = await _statuses(reader)
            c = workload.counts
            ok_ = (sorted(st) == QUEUES and c.get("completed", 0) > 30 and c.get("retry", 0) > 0 and c.get("dead", 0) > 1
                   and st["notifications"].counts["failed"] > 0)
            if ok_ or time.monotonic() > deadline:
                break
        assert workload.error is None
        assert ok_, (workload.counts, {n: s.native for n, s in st.items()})
        assert any(st[q].native != first[q].native for q in first)
        assert st["exports"].counts["delayed"] > 0

        reasons = []
        for q in QUEUES:
            page = await reader.page(st[q].queue, "failed", limit=100)
            reasons += [j.failed_reason.text for j in page.jobs if j.failed_reason]
        assert any("HTTP 502" in r for r in reasons)

        priorities, keys = set(), set()
        for q, state in (("orders", "waiting"), ("orders", "delayed"), ("invoices", "delayed"),
                         ("exports", "delayed"), ("invoices", "waiting")):
            page = await reader.page(st[q].queue, state, limit=20)
            for j in page.jobs[:10]:
                detail = await reader.job(st[q].queue, j.id)
                if detail is None:
                    continue
                priorities.add(detail.extra.get("priority"))
                key = detail.extra.get("idempotency key")
                if key and key != "(none)":
                    keys.add(key)
        assert len(priorities) >= 2 and priorities <= set(demo.PRIORITIES), priorities
        assert keys
    finally:
        await _close(readers)
        workload.stop()
    assert not workload.running


async def test_reference_worker_completes_demo_jobs_pg(postgres_url, schema):
    workload = _start(demo.GelloPgWorkload(postgres_url, schema=schema, speed=8.0, workers=False))
    await asyncio.sleep(1.5)
    workload.stop()
    assert workload.error is None and not workload.running and workload.counts.get("sent", 0) > 5

    conn = await asyncpg.connect(postgres_url)
    try:
        ref = PgGello(conn, schema)
        total = 0
        for q in demo.QUEUES:
            before = await ref.ids(q)
            out = await ref.work(q, ok)
            assert sorted(i for i, _ in out) == sorted(before["waiting"])
            assert all(what == "completed" for _, what in out)
            after = await ref.ids(q)
            assert after["waiting"] == [] and after["active"] == [] and after["delayed"] == before["delayed"]
            total += len(out)
        assert total > 5
        # the reference's claim order is priority text, then scheduled_at: the demo's rows sort with it
        n = await conn.fetchval(f'SELECT count(*) FROM "{schema}".jobs WHERE priority NOT IN '
                                "('low', 'normal', 'high', 'critical')")
        assert n == 0
    finally:
        await conn.close()


# ------------------------------------------------------------------------------ the demo command
def _run_demo_command(args: list[str], options: ConnectOptions, other: str, url_start: str,
                      also: tuple[str, ...] = ()):
    proc = subprocess.Popen([sys.executable, "-m", "console", "demo", *args, "--no-ui"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith(url_start), (line, proc.stderr.read() if proc.poll() is not None else "")

        async def look():
            readers = await open_readers(line, options)
            try:
                backends = sorted(r.backend for r in readers)
                gello = next((r for r in readers if r.backend == "gello"), None)
                if gello is None:
                    return backends, set()
                # Gello keeps no queue registry: a queue is seen while it holds rows or keys, and the
                # demo's workers may drain one (orders) for a moment on a busy machine. Every seeded
                # queue must show up, so look until each has been seen (30 s at most).
                names: set[str] = set()
                deadline = time.monotonic() + 30
                while True:
                    names |= {q.name for q in (await gello.discover()).queues}
                    if {"orders", "notifications", "exports"} <= names or time.monotonic() > deadline:
                        return backends, names
                    await asyncio.sleep(0.2)
            finally:
                await _close(readers)

        backends, names = asyncio.run(look())
        assert backends == sorted([other, "gello", *also])
        assert {"orders", "notifications", "exports"} <= names <= set(QUEUES)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()


def test_demo_command_runs_gello_beside_bullmq():
    """Its own embedded Redis; the Gello workload under the default prefix ``gello``."""
    _run_demo_command([], ConnectOptions(), "bullmq", "redis://127.0.0.1:")


def test_demo_command_runs_gello_beside_pgboss():
    """Its own embedded PostgreSQL; Gello's tables in ``public``, pg-boss in ``pgboss`` (and BullMQ
    for Python's PostgreSQL workload in ``bullmq``, detected as well)."""
    _run_demo_command(["--backend", "postgres"], ConnectOptions(schema="pgboss"), "pgboss", "postgresql://",
                      also=("bullmq-postgres",))
