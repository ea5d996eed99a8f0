"""The dead-letter filter language and error signatures (pure), and --filter in the CLI."""
from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, strategies as st

from backends.contract import Blob, JobSummary, QueueRef
from console.filters import FilterError, parse_filter
from console.triage import group_jobs, signature
from tests.fixed_data import T0, write_fixed_queue
from tests.test_actions_bullmq import cli

Q = QueueRef(connection="redis://x", backend="bullmq", namespace="bull", name="emails")


def job(i="1", name="send", reason="boom", finished=T0) -> JobSummary:
    return JobSummary(id=i, state="failed", native_state="failed", name=name, finished_ms=finished,
                      failed_reason=Blob(text=reason, size=len(reason)))


def test_qualifiers():
    f = parse_filter('queue:emails name:SEND error:"Mailbox unavailable" age:>2h age:<7d data.customer.id:42 x1')
    assert f.queues == ["emails"] and f.names == ["send"] and f.errors == ["mailbox unavailable"]
    assert f.older_than_ms == 7_200_000 and f.newer_than_ms == 7 * 86_400_000
    assert f.data == [(["customer", "id"], "42")] and f.words == ["x1"] and f.needs_payload
    now = T0 + 3 * 3_600_000
    j = job("x1", reason="SMTP 550 mailbox unavailable for 7")
    assert f.matches(Q, j, now, {"customer": {"id": 42}})
    assert not f.matches(Q, j, now, {"customer": {"id": 43}})
    assert not f.matches(Q, j, T0 + 60_000, {"customer": {"id": 42}})  # too young
    assert not f.matches(Q.model_copy(update={"name": "sms"}), j, now, {"customer": {"id": 42}})
    assert parse_filter("queue:bullmq:emails").queue_matches(Q)


@pytest.mark.parametrize("bad", ["age:2h", "age:>soon", "color:red", 'error:"open', "name:"])
def test_bad_filters_are_errors(bad):
    with pytest.raises(FilterError):
        parse_filter(bad)


def test_signatures_fold_variable_parts():
    assert signature("SMTP 550 mailbox unavailable for user 37838") == signature("SMTP 551 mailbox unavailable for user 1")
    assert signature("timeout after 3000ms connecting to 10.0.3.4:587") == "timeout after <n>ms connecting to <ip>"
    assert signature("job 5f3a2b1c-1234-4abc-8def-0123456789ab at 2026-11-23T06:11:22Z") == "job <uuid> at <time>"
    assert signature("customer cus_ab01b9123456 not found") == "customer <id> not found"
    assert signature("key 'abc' missing") == signature('key "zzz" missing')
    assert signature(None) == signature("") == "(no error message)"
    assert signature("first line 1\nsecond line") == "first line <n>"


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=50))
def test_forty_thousand_failures_are_one_group_when_only_numbers_differ(numbers):
    groups = group_jobs([(Q, job(str(i), reason=f"user {n} not found after {n % 97} tries")) for i, n in enumerate(numbers)])
    assert len(groups) == 1 and groups[0].count == len(numbers)


async def test_cli_filter_lists_and_retries_only_matching_jobs(redis_url, prefix, sync_redis, capsys, monkeypatch):
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    write_fixed_queue(sync_redis, prefix, "mail", failed=6, completed=0, waiting=0, delayed=0)
    flags = ["--url", redis_url, "--prefix", prefix]
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "list", "--filter", "error:timeout", "--json", *flags)
    assert code == 0, err
    ids = sorted(j["id"] for j in json.loads(out)["jobs"])
    assert ids == ["1", "4"]  # failures i=0 and i=3 of write_fixed_queue are the timeouts
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "--all", "--filter", "error:timeout",
                                             "--yes", "--json", *flags)
    assert code == 0, err
    assert sorted(x.decode() for x in sync_redis.lrange(f"{prefix}:mail:wait", 0, -1)) == ids
    assert sync_redis.zcard(f"{prefix}:mail:failed") == 4
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "--job", "1", "--filter", "x", *flags)
    assert code == 2
