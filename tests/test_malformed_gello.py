"""One bad key must not blind the console (Gello in Redis): a queue whose keys have the wrong type
is listed as malformed beside the others, and a member whose score is no time is a malformed row.
Real Redis, under a key prefix of the test's own."""
from __future__ import annotations

import json
import math

import pytest

from backends.errors import Malformed
from backends.gello_redis.reader import GelloRedisReader
from backends.redis_client import open_client
from backends.urls import parse


@pytest.fixture
async def reader(redis_url, prefix):
    url = parse(redis_url)
    r = GelloRedisReader(open_client(url, 5, 5), url, prefixes=[prefix])
    yield r
    await r.close()


def _record(job_id: str, failed_at: str = "2024-01-02T03:04:05.000Z") -> bytes:
    return json.dumps({"meta": {"id": job_id, "jobType": "t", "createdAt": "2024-01-02T03:00:00.000Z",
                                "failedAt": failed_at, "attempts": 3, "maxAttempts": 3},
                       "payload": {"n": 1}, "lastError": "boom"}).encode()


async def test_wrong_type_queue_is_listed_malformed_and_the_others_are_read(reader, sync_redis, prefix):
    sync_redis.set(f"{prefix}:queue:bad:pending", "a string")
    sync_redis.zadd(f"{prefix}:queue:bad:dead", {_record("b1"): 1})
    sync_redis.lpush(f"{prefix}:queue:good:pending", _record("g1"), _record("g2"))
    disc = await reader.discover()
    assert sorted(q.name for q in disc.queues) == ["bad", "good"]  # before: "bad" was skipped
    statuses = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    assert statuses["good"].counts["waiting"] == 2 and statuses["good"].malformed is None
    assert statuses["bad"].malformed == f"{prefix}:queue:bad:pending is not a list"
    [bad] = [q for q in disc.queues if q.name == "bad"]
    assert not reader.queue_capabilities(bad).retry
    assert "is a string, not a list" in reader.queue_capabilities(bad).read_only_reason
    with pytest.raises(Malformed, match="is a string, not a list"):
        await reader.page(bad, "waiting")
    assert [j.id for j in (await reader.page(bad, "failed")).jobs] == ["b1"]  # its other keys still read


async def test_dead_member_scored_inf_is_a_malformed_row(reader, sync_redis, prefix):
    sync_redis.zadd(f"{prefix}:queue:q:dead", {_record("ok"): 1704164645000, _record("inf"): math.inf})
    [q] = (await reader.discover()).queues
    page = await reader.page(q, "failed")  # before: OverflowError (float infinity to integer)
    rows = {j.id: j for j in page.jobs}
    assert rows["ok"].malformed is None and rows["ok"].finished_ms == 1704164645000
    assert rows["inf"].finished_ms is None and "score inf" in rows["inf"].malformed
    assert f"{prefix}:queue:q:dead" in rows["inf"].malformed
