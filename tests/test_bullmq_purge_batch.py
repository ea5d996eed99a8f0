"""Bulk purge batches: bounded per call (MAX_BULK, the limit of BullMQ's own clean calls), and the end
found without a ZCOUNT."""
from __future__ import annotations

from backends.contract import QueueRef
from backends.limits import MAX_BULK
from backends.registry import ConnectOptions, open_readers


async def test_purge_batches_are_capped_and_end_exactly(redis_url, prefix, sync_redis):
    n = MAX_BULK + 37
    base = f"{prefix}:pg"
    sync_redis.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(1, n + 1):
        pipe.hset(f"{base}:{i}", mapping={"name": "n", "data": "{}", "timestamp": i, "finishedOn": 1000 + i})
        pipe.zadd(f"{base}:failed", {str(i): 1000 + i})
    pipe.hset(f"{base}:late", mapping={"name": "n", "data": "{}", "timestamp": 1, "finishedOn": 10 ** 12})
    pipe.zadd(f"{base}:failed", {"late": 10 ** 12})  # finished after the snapshot: stays
    pipe.execute()
    [reader] = await open_readers(redis_url, ConnectOptions(prefixes=[prefix]))
    try:
        ref = QueueRef(connection=reader.url.redacted, backend="bullmq", namespace=prefix, name="pg")
        first = await reader.purge_batch(ref, "failed", 10 ** 9, MAX_BULK + 500)  # clamped to MAX_BULK
        assert (first.done, first.more) == (MAX_BULK, True)
        second = await reader.purge_batch(ref, "failed", 10 ** 9, MAX_BULK)
        assert (second.done, second.more) == (37, False)
        assert sync_redis.zrange(f"{base}:failed", 0, -1) == [b"late"]
        assert not sync_redis.exists(f"{base}:1", f"{base}:{n}")
    finally:
        await reader.close()
