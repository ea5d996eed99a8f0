"""Counts of BullMQ queues are read inside Redis: read-only EVALSHAs of up to 16 queues each, in one pipeline.

Runs on a private embedded Redis (its command statistics are reset and read, and an ACL user is
added): never the machine's shared server. The numbers are checked against BullMQ for Python's own
getJobCounts, and the plain-command path (for users without @scripting) against the script path.
"""
from __future__ import annotations

import pytest
import redis
from bullmq import Queue

from backends.registry import ConnectOptions, open_readers

NATIVE_TYPES = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children", "paused")
PREFIX = "cnt"


@pytest.fixture
def sync(private_redis):
    r = redis.Redis.from_url(private_redis.url)
    r.flushall()  # the test's own server
    yield r
    r.close()


def _layout(r: redis.Redis) -> None:
    """Three queues: plain v6, a v5 queue with a legacy paused list and pre-v5 markers, a Bull queue."""
    r.hset(f"{PREFIX}:plain:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0",
                                            "concurrency": 4, "max": 10, "duration": 1000})
    r.lpush(f"{PREFIX}:plain:wait", "3", "2", "1")
    r.zadd(f"{PREFIX}:plain:failed", {"4": 1, "5": 2})
    r.zadd(f"{PREFIX}:plain:prioritized", {"6": 1})
    r.lpush(f"{PREFIX}:plain:active", "7")
    r.hset(f"{PREFIX}:legacy:meta", mapping={"opts.maxLenEvents": 10000, "paused": 1, "version": "bullmq:5.1.0"})
    r.lpush(f"{PREFIX}:legacy:wait", "w1", "w2")
    r.rpush(f"{PREFIX}:legacy:wait", "0:1700000000123")  # pre-v5 marker at the tail: not a job
    r.lpush(f"{PREFIX}:legacy:paused", "z1", "z2", "z3")
    r.rpush(f"{PREFIX}:legacy:paused", "0:1700000000000")
    r.zadd(f"{PREFIX}:legacy:delayed", {"d1": 5})
    r.set(f"{PREFIX}:bullq:id", 9)
    r.lpush(f"{PREFIX}:bullq:wait", "1", "2")
    r.zadd(f"{PREFIX}:bullq:completed", {"3": 1})
    r.set(f"{PREFIX}:bullq:meta-paused", 1)


async def _reader(url: str):
    [reader] = await open_readers(url, ConnectOptions(prefixes=[PREFIX], connect_timeout=5))
    return reader


async def test_one_script_call_per_queue_and_numbers_equal_getJobCounts(private_redis, sync):
    _layout(sync)
    reader = await _reader(private_redis.url)
    try:
        refs = (await reader.discover()).queues
        assert sorted((q.name, q.backend) for q in refs) == [("bullq", "bull"), ("legacy", "bullmq"),
                                                            ("plain", "bullmq")]
        sync.config_resetstat()
        statuses = await reader.statuses(refs)
        stats = sync.info("commandstats")
        # one EVALSHA for up to QUEUES_PER_CALL queues; no per-key commands sent from the client
        assert stats["cmdstat_evalsha"]["calls"] == 1
        assert "cmdstat_hmget" not in stats or stats["cmdstat_hmget"]["calls"] == len(refs)  # inside the script
        # Bull's meta-paused flag is read for the Bull queue only (BullMQ writes no such key)
        assert stats["cmdstat_exists"]["calls"] == sum(q.backend == "bull" for q in refs) == 1
        # markers are still there: counting never writes (BullMQ's own getJobCounts below RPOPs them)
        assert sync.lindex(f"{PREFIX}:legacy:wait", -1) == b"0:1700000000123"
        for st in statuses:
            if st.queue.backend != "bullmq":
                continue
            q = Queue(st.queue.name, {"connection": private_redis.url, "prefix": PREFIX})
            try:
                assert st.native == await q.getJobCounts(*NATIVE_TYPES)
            finally:
                await q.close()
        by_name = {s.queue.name: s for s in statuses}
        assert by_name["legacy"].native["waiting"] == 2 and by_name["legacy"].native["paused"] == 3
        assert by_name["legacy"].paused is True
        assert by_name["plain"].info == {"version": "bullmq:6.7.0", "global concurrency": "4",
                                         "rate limit": "10 per 1000 ms"}
        assert by_name["bullq"].paused is True and by_name["bullq"].counts["waiting"] == 2
    finally:
        await reader.close()


