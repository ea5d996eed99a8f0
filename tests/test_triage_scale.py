"""Dead-letter grouping at scale: digits after letters fold, identical reasons fold once, and a
capped scan knows the server's total."""
from __future__ import annotations

from backends.contract import Blob, JobSummary, QueueRef
from backends.registry import ConnectOptions, open_readers
from console.dlq_scan import scan_failed
from console.filters import parse_filter
from console.triage import group_jobs, signature

Q = QueueRef(connection="c", backend="bullmq", namespace="bull", name="q")


def _job(i: int, reason: str) -> JobSummary:
    return JobSummary(id=str(i), state="failed", native_state="failed", finished_ms=i,
                      failed_reason=Blob(text=reason, size=len(reason)))


def test_digits_after_letters_fold():
    assert signature("Template welcome-v3 not found") == signature("Template welcome-v41 not found") \
        == "Template welcome-v<n> not found"
    assert signature("user u12 not found") == "user u<n> not found"
    assert signature("disk quota exceeded on vol7") == signature("disk quota exceeded on vol12")
    assert signature("timeout after 30ms") == "timeout after <n>ms"  # units still fold as before


def test_251_template_versions_are_one_group():
    groups = group_jobs([(Q, _job(i, f"Template welcome-v{i % 251} not found")) for i in range(2000)])
    assert [(g.signature, g.count) for g in groups] == [("Template welcome-v<n> not found", 2000)]


async def test_a_capped_scan_reports_the_servers_total(redis_url, prefix, sync_redis):
    base = f"{prefix}:many"
    sync_redis.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    pipe = sync_redis.pipeline(transaction=False)
    for i in range(1, 2501):
        pipe.hset(f"{base}:{i}", mapping={"name": "n", "timestamp": i, "finishedOn": i, "failedReason": f"boom v{i}"})
        pipe.zadd(f"{base}:failed", {str(i): i})
    pipe.execute()
    [reader] = await open_readers(redis_url, ConnectOptions(prefixes=[prefix]))
    try:
        ref = QueueRef(connection=reader.url.redacted, backend="bullmq", namespace=prefix, name="many")
        capped = await scan_failed([(ref, reader)], parse_filter(""), row_cap=1000)
        assert capped.capped == [ref.qualified] and capped.totals == {ref.qualified: 2500}
        assert len(capped.items) == 1000
        full = await scan_failed([(ref, reader)], parse_filter(""), row_cap=1_000_000)
        assert full.capped == [] and len(full.items) == 2500
        assert [(g.signature, g.count) for g in group_jobs(full.items)] == [("boom v<n>", 2500)]
    finally:
        await reader.close()
