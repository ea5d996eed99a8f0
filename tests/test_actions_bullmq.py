"""The action layer on real Redis with real BullMQ (Python) workers: retry, purge, pause, audit,
read-only, fault injection, concurrent consoles. After every bulk action the jobs are conserved:
each job is in exactly one state, none lost, none duplicated."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis
from bullmq import Queue, Worker

from backends.bullmq.keys import QueueKeys
from backends.contract import QueueRef
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Refused, Selection
from console.cli import main

STATE_KEYS = {"wait": "list", "paused": "list", "active": "list", "prioritized": "zset", "delayed": "zset",
              "completed": "zset", "failed": "zset", "waiting-children": "zset"}


def job_states(client: redis.Redis, prefix: str, queue: str) -> dict[str, list[str]]:
    """Every job id per state key, read straight from Redis."""
    k = QueueKeys(prefix, queue)
    out = {}
    for suffix, kind in STATE_KEYS.items():
        raw = client.lrange(k(suffix), 0, -1) if kind == "list" else client.zrange(k(suffix), 0, -1)
        out[suffix] = [r.decode() for r in raw]
    return out


def assert_conserved(client, prefix, queue, expected_ids: set[str]) -> dict[str, list[str]]:
    states = job_states(client, prefix, queue)
    seen = [i for ids in states.values() for i in ids]
    assert len(seen) == len(set(seen)), f"a job is in two states or twice in one: {states}"
    assert set(seen) == expected_ids, f"lost {expected_ids - set(seen)}, extra {set(seen) - expected_ids}"
    return states


async def wait_until(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class World:
    """A queue with failed jobs made by a real BullMQ worker, and readers/actions over it."""

    def __init__(self, url: str, prefix: str, name: str = "work") -> None:
        self.url, self.prefix, self.name = url, prefix, name
        self.conn = {"connection": url, "prefix": prefix}
        self.queue = Queue(name, self.conn)
        self.fail = True
        self.processed: list[str] = []
        self.worker: Worker | None = None
        self.readers = []

    async def processor(self, job, token):
        self.processed.append(job.id)
        if self.fail:
            raise RuntimeError(f"boom {job.id}")
        return "ok"

    async def make_failed(self, n: int, attempts: int = 1) -> list[str]:
        jobs = [await self.queue.add("task", {"i": i, "tenant": i % 3}, {"attempts": attempts}) for i in range(n)]
        ids = [j.id for j in jobs]
        self.start_worker()
        await wait_until(lambda: self._all_failed(ids), what=f"{n} failed jobs")
        return ids

    def start_worker(self) -> None:
        if self.worker is None:
            self.worker = Worker(self.name, self.processor, {**self.conn, "concurrency": 10})

    async def stop_worker(self) -> None:
        """No worker takes jobs from here on (retried jobs stay waiting where the test can see them).

        A forced close, not ``Worker.pause()``: BullMQ for Python's pause waits for every task in
        ``worker.processing``, and that set also holds the fetcher tasks (``retryIfFailed`` around
        ``getNextJob``). A fetcher created just before the pause sets ``worker.waiting`` after pause
        cancelled it and blocks in BZPOPMIN; on a connection error ``retryIfFailed`` sleeps
        ``runRetryDelay`` (15 s) and retries without end, so pause() could wait for minutes.
        ``close(force=True)`` cancels those tasks instead of waiting for them."""
        if self.worker is not None:
            worker, self.worker = self.worker, None
            await worker.close(force=True)

    async def _all_failed(self, ids: list[str]) -> bool:
        client = redis.Redis.from_url(self.url)
        try:
            pipe = client.pipeline()
            for i in ids:
                pipe.zscore(f"{self.prefix}:{self.name}:failed", i)
            return all(score is not None for score in pipe.execute())
        finally:
            client.close()

    async def reader(self, **opts):
        options = ConnectOptions(prefixes=[self.prefix], store_prefix=f"{self.prefix}:console",
                                 client_name=f"qc-test-{uuid.uuid4().hex[:8]}", **opts)
        [reader] = await open_readers(self.url, options)
        await reader.discover()
        self.readers.append(reader)
        return reader

    def ref(self) -> QueueRef:
        return QueueRef(connection=self.url, backend="bullmq", namespace=self.prefix, name=self.name)

    async def close(self):
        if self.worker is not None:
            await self.worker.close(force=True)
        await self.queue.close()
        for r in self.readers:
            await r.close()


@pytest.fixture
async def world(redis_url, prefix):
    w = World(redis_url, prefix)
    yield w
    await w.close()


def actions_for(reader, **kw) -> Actions:
    return Actions(lambda q: reader, operator="test@host", **kw)


async def test_retry_marked_jobs_then_real_worker_completes_them(world, sync_redis):
    ids = await world.make_failed(6, attempts=2)
    reader = await world.reader()
    acts = actions_for(reader)
    chosen = ids[:3]
    preview = await acts.preview("retry", Selection(world.ref(), job_ids=chosen + [chosen[0]]), reset_attempts=True)
    assert preview.count == 3 and any("duplicate" in w for w in preview.warnings)
    world.fail = False
    report = await acts.execute(preview)
    assert report.complete and report.done == 3 and not report.skipped
    await wait_until(lambda: len(sync_redis.zrange(f"{world.prefix}:work:completed", 0, -1)) == 3, what="completions")
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert sorted(states["completed"]) == sorted(chosen)
    assert sorted(states["failed"]) == sorted(ids[3:])
    # with reset attempts, the job ran again as a fresh job: attemptsMade back to 1 after one run
    assert sync_redis.hget(f"{world.prefix}:work:{chosen[0]}", "atm") == b"1"
    audit = await reader.console_store().audit_read(5)
    assert audit[0]["action"] == "retry" and audit[0]["count"] == 3 and audit[0]["who"] == "test@host"


async def test_bulk_retry_uses_a_fixed_snapshot(world, sync_redis):
    early = await world.make_failed(30)
    reader = await world.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(world.ref()))
    assert preview.count == 30
    await asyncio.sleep(0.01)
    late = await world.make_failed(5)  # fail after the snapshot: must not be swept in
    world.fail = True
    await world.stop_worker()  # retried jobs stay waiting so we can see them
    report = await acts.execute(preview)
    assert report.complete and report.done == 30
    states = assert_conserved(sync_redis, world.prefix, "work", set(early) | set(late))
    assert sorted(states["wait"]) == sorted(early)
    assert sorted(states["failed"]) == sorted(late)


async def test_purge_older_than_in_batches(world, sync_redis, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 7)
    old = await world.make_failed(20)
    await asyncio.sleep(1.2)
    new = await world.make_failed(4)
    reader = await world.reader()
    acts = actions_for(reader)
    preview = await acts.preview("purge", Selection(world.ref(), older_than_ms=1000))
    assert preview.count == 20
    seen = []
    report = await acts.execute(preview, progress=lambda done, total: seen.append(done))
    assert report.complete and report.done == 20 and report.batches >= 3
    assert seen == sorted(seen) and seen[-1] == 20
    states = assert_conserved(sync_redis, world.prefix, "work", set(new))
    assert sorted(states["failed"]) == sorted(new)
    assert not any(sync_redis.exists(f"{world.prefix}:work:{i}") for i in old)


async def test_purge_marked_jobs_leaves_jobs_in_other_states(world, sync_redis):
    ids = await world.make_failed(3)
    world.fail = False
    done = await world.queue.add("task", {"i": 99})
    await wait_until(lambda: sync_redis.zscore(f"{world.prefix}:work:completed", done.id) is not None)
    reader = await world.reader()
    acts = actions_for(reader)
    report = await acts.execute(await acts.preview("purge", Selection(world.ref(), job_ids=[ids[0], done.id, "nope"])))
    assert report.done == 1
    assert sorted(o.status for o in report.skipped) == ["not-found", "not-in-state"]
    assert_conserved(sync_redis, world.prefix, "work", set(ids[1:]) | {done.id})


async def test_connection_killed_mid_bulk_retry_then_second_run_finishes(world, sync_redis, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    ids = await world.make_failed(45)
    await world.stop_worker()
    reader = await world.reader()
    name = reader.client.connection_pool.connection_kwargs["client_name"]
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(world.ref()))

    def kill_after_first_batch(done, total):
        if done == 10:
            for c in sync_redis.client_list():
                if c.get("name") == name:
                    sync_redis.client_kill_filter(_id=c["id"])

    report = await acts.execute(preview, progress=kill_after_first_batch)
    assert not report.complete and report.error and report.done == 10
    assert "run again" in report.summary()
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert len(states["wait"]) == 10 and len(states["failed"]) == 35
    # a second run (new connection) finishes the rest
    reader2 = await world.reader()
    acts2 = actions_for(reader2)
    report2 = await acts2.execute(await acts2.preview("retry", Selection(world.ref())))
    assert report2.complete and report2.done == 35
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert len(states["wait"]) == 45


async def test_connection_killed_mid_bulk_purge_then_second_run_finishes(world, sync_redis, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    ids = await world.make_failed(35)
    reader = await world.reader()
    name = reader.client.connection_pool.connection_kwargs["client_name"]
    acts = actions_for(reader)

    def kill(done, total):
        if done == 20:
            for c in sync_redis.client_list():
                if c.get("name") == name:
                    sync_redis.client_kill_filter(_id=c["id"])

    report = await acts.execute(await acts.preview("purge", Selection(world.ref())), progress=kill)
    assert not report.complete and report.done == 20
    remaining = assert_conserved(sync_redis, world.prefix, "work", set(job_states(sync_redis, world.prefix, "work")["failed"]))
    assert len(remaining["failed"]) == 15
    acts2 = actions_for(await world.reader())
    report2 = await acts2.execute(await acts2.preview("purge", Selection(world.ref())))
    assert report2.complete and report2.done == 15
    assert not any(sync_redis.exists(f"{world.prefix}:work:{i}") for i in ids)


async def test_two_consoles_retrying_the_same_set_retry_each_job_once(world, sync_redis):
    ids = await world.make_failed(40)
    await world.stop_worker()
    a, b = actions_for(await world.reader()), actions_for(await world.reader())
    pa = await a.preview("retry", Selection(world.ref(), job_ids=list(ids)))
    pb = await b.preview("retry", Selection(world.ref(), job_ids=list(reversed(ids))))
    ra, rb = await asyncio.gather(a.execute(pa), b.execute(pb))
    assert ra.done + rb.done == 40
    assert all(o.status == "not-in-state" for o in ra.skipped + rb.skipped)
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert sorted(states["wait"]) == sorted(ids)
    events = sync_redis.xrange(f"{world.prefix}:work:events")
    retried = [e[1][b"jobId"].decode() for e in events if e[1].get(b"event") == b"waiting" and e[1].get(b"prev") == b"failed"]
    assert sorted(retried) == sorted(ids), "each job retried exactly once"


async def test_two_consoles_bulk_retrying_at_once(world, sync_redis, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 5)
    ids = await world.make_failed(50)
    await world.stop_worker()
    a, b = actions_for(await world.reader()), actions_for(await world.reader())
    pa, pb = await a.preview("retry", Selection(world.ref())), await b.preview("retry", Selection(world.ref()))
    ra, rb = await asyncio.gather(a.execute(pa), b.execute(pb))
    assert ra.done + rb.done == 50
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert len(states["wait"]) == 50


@pytest.fixture(autouse=True)
def own_store_prefix(monkeypatch, prefix):
    """The CLI keeps its audit/ledger/pause records under this test's own prefix."""
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")