async def test_records_built_without_validation_equal_validated_ones_and_follow_every_refresh(private_redis, sync):
    """statuses() builds its records without pydantic validation and keeps per-queue constants (keys,
    meta facts, the generation) between calls: the records must still be what validation gives, and
    a change between two refreshes of the same queue list must show in the next one."""
    from backends.contract import QueueStatus

    _layout(sync)
    reader = await _reader(private_redis.url)
    try:
        refs = (await reader.discover()).queues
        for st in await reader.statuses(refs):
            assert QueueStatus.model_validate(st.model_dump()) == st
            assert all(type(v) is int for v in st.native.values())
            assert all(type(v) is int for k, v in st.counts.items() if k != "cancelled")
            assert type(st.paused) is bool and type(st.server_time_ms) is int
        plain = next(q for q in refs if q.name == "plain")
        assert reader._generations[plain.key].scripts == "v6"
        sync.hset(f"{PREFIX}:plain:meta", mapping={"version": "bullmq:5.1.0", "concurrency": 2})
        sync.lpush(f"{PREFIX}:plain:wait", "8")
        by_name = {s.queue.name: s for s in await reader.statuses(refs)}  # the same list object again
        assert by_name["plain"].native["waiting"] == 4
        assert by_name["plain"].info["version"] == "bullmq:5.1.0" and by_name["plain"].info["global concurrency"] == "2"
        assert reader._generations[plain.key].scripts == "v5"
        flipped = list(reversed(refs))
        assert [(s.queue.name, s.native) for s in await reader.statuses(flipped)] == \
               [(q.name, by_name[q.name].native) for q in flipped]
    finally:
        await reader.close()


async def test_script_is_loaded_again_after_the_server_forgets_it(private_redis, sync):
    _layout(sync)
    reader = await _reader(private_redis.url)
    try:
        refs = (await reader.discover()).queues
        first = await reader.statuses(refs)
        sync.script_flush()
        again = await reader.statuses(refs)
        assert [s.native for s in again] == [s.native for s in first]
    finally:
        await reader.close()


async def test_a_user_without_scripting_gets_the_same_numbers(private_redis, sync):
    _layout(sync)
    sync.acl_setuser("qcreader", enabled=True, passwords=["+pw-for-test"], keys=["*"],
                     commands=["+@read", "+@connection", "+info", "+time", "-@scripting"])
    try:
        host = private_redis.url.removeprefix("redis://")
        limited = await _reader(f"redis://qcreader:pw-for-test@{host}")
        full = await _reader(private_redis.url)
        try:
            refs = (await full.discover()).queues
            want = await full.statuses(refs)
            got = await limited.statuses(refs)
            assert [(s.queue.name, s.native, s.counts, s.paused, s.info) for s in got] == \
                   [(s.queue.name, s.native, s.counts, s.paused, s.info) for s in want]
            assert limited._counter.scripts_allowed is False
        finally:
            await limited.close()
            await full.close()
    finally:
        sync.acl_deluser("qcreader")


async def test_many_queues_are_split_over_calls_in_order(private_redis, sync):
    from backends.bullmq.read_scripts import QUEUES_PER_CALL

    n = QUEUES_PER_CALL * 2 + 5
    for i in range(n):
        base = f"{PREFIX}:m{i:03d}"
        sync.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000, **({"paused": 1} if i % 7 == 0 else {})})
        if i:
            sync.lpush(f"{base}:wait", *[f"w{j}" for j in range(i)])
        if i % 5:
            sync.zadd(f"{base}:failed", {f"f{j}": j for j in range(i % 5)})
    reader = await _reader(private_redis.url)
    try:
        refs = (await reader.discover()).queues
        assert len(refs) == n
        sync.config_resetstat()
        statuses = await reader.statuses(refs)
        assert sync.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
        got = [(s.queue.name, s.native["waiting"], s.native["failed"], s.paused) for s in statuses]
        assert got == [(f"m{i:03d}", i, i % 5, i % 7 == 0) for i in range(n)]
    finally:
        await reader.close()


