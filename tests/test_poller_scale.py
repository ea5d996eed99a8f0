"""The poller at scale: throughput history as numbers in a ring, reader lookup by key, discovery in
paced slices that keeps what it found, first rows before discovery ends (private Redis)."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis

from backends.bullmq import discovery
from backends.contract import QueueRef, Throughput
from backends.registry import ConnectOptions
from console import poller as poller_mod
from console.poller import Poller, RateHistory


@pytest.fixture
def sync(private_redis):
    r = redis.Redis.from_url(private_redis.url)
    r.flushall()  # the test's own server
    yield r
    r.close()


def _fill(r, queues: list[str], junk: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(junk):
        pipe.set(f"junk:{i}", 1)
    for name in queues:
        pipe.hset(f"bull:{name}:meta", mapping={"opts.maxLenEvents": 10000})
        pipe.lpush(f"bull:{name}:wait", "1")
    pipe.execute()


def _sample(i: int, capped: bool = False) -> Throughput:
    q = QueueRef(connection="c", backend="bullmq", namespace="bull", name="q")
    return Throughput(queue=q, at_ms=1000 * i, interval_s=1.0, completed_per_s=float(i), failed_per_s=i / 10,
                      source="events", capped=capped)


def test_rate_history_is_a_ring_of_numbers():
    h = RateHistory(size=5)
    assert len(h) == 0 and h.last() is None and h.series() == ([], [], [])
    for i in range(1, 4):
        h.append(_sample(i))
    assert h.completed() == [1.0, 2.0, 3.0] and h.completed(2) == [2.0, 3.0]
    for i in range(4, 9):
        h.append(_sample(i, capped=i == 8))
    times, done, fail = h.series()
    assert done == [4.0, 5.0, 6.0, 7.0, 8.0] and times == [4000.0, 5000.0, 6000.0, 7000.0, 8000.0]
    assert fail == pytest.approx([0.4, 0.5, 0.6, 0.7, 0.8])
    assert h.failed(1) == pytest.approx([0.8]) and h.last() == (8.0, pytest.approx(0.8), True)
    assert h.any_capped() and len(h) == 5 and h.source == "events"


async def test_scanner_goes_on_where_it_stopped_and_keeps_what_it_found(private_redis, sync):
    _fill(sync, [f"q{i}" for i in range(30)], junk=20_000)
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        scanner = discovery.Scanner(client, None)
        slices = 1
        while not await scanner.run(time.monotonic() + 0.0005):
            slices += 1
        assert slices > 3  # it really stopped and resumed
        assert scanner.candidates() == sorted(("bull", f"q{i}") for i in range(30))
        sync.delete("bull:q0:meta", "bull:q0:wait")
        await scanner.run(time.monotonic())  # one SCAN call of the next pass
        assert ("bull", "q0") in scanner.candidates()  # kept while the next pass is under way
        while not await scanner.run(time.monotonic() + 1):
            pass
        assert ("bull", "q0") not in scanner.candidates()  # a complete pass drops what is gone
    finally:
        await client.aclose()


async def test_poller_shows_rows_before_discovery_ends_and_finds_every_queue(private_redis, sync, monkeypatch):
    names = [f"q{i:02d}" for i in range(40)]
    _fill(sync, names, junk=30_000)
    monkeypatch.setattr(poller_mod, "FIRST_DISCOVERY_S", 0.0)
    monkeypatch.setattr(poller_mod, "DISCOVERY_SLICE_S", 0.002)
    snaps = []
    p = Poller(private_redis.url, ConnectOptions(), interval=0.05, on_snapshot=snaps.append)
    task = asyncio.create_task(p.run())
    try:
        deadline = time.monotonic() + 60
        while not (snaps and snaps[-1].discoveries and snaps[-1].discoveries[0].complete
                   and len(snaps[-1].statuses) == len(names)):
            assert time.monotonic() < deadline, "discovery never completed"
            await asyncio.sleep(0.02)
        # reader lookup while the poller runs (a cancel closes its readers)
        ref = snaps[-1].statuses[0].queue
        assert p.reader_for(ref) is p.readers[0]
        assert p.reader_for(ref.model_copy(update={"name": "nosuch"})) is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert p.readers == []  # the cancel closed them
    first = snaps[0]
    assert first.error is None, first.error
    assert first.discoveries[0].complete is False  # the first rows came before discovery ended
    growing = [len(s.statuses) for s in snaps]
    assert growing == sorted(growing) and growing[0] < len(names)
    last = snaps[-1]
    assert sorted(s.queue.name for s in last.statuses) == names