def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


async def test_global_pause_keeps_an_already_paused_queue_paused(redis_url, prefix, sync_redis, capsys):
    conn = {"connection": redis_url, "prefix": prefix}
    queues = {n: Queue(n, conn) for n in ("a", "b", "c")}
    seen: list[str] = []

    async def proc(job, token):
        seen.append(job.id)
        return "ok"

    workers = {n: Worker(n, proc, conn) for n in queues}
    try:
        for q in queues.values():
            await q.add("warmup", {})
        await wait_until(lambda: len(seen) == 3, what="warm-up jobs")
        await queues["b"].pause()  # paused by someone before the incident
        flags = ["--url", redis_url, "--prefix", prefix]
        code, out, err = await asyncio.to_thread(cli, capsys, "pause", "--all", *flags, "--yes")
        assert code == 0, err
        assert "already paused" in err and "bullmq:b" in err
        assert all([await q.isPaused() for q in queues.values()])
        seen.clear()
        for q in queues.values():
            await q.add("during", {})
        await asyncio.sleep(1.5)
        assert seen == [], "a real worker processed a job while paused"
        code, out, err = await asyncio.to_thread(cli, capsys, "resume", "--all", *flags, "--yes")
        assert code == 0, err
        assert not await queues["a"].isPaused() and not await queues["c"].isPaused()
        assert await queues["b"].isPaused(), "resume --all resumed a queue it had not paused"
        await wait_until(lambda: len(seen) == 2, what="a and c to process after resume")
        code, out, err = await asyncio.to_thread(cli, capsys, "audit", *flags, "--json")
        assert code == 0 and '"action": "resume"' in out and '"global": true' in out
    finally:
        for w in workers.values():
            await w.close(force=True)
        for q in queues.values():
            await q.close()


