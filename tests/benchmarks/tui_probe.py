"""The TUI at scale, measured in a child process (tests/benchmarks/bench_scale.py runs it).

    python -m tests.benchmarks.tui_probe URL SECONDS [PREFIX]

Runs the app headless (``App.run_test``, 160x45, refresh 2 s) against URL and prints one JSON line
(a negative SECONDS: the launch alone; 0: no idle part):
seconds from launch to the first queue rows on the overview, queues listed at the end, the
process's CPU over the idle part (percent of one core), RSS at the start of the idle part and at
the end (VmRSS), the Redis commands per second during the idle part (INFO commandstats), then key
to frame (``FrameClock``) for j/k and page down on the overview and, in the failed state of
bigqueue (1,000,000 jobs), its first page, the next page, a page 900,000 jobs deep and j in the
job table: milliseconds from the key entering the app to the first frame that shows the change,
with the UI thread's CPU time over the same span.
"""
from __future__ import annotations

import asyncio
import json
import resource
import statistics
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


class FrameClock:
    """When the app puts a frame on screen, and whether that frame shows what a key changed.

    Wraps the app's ``_display`` (where Textual hands each compositor update to the driver): every
    update is turned into the terminal bytes a real driver would write (``render_segments``, so
    that cost is counted although the headless driver writes nothing), then ``shows()`` is asked,
    on the UI thread, right after that frame: the first frame for which it holds ends the key's
    time. Keys go in through the driver's queue like a terminal's, not through ``pilot.press``:
    pilot waits until the whole process is idle (the backend thread included) and counted that
    wait, up to 1 s, as the key's time.
    """

    def __init__(self, app) -> None:
        from textual._compositor import CompositorUpdate

        self.app = app
        self.shows = None
        self.done: asyncio.Future | None = None
        self.t0 = self.cpu0 = 0.0
        #: the UI thread's CPU milliseconds from each timed key to its frame (``key()`` appends)
        self.cpu_ms: list[float] = []
        original = app._display

        def display(screen, renderable) -> None:
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
            original(screen, renderable)
            if self.done is not None and not self.done.done() and self.shows():
                self.cpu_ms.append((time.thread_time() - self.cpu0) * 1000)  # the UI thread: this one
                self.done.set_result((time.perf_counter() - self.t0) * 1000)

        app._display = display

    async def key(self, key: str, shows, timeout: float = 30.0) -> float:
        """Milliseconds from ``key`` entering the app to the first frame after which ``shows()``."""
        from textual import events

        self.shows, self.done = shows, asyncio.get_running_loop().create_future()
        self.t0, self.cpu0 = time.perf_counter(), time.thread_time()
        self.app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        try:
            return await asyncio.wait_for(self.done, timeout)
        finally:
            self.done = None


def stats(v: list[float], cpu: list[float]) -> dict:
    """Median and max of the key-to-frame times, and the median UI-thread CPU of the same keys."""
    return {"median": statistics.median(v), "max": max(v), "n": len(v), "cpu_median": statistics.median(cpu)}


async def _keys(pilot, app, url: str) -> dict:
    """j/k (20 each) and page down (20) on the overview; in bigqueue's failed state (1,000,000
    jobs): the first page (tab into the state, 10 times), ``n`` from the first pages (10) and ``n``
    from a page 900,000 jobs deep (10), each timed until the frame showing the new rows; and
    ``j`` in the job table (20), timed to the frame showing the cursor on the next row."""
    from textual.widgets import DataTable

    from backends.page_cursor import ZsetCursor, encode_position
    from console.screens.queue import QueueScreen

    clock = FrameClock(app)
    overview = app.screen.query_one(DataTable)
    timed: dict[str, tuple[list[float], list[int]]] = {}

    async def measure(name: str, key: str, shows) -> None:
        ms, ix = timed.setdefault(name, ([], []))
        ms.append(await clock.key(key, shows))
        ix.append(len(clock.cpu_ms) - 1)
        await asyncio.sleep(0.1)  # a person's pace, not a burst

    async def move(name: str, key: str, table) -> None:
        before = table.cursor_row
        await measure(name, key, lambda: table.cursor_row != before)

    await pilot.pause(0.5)
    for _ in range(10):
        await move("jk_ms", "j", overview)
        await move("jk_ms", "k", overview)
    for _ in range(20):
        before = overview.scroll_y
        await measure("pagedown_ms", "pagedown", lambda: overview.scroll_y != before)
    names = [str(overview.get_row_at(i)[0]).split()[0] for i in range(overview.row_count)]
    overview.move_cursor(row=names.index("bigqueue"))
    await pilot.press("enter")
    while not isinstance(app.screen, QueueScreen):
        await pilot.pause(0.05)
    screen = app.screen
    jobs = screen.query_one("#job-table", DataTable)

    def first_row() -> str | None:
        return str(jobs.get_row_at(0)[0]) if jobs.row_count else None

    def page_shown(before: str | None):
        """The frame shows a failed page that the last key asked for (not the rows before it)."""
        return lambda: (screen.state == "failed" and screen._page_on_screen() and screen.page.state == "failed"
                        and jobs.row_count and first_row() != before)

    for _ in range(3):  # waiting -> delayed -> active -> completed
        await pilot.press("tab")
    while screen.state != "completed" or not screen._page_on_screen():
        await pilot.pause(0.05)
    for _ in range(10):  # completed -> failed (its first page), then back
        await measure("first_page_ms", "tab", page_shown(None))
        await clock.key("shift+tab", lambda: screen.state == "completed" and screen._page_on_screen())
        await asyncio.sleep(0.1)
    await clock.key("tab", page_shown(None))
    for _ in range(10):
        await measure("next_page_ms", "n", page_shown(first_row()))
    jobs.focus()
    for _ in range(20):
        await move("job_jk_ms", "j", jobs)
    r = redis.Redis.from_url(url)
    [(_, score)] = r.zrevrange("bq:bigqueue:failed", 900_000, 900_000, withscores=True)
    r.close()
    screen.cursors = [None, encode_position(0, ZsetCursor(score, 0))]  # 900,000 jobs deep
    screen.load_page()
    while not (jobs.row_count and screen._page_on_screen()):
        await pilot.pause(0.05)
    for _ in range(10):
        await measure("deep_page_ms", "n", page_shown(first_row()))
    return {name: stats(v, [clock.cpu_ms[i] for i in ix]) for name, (v, ix) in timed.items()}


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
        if seconds == 0:  # the keys alone: for working on them
            out.update(await _keys(pilot, app, url))
            r.close()
            return out
        cpu0, rss0, cmd0, t0 = _cpu_s(), _rss_mib(), _commands(r), time.perf_counter()
        await pilot.pause(seconds)
        elapsed = time.perf_counter() - t0
        out.update(idle_cpu_pct=100 * (_cpu_s() - cpu0) / elapsed, rss_start_mib=rss0, rss_end_mib=_rss_mib(),
                   redis_commands_per_s=(_commands(r) - cmd0) / elapsed, rows_at_end=table.row_count,
                   idle_s=elapsed)
        out.update(await _keys(pilot, app, url))
    r.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1], float(sys.argv[2]), sys.argv[3:]))))
