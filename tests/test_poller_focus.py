"""Polling what is on screen: with a focus the poller reads the focused queues every tick and every
queue on its slower full cycle; the overview focuses the rows on screen (with a page either side),
moves the focus when it scrolls, and a row whose counts the last tick did not read shows their age.
Real Redis (the test's own prefix), real BullMQ key layout."""
from __future__ import annotations

import asyncio
import time

from textual.widgets import DataTable

from backends.registry import ConnectOptions
from console.app import QueueConsoleApp
from console.config import Settings
from console.poller import Poller
from tests.tui_harness import SIZE


def _queue(r, prefix: str, name: str, waiting: int) -> None:
    r.hset(f"{prefix}:{name}:meta", mapping={"opts.maxLenEvents": 10000})
    r.delete(f"{prefix}:{name}:wait")
    if waiting:
        r.lpush(f"{prefix}:{name}:wait", *[str(i) for i in range(waiting)])


async def _until(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_focused_poller_reads_the_rest_on_its_full_cycle(redis_url, prefix, sync_redis):
    for name in ("a", "b", "c"):
        _queue(sync_redis, prefix, name, 1)
    snaps = []
    p = Poller(redis_url, ConnectOptions(prefixes=[prefix]), interval=0.02, on_snapshot=snaps.append)
    p.full_every = 1_000_000  # only the first tick reads everything
    task = asyncio.create_task(p.run())
    try:
        await _until(lambda: snaps and len(snaps[-1].statuses) == 3, "the first full read")
        key = {s.queue.name: s.queue.key for s in snaps[-1].statuses}
        p.set_focus(frozenset({key["a"]}))
        for name in ("a", "b", "c"):
            _queue(sync_redis, prefix, name, 5)
        seen = len(snaps)
        await _until(lambda: len(snaps) > seen + 3, "ticks with the focus")
        last = snaps[-1]
        waiting = {s.queue.name: s.counts["waiting"] for s in last.statuses}
        assert waiting == {"a": 5, "b": 1, "c": 1}  # b and c: as of the full read, still listed
        assert last.fresh == {key["a"]}
        assert last.read_at[key["b"]] < last.read_at[key["a"]]

        p.full_every = 1  # every tick is a full one again
        seen = len(snaps)
        await _until(lambda: len(snaps) > seen + 2, "a full tick")
        assert {s.queue.name: s.counts["waiting"] for s in snaps[-1].statuses} == {"a": 5, "b": 5, "c": 5}
        assert snaps[-1].fresh == set(key.values())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_overview_focuses_the_rows_on_screen_and_follows_the_scroll(redis_url, prefix, sync_redis):
    names = [f"q{i:03d}" for i in range(150)]
    for name in names:
        _queue(sync_redis, prefix, name, 1)
    app = QueueConsoleApp(Settings(urls=[redis_url], prefixes=[prefix], refresh=0.3))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        deadline = time.monotonic() + 30
        while table.row_count < len(names):
            assert time.monotonic() < deadline, "rows"
            await pilot.pause(0.1)
        [poller] = app.pollers
        await pilot.pause(0.5)
        focus = {k[-1] for k in poller.focus}
        height = table.size.height
        assert "q000" in focus and names[height - 2] in focus  # the screen
        assert names[height + 5] in focus  # and a page below it
        assert names[2 * height + 5] not in focus and "q149" not in focus  # not every queue

        await pilot.press("G")  # to the last row: the focus follows
        deadline = time.monotonic() + 10
        while "q149" not in {k[-1] for k in poller.focus}:
            assert time.monotonic() < deadline, "focus after scrolling"
            await pilot.pause(0.1)
        assert "q000" not in {k[-1] for k in poller.focus}


async def test_a_row_on_screen_read_before_the_last_tick_shows_its_age(redis_url, prefix, sync_redis):
    _queue(sync_redis, prefix, "fresh", 1)
    _queue(sync_redis, prefix, "older", 2)
    app = QueueConsoleApp(Settings(urls=[redis_url], prefixes=[prefix], refresh=0.3))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        table = screen.query_one(DataTable)
        deadline = time.monotonic() + 30
        while table.row_count < 2:
            assert time.monotonic() < deadline, "rows"
            await pilot.pause(0.1)
        snap = next(iter(app.snapshots.values()))
        key = {s.queue.name: s.queue.key for s in snap.statuses}
        # a snapshot as a focused tick leaves it: "older" was read 42 s before the last refresh
        snap.fresh = frozenset({key["fresh"]})
        snap.read_at = {key["fresh"]: snap.last_ok, key["older"]: snap.last_ok - 42}
        for p in app.pollers:
            p.frozen = True  # no newer snapshot replaces this one
        screen.update_from_snapshots([snap])
        cells = {str(table.get_row_at(i)[0]).split()[0]: [str(c) for c in table.get_row_at(i)]
                 for i in range(table.row_count)}
        assert cells["older"][0] == "older (42s ago)" and cells["fresh"][0] == "fresh"
        assert cells["older"][3] == "2"


async def test_memory_stays_flat_across_poll_ticks(redis_url, prefix, sync_redis):
    """The shortened soak: 200 queues whose counts change every tick, a focus that moves, and full
    ticks between; the live objects and traced memory after 150 more ticks stay where they were
    after the warm-up (a leak of one object per queue per tick would be 30,000 objects)."""
    import gc
    import tracemalloc

    names = [f"s{i:03d}" for i in range(200)]
    for name in names:
        _queue(sync_redis, prefix, name, 1)
    last: list = []
    ticks = 0

    def keep(snap) -> None:
        nonlocal ticks
        last[:] = [snap]
        ticks += 1

    p = Poller(redis_url, ConnectOptions(prefixes=[prefix]), interval=0.0, on_snapshot=keep)
    p.full_every = 5
    task = asyncio.create_task(p.run())

    async def run_ticks(n: int) -> None:
        start = ticks
        while ticks < start + n:
            sync_redis.lpush(f"{prefix}:{names[ticks % 200]}:wait", "x")  # counts change as they go
            keys = [s.queue.key for s in last[0].statuses] if last else []
            if keys:
                at = (ticks * 7) % len(keys)
                p.set_focus(frozenset(keys[at:at + 40]))
            await asyncio.sleep(0.005)

    tracemalloc.start()
    try:
        await _until(lambda: last and len(last[0].statuses) == 200, "every queue")
        await run_ticks(50)
        gc.collect()
        objects, (memory, _) = len(gc.get_objects()), tracemalloc.get_traced_memory()
        await run_ticks(150)
        gc.collect()
        objects_after, (memory_after, _) = len(gc.get_objects()), tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert last[0].error is None, last[0].error
    assert objects_after - objects < 3_000, (objects, objects_after)
    assert memory_after - memory < 1_000_000, (memory, memory_after)


async def test_scrolling_to_rows_the_last_tick_did_not_read_shows_their_age(redis_url, prefix, sync_redis):
    names = [f"r{i:03d}" for i in range(120)]
    for name in names:
        _queue(sync_redis, prefix, name, 1)
    app = QueueConsoleApp(Settings(urls=[redis_url], prefixes=[prefix], refresh=0.3))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        table = screen.query_one(DataTable)
        deadline = time.monotonic() + 30
        while table.row_count < len(names):
            assert time.monotonic() < deadline, "rows"
            await pilot.pause(0.1)
        [poller] = app.pollers
        poller.frozen = True  # no more reads: the snapshots it sends keep what is set below
        await pilot.pause(1.0)
        snap = poller.snapshot
        keys = [s.queue.key for s in snap.statuses]
        snap.fresh = frozenset(keys[:40])  # as a focused tick leaves it: the top rows read, the rest 30 s ago
        poller._read_at = {k: snap.last_ok - (0 if i < 40 else 30) for i, k in enumerate(keys)}
        poller.refresh_now()
        await pilot.pause(0.5)
        await pilot.press("G")
        await pilot.pause(0.3)
        last = [str(c) for c in table.get_row_at(table.row_count - 1)]
        assert last[0] == "r119 (30s ago)"


async def test_other_systems_are_detected_after_the_first_rows(redis_url, prefix, sync_redis):
    """The first snapshot with rows comes from the primary system's reader alone (BullMQ); Gello's
    detection runs after it, and Gello's queues join the next discovery slice and refresh."""
    _queue(sync_redis, prefix, "mail", 2)
    sync_redis.rpush(f"{prefix}g:queue:sms:pending", '{"id": "1"}')
    snaps = []
    p = Poller(redis_url, ConnectOptions(prefixes=[prefix], gello_prefixes=[f"{prefix}g"]), interval=0.05,
               on_snapshot=snaps.append)
    task = asyncio.create_task(p.run())
    try:
        await _until(lambda: snaps and snaps[-1].statuses, "the first rows")
        first = next(s for s in snaps if s.statuses)
        assert [(s.queue.backend, s.queue.name) for s in first.statuses] == [("bullmq", "mail")]
        await _until(lambda: any(s.queue.backend == "gello" for s in snaps[-1].statuses), "Gello's queues")
        assert {(s.queue.backend, s.queue.name) for s in snaps[-1].statuses} == {("bullmq", "mail"), ("gello", "sms")}
        assert [r.backend for r in p.readers] == ["bullmq", "gello"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