async def test_read_only_refuses_every_mutation_at_the_action_layer(world, sync_redis, capsys):
    ids = await world.make_failed(2)
    reader = await world.reader()
    acts = actions_for(reader, read_only=True)
    preview = await acts.preview("retry", Selection(world.ref()))  # reading is allowed
    assert preview.count == 2
    with pytest.raises(Refused):
        await acts.execute(preview)
    with pytest.raises(Refused):
        await acts.execute(await acts.preview("purge", Selection(world.ref(), job_ids=ids)))
    with pytest.raises(Refused):
        await acts.set_paused([world.ref()], True)
    with pytest.raises(Refused):
        acts.check_allowed("retry", world.ref())
    flags = ["--url", world.url, "--prefix", world.prefix, "--read-only"]
    for args in (["dlq", "retry", "work", "--all", "--yes"], ["dlq", "retry", "work", "--job", ids[0], "--yes"],
                 ["dlq", "purge", "work", "--all", "--yes"], ["dlq", "purge", "work", "--job", ids[0], "--yes"],
                 ["pause", "work", "--yes"], ["resume", "work", "--yes"], ["pause", "--all", "--yes"]):
        code, out, err = await asyncio.to_thread(cli, capsys, *args, *flags)
        assert code == 4, (args, err)
        assert "read-only" in err and "Traceback" not in err
    assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert len(job_states(sync_redis, world.prefix, "work")["failed"]) == 2
    assert not await world.queue.isPaused()