async def test_page_rows_are_read_by_script_in_chunks_and_equal_the_plain_path(private_redis, sync):
    from backends.bullmq.read_scripts import HASHES_PER_CALL

    base = f"{PREFIX}:rows"
    sync.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    n = HASHES_PER_CALL * 2 + 50
    for i in range(1, n + 1):
        if i == 150:
            sync.zadd(f"{base}:failed", {str(i): 5000 + i})  # hash gone: a malformed row naming the key
            continue
        if i == 160:
            sync.set(f"{base}:{i}", "not a hash")  # WRONGTYPE inside the script: that row only
            sync.zadd(f"{base}:failed", {str(i): 5000 + i})
            continue
        fields = {"name": f"n{i}", "timestamp": 1000 + i, "finishedOn": 5000 + i, "failedReason": f"boom {i}"}
        if i % 2:
            fields["atm"] = 2  # a missing field in some hashes
        sync.hset(f"{base}:{i}", mapping=fields)
        sync.zadd(f"{base}:failed", {str(i): 5000 + i})
    sync.acl_setuser("qcrows", enabled=True, passwords=["+pw-for-test"], keys=["*"],
                     commands=["+@read", "+@connection", "+info", "+time", "-@scripting"])
    host = private_redis.url.removeprefix("redis://")
    full = await _reader(private_redis.url)
    limited = await _reader(f"redis://qcrows:pw-for-test@{host}")
    try:
        [ref] = [q for q in (await full.discover()).queues if q.name == "rows"]
        sync.config_resetstat()
        page = await full.page(ref, "failed", None, 1000)
        assert sync.info("commandstats")["cmdstat_evalsha"]["calls"] == 3
        assert [j.id for j in page.jobs] == [str(i) for i in range(n, 0, -1)]
        by_id = {j.id: j for j in page.jobs}
        assert by_id["150"].malformed.startswith(f"no job hash at {base}:150")
        assert by_id["160"].malformed == f"{base}:160 is a string, not a job hash"
        assert [j.id for j in page.jobs if j.malformed] == ["160", "150"]
        assert page.jobs[0].attempts_made == 0 and page.jobs[1].attempts_made == 2
        assert page.jobs[-1].failed_reason.text == "boom 1" and page.jobs[-1].name == "n1"
        plain = await limited.page(ref, "failed", None, 1000)
        assert plain.jobs == page.jobs
    finally:
        await full.close()
        await limited.close()
        sync.acl_deluser("qcrows")


async def test_a_wrong_type_key_in_one_of_16_queues_leaves_the_other_15_counted_exactly(private_redis, sync):
    """One EVALSHA counts 16 queues; queue q07's ``wait`` is a string. The script's pcall turns only
    that queue's reply into a malformed marker: the 15 others have their exact numbers, in the same
    single call (and the same through the plain pipeline of a user without scripting)."""
    from backends.bullmq.read_scripts import QUEUES_PER_CALL

    assert QUEUES_PER_CALL == 16
    for i in range(16):
        base = f"{PREFIX}:q{i:02d}"
        sync.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0"})
        if i == 7:
            sync.set(f"{base}:wait", "not a list")
        else:
            sync.lpush(f"{base}:wait", *[f"w{j}" for j in range(i + 1)])
        sync.zadd(f"{base}:failed", {f"f{j}": j for j in range(i % 4 + 1)})
        sync.lpush(f"{base}:active", *[f"a{j}" for j in range(i % 3 + 1)])
    sync.acl_setuser("qcplain", enabled=True, passwords=["+pw-for-test"], keys=["*"],
                     commands=["+@read", "+@connection", "+info", "+time", "-@scripting"])
    host = private_redis.url.removeprefix("redis://")
    full = await _reader(private_redis.url)
    limited = await _reader(f"redis://qcplain:pw-for-test@{host}")
    try:
        refs = (await full.discover()).queues
        assert sorted(q.name for q in refs) == [f"q{i:02d}" for i in range(16)]
        sync.config_resetstat()
        statuses = await full.statuses(refs)
        assert sync.info("commandstats")["cmdstat_evalsha"]["calls"] == 1
        by_name = {s.queue.name: s for s in statuses}
        assert by_name["q07"].malformed == f"{PREFIX}:q07:wait is not a list"
        for i in range(16):
            if i == 7:
                continue
            st = by_name[f"q{i:02d}"]
            assert st.malformed is None
            assert (st.native["waiting"], st.native["failed"], st.native["active"]) == (i + 1, i % 4 + 1, i % 3 + 1)
            q = Queue(st.queue.name, {"connection": private_redis.url, "prefix": PREFIX})
            try:
                assert st.native == await q.getJobCounts(*NATIVE_TYPES)
            finally:
                await q.close()
        plain = await limited.statuses(refs)
        assert limited._counter.scripts_allowed is False
        assert [(s.queue.name, s.malformed, s.native, s.counts) for s in plain] == \
               [(s.queue.name, s.malformed, s.native, s.counts) for s in statuses]
    finally:
        await full.close()
        await limited.close()
        sync.acl_deluser("qcplain")
