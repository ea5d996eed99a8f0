"""Throughput history from the first frame (issue 12): what the stores keep of the last hour, read
once per queue and drawn before the first live sample.

BullMQ: the per-minute ``metrics`` points are written by BullMQ for Node itself (a worker with
``metrics`` enabled, its clock moved inside that process only: tests/interop/metrics_history.js),
and the minutes the reader finds are checked against the schedule of finishes and against what the
library's own ``Queue.getMetrics`` reads back.
"""
from __future__ import annotations

import asyncio
import json
import threading

import pytest

from backends.contract import History, QueueRef
from backends.minute_metrics import MINUTE_MS, minute_counts
from backends.registry import ConnectOptions, open_readers
from console.poller import BackendThread, Poller, RateHistory

MIN = 60_000
#: (offset from the fixture's start in ms, outcome), in finish order
SCHEDULE = [(-50 * MIN, "ok"), (-50 * MIN, "ok"), (-20 * MIN, "ok"), (-20 * MIN, "fail"),
            (-5 * MIN, "ok"), (-5 * MIN, "ok"), (-5 * MIN, "ok"), (-2 * MIN, "fail"), (-2 * MIN, "fail")]


def expected_minutes(start_ms: int, outcome: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for offset, what in SCHEDULE:
        if what == outcome:
            m = (start_ms + offset) // MINUTE_MS
            out[m] = out.get(m, 0) + 1
    return out


def run_fixture(redis_url: str, prefix: str, name: str, lib: str = "v6") -> tuple[object, dict]:
    from tests.interop.node_env import INTEROP_DIR, NodeFixture, require_node

    env = require_node()
    fixture = NodeFixture(env, redis_url, prefix, name, lib)
    fixture.args = [env.node, str(INTEROP_DIR / "metrics_history.js"), redis_url, prefix, name, lib,
                    json.dumps(SCHEDULE)]
    return fixture, fixture.start(60)


async def read_history(redis_url: str, prefix: str, name: str) -> History:
    [reader] = await open_readers(redis_url, ConnectOptions(prefixes=[prefix], connect_timeout=5))
    try:
        [history] = await reader.history([ref(redis_url, prefix, name)])
    finally:
        await reader.close()
    return history


def ref(redis_url: str, prefix: str, name: str, backend: str = "bullmq") -> QueueRef:
    from backends.urls import redact

    return QueueRef(connection=redact(redis_url), backend=backend, namespace=prefix, name=name)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lib", ["v6", "v5"])
async def test_bullmq_history_is_the_minutes_the_library_counted(redis_url, prefix, lib):
    fixture, report = run_fixture(redis_url, prefix, "hist", lib)
    try:
        start = report["start_ms"]
        history = await read_history(redis_url, prefix, "hist")
    finally:
        fixture.stop()
    assert history.unavailable is None and history.source == "metrics"
    got_done = {at // MINUTE_MS - 1: round(v * 60) for at, v in zip(history.at_ms, history.completed_per_s) if v}
    got_fail = {at // MINUTE_MS - 1: round(v * 60) for at, v in zip(history.at_ms, history.failed_per_s) if v}
    assert got_done == expected_minutes(start, "ok")
    assert got_fail == expected_minutes(start, "fail")
    assert history.at_ms == sorted(history.at_ms)
    # the same reading of the library's own getMetrics reply (meta + newest-first data)
    for kind, outcome in (("completed", "ok"), ("failed", "fail")):
        m = report[kind]
        counts = minute_counts(m["meta"]["count"], m["meta"]["prevTS"], m["meta"]["prevCount"], m["data"],
                               history.at_ms[-1])
        assert {k: v for k, v in counts.items() if v} == expected_minutes(start, outcome)
        assert sum(counts.values()) == m["meta"]["count"]


async def test_bullmq_without_metrics_says_history_is_unavailable(redis_url, prefix):
    from bullmq import Queue

    q = Queue("plain", {"connection": redis_url, "prefix": prefix})
    try:
        await q.add("n", {})
        history = await read_history(redis_url, prefix, "plain")
    finally:
        await q.close()
    assert history.at_ms == [] and history.source == "none"
    assert "metrics" in history.unavailable


@pytest.mark.timeout(120)
def test_first_snapshot_already_holds_the_hour(redis_url, prefix):
    """The poller's first snapshot (the TUI's first frame) carries the history, before any live
    throughput sample exists (BullMQ's first throughput call only starts the clock)."""
    fixture, report = run_fixture(redis_url, prefix, "first")
    try:
        got: list = []
        first = threading.Event()

        def on_snapshot(snap) -> None:
            if snap.statuses and not first.is_set():
                got.append(snap)
                first.set()

        thread = BackendThread()
        poller = Poller(redis_url, ConnectOptions(prefixes=[prefix], connect_timeout=5), 5.0, on_snapshot)
        thread.submit(poller.run())
        try:
            assert first.wait(30), "no snapshot with queues"
        finally:
            thread.stop()
    finally:
        fixture.stop()
    snap = got[0]
    history = snap.throughput[ref(redis_url, prefix, "first").key]
    assert history.live_count() == 0
    times, done, fail = history.series()
    assert round(sum(done) * 60) == 6 and round(sum(fail) * 60) == 3
    assert history.history_source == "metrics"
    assert history.last() is not None


def test_ring_merges_history_before_live_samples():
    """Numbers only: the history points come first, a history point at or after the first live
    sample is left out, points older than an hour before the newest go, and the live ring wraps."""
    q = QueueRef(connection="c", backend="bullmq", namespace="p", name="q")
    ring = RateHistory(size=3)
    hour = 3_600_000
    ring.prefill(History(queue=q, at_ms=[0, hour // 2, hour + 5, hour + 10], completed_per_s=[9, 1, 2, 3],
                         failed_per_s=[0, 0, 0, 1], source="metrics"))
    assert ring.series() == ([hour / 2, hour + 5, hour + 10], [1, 2, 3], [0, 0, 1])
    from backends.contract import Throughput

    for i, at in enumerate((hour + 8, hour + 20, hour + 30, hour + 40)):
        ring.append(Throughput(queue=q, at_ms=at, interval_s=1, completed_per_s=10 + i, failed_per_s=0, source="events"))
    times, done, _ = ring.series()
    # the live ring holds the last three samples; history before the oldest of them stays
    assert times == [hour / 2, hour + 5, hour + 10, hour + 20, hour + 30, hour + 40]
    assert done == [1, 2, 3, 11, 12, 13]
    assert ring.completed(2) == [12, 13]
    assert ring.last() == (13, 0, False)


@pytest.mark.timeout(120)
def test_gello_chart_is_the_sampled_counts_and_says_so(redis_url, prefix):
    """Gello keeps no throughput data: the poller keeps the waiting and failed counts it samples
    (source "counts"), the overview gets no rate from them, and the chart's title says what they
    are instead of waiting for samples that never come."""
    import redis.asyncio as aioredis

    from console.widgets.throughput_chart import chart_title
    from tests.gello_reference import RedisGello

    gprefix = f"{prefix}g"

    async def enqueue(n: int) -> None:
        client = aioredis.from_url(redis_url)
        try:
            g = RedisGello(client, gprefix)
            for i in range(n):
                await g.enqueue("mail", payload={"i": i})
        finally:
            await client.aclose()

    asyncio.run(enqueue(3))
    seen: list = []
    cond = threading.Condition()

    def on_snapshot(snap) -> None:
        with cond:
            seen.append(snap)
            cond.notify_all()

    def history_with(points: int):
        for snap in seen:
            for key, h in snap.throughput.items():
                if key[1] == "gello" and key[3] == "mail" and len(h.series()[0]) >= points:
                    return h
        return None

    thread = BackendThread()
    options = ConnectOptions(prefixes=[prefix], gello_prefixes=[gprefix], store_prefix=f"{gprefix}:console",
                             connect_timeout=5)
    poller = Poller(redis_url, options, 0.2, on_snapshot)
    thread.submit(poller.run())
    try:
        with cond:
            assert cond.wait_for(lambda: history_with(1) is not None, 30)
        asyncio.run(enqueue(2))
        with cond:
            assert cond.wait_for(lambda: history_with(1) is not None and 5 in history_with(1).series()[1], 30)
            history = history_with(1)
    finally:
        thread.stop()
    times, waiting, failed = history.series()
    assert history.source == "counts" and waiting[0] == 3 and 5 in waiting and set(failed) == {0}
    assert history.last() is None  # not a rate: the overview shows none
    title = chart_title(history, 10)
    assert "sampled by the console" in title and "keeps no throughput data" in title
