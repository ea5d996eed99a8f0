"""The TUI at scale, measured in a child process (tests/benchmarks/bench_scale.py runs it).

    python -m tests.benchmarks.tui_probe URL SECONDS [PREFIX]

Runs the app headless (``App.run_test``, 160x45, refresh 2 s) against URL and prints one JSON line
(a negative SECONDS: the launch alone):
seconds from launch to the first queue rows on the overview, queues listed at the end, the
process's CPU over the idle part (percent of one core), RSS at the start of the idle part and at
the end (VmRSS), and the Redis commands per second during the idle part (INFO commandstats).
"""
from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

import redis


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _commands(r: redis.Redis) -> int:
    return sum(v["calls"] for k, v in r.info("commandstats").items() if k != "cmdstat_info")


async def _press_ms(pilot, key: str) -> float:
    """From the key press to the screen drawn again: the key's handler, then Textual's next
    refresh of what it changed (``pilot.pause()`` waits for the screen's pending updates)."""
    t = time.perf_counter()
    await pilot.press(key)
    await pilot.pause()
    return (time.perf_counter() - t) * 1000


async def _keys(pilot, app) -> dict:
    """j/k and a page down on the overview, 20 of each; ``n`` (the next server page of bigqueue's
    1,000,000 failed jobs) in the queue view, 10 times, timed until the new rows are on screen."""
    from textual.widgets import DataTable

    from console.screens.queue import QueueScreen

    jk = [await _press_ms(pilot, k) for _ in range(10) for k in ("j", "k")]
    pages = [await _press_ms(pilot, "pagedown") for _ in range(20)]
    overview = app.screen.query_one(DataTable)
    names = [str(overview.get_row_at(i)[0]).split()[0] for i in range(overview.row_count)]
    overview.move_cursor(row=names.index("bigqueue"))
    await pilot.press("enter")
    while not isinstance(app.screen, QueueScreen):
        await pilot.pause(0.05)
    screen = app.screen
    for _ in range(4):  # waiting -> delayed -> active -> completed -> failed
        await pilot.press("tab")
    jobs = screen.query_one("#job-table", DataTable)
    while not (screen.state == "failed" and jobs.row_count):
        await pilot.pause(0.05)
    server_pages = []
    for _ in range(10):
        first = str(jobs.get_row_at(0)[0])
        t = time.perf_counter()
        await pilot.press("n")
        while not jobs.row_count or str(jobs.get_row_at(0)[0]) == first:
            await pilot.pause(0.005)
        await pilot.pause()
        server_pages.append((time.perf_counter() - t) * 1000)

    def stats(v: list[float]) -> dict:
        v = sorted(v)
        return {"median": v[len(v) // 2], "max": v[-1]}

    return {"jk_ms": stats(jk), "pagedown_ms": stats(pages), "next_page_ms": stats(server_pages)}


async def probe(url: str, seconds: float, prefixes: list[str]) -> dict:
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings

    r = redis.Redis.from_url(url)
    app = QueueConsoleApp(Settings(urls=[url], prefixes=prefixes, refresh=2.0))
    out: dict = {}
    started = time.perf_counter()
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.screen.query_one(DataTable)
        while table.row_count == 0:
            await pilot.pause(0.02)
            if time.perf_counter() - started > 120:
                break
        out["first_rows_s"] = time.perf_counter() - started
        out["rows_at_first"] = table.row_count
        if seconds < 0:  # the launch alone
            r.close()
            return out
        # discovery goes on in the background: the idle part starts once it has been through once
        while not all(d.complete for snap in app.snapshots.values() for d in snap.discoveries):
            await pilot.pause(0.5)
            if time.perf_counter() - started > 300:
                break
        out["discovery_done_s"] = time.perf_counter() - started
        out["rows_when_discovered"] = table.row_count
        await pilot.pause(3)
        cpu0, rss0, cmd0, t0 = _cpu_s(), _rss_mib(), _commands(r), time.perf_counter()
        await pilot.pause(seconds)
        elapsed = time.perf_counter() - t0
        out.update(idle_cpu_pct=100 * (_cpu_s() - cpu0) / elapsed, rss_start_mib=rss0, rss_end_mib=_rss_mib(),
                   redis_commands_per_s=(_commands(r) - cmd0) / elapsed, rows_at_end=table.row_count,
                   idle_s=elapsed)
        out.update(await _keys(pilot, app))
    r.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1], float(sys.argv[2]), sys.argv[3:]))))