async def test_not_confirmed_is_refused_and_dry_run_changes_nothing(world, sync_redis, capsys):
    ids = await world.make_failed(3)
    flags = ["--url", world.url, "--prefix", world.prefix]
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", *flags)
    assert code == 4 and "not confirmed" in err
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--dry-run", "--json", *flags)
    assert code == 0 and '"count": 3' in out
    assert sorted(job_states(sync_redis, world.prefix, "work")["failed"]) == sorted(ids)


async def test_promote_delayed_job_and_cancel_refused_for_bullmq(world, sync_redis, capsys):
    job = await world.queue.add("later", {"x": 1}, {"delay": 3_600_000})
    flags = ["--url", world.url, "--prefix", world.prefix]
    code, out, err = await asyncio.to_thread(cli, capsys, "promote", "work", "--job", job.id, "--job", "nope",
                                             "--yes", "--json", *flags)
    assert code == 0, err
    report = json.loads(out)["reports"][0]
    assert report["done"] == 1 and [s["status"] for s in report["skipped"]] == ["not-found"]  # "nope" has no job hash
    assert sync_redis.zscore(f"{world.prefix}:work:delayed", job.id) is None
    assert job.id in [x.decode() for x in sync_redis.lrange(f"{world.prefix}:work:wait", 0, -1)]
    code, out, err = await asyncio.to_thread(cli, capsys, "cancel", "work", "--job", job.id, "--yes", *flags)
    assert code == 4 and "cannot cancel" in err


async def test_resume_all_forgets_paused_queues_that_no_longer_exist(redis_url, prefix, sync_redis, capsys):
    from tests.fixed_data import write_fixed_queue

    write_fixed_queue(sync_redis, prefix, "gone", failed=1, completed=0, waiting=0, delayed=0)
    write_fixed_queue(sync_redis, prefix, "stays", failed=1, completed=0, waiting=0, delayed=0)
    flags = ["--url", redis_url, "--prefix", prefix, "--yes"]
    code, out, err = await asyncio.to_thread(cli, capsys, "pause", "--all", *flags)
    assert code == 0, err
    assert sync_redis.hlen(f"{prefix}:console:paused") == 2
    for key in sync_redis.scan_iter(match=f"{prefix}:gone:*"):
        sync_redis.delete(key)
    code, out, err = await asyncio.to_thread(cli, capsys, "resume", "--all", *flags)
    assert code == 0, err
    assert "forgot 1 remembered paused queue no longer found at" in err and "resume stays" in out
    assert sync_redis.hlen(f"{prefix}:console:paused") == 0
