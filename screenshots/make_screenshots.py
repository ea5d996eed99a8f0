"""Render the README/docs screenshots from the live demo: ``python screenshots/make_screenshots.py``.

Starts the demo's embedded Redis and BullMQ workload, lets it run until the sparklines have a
shape, then saves as SVG here: the overview, the queue view (failed tab with a job's detail), the
full-screen job view, the failures view (errors grouped across queues), a retry confirmation with
its preview, the pause-all confirmation, the help, and the overview and queue view at 80x24.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.demo import demo_settings, running_redis_demo
from console.screens.queue import QueueScreen

HERE = Path(__file__).resolve().parent
SIZE = (150, 40)


async def shoot(url: str, warmup_s: float) -> None:
    app = QueueConsoleApp(demo_settings(url, refresh=1.0))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(warmup_s)
        app.save_screenshot(str(HERE / "overview.svg"))
        table = app.screen.query_one(DataTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        table.move_cursor(row=names.index("emails"))
        await pilot.press("enter")
        await pilot.pause(1.0)
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        for _ in range(4):
            await pilot.press("tab")
        await pilot.pause(3.0)
        app.save_screenshot(str(HERE / "queue-failed.svg"))
        await pilot.press("enter")
        await pilot.pause(2.0)
        app.save_screenshot(str(HERE / "job.svg"))
        await pilot.press("escape")
        await pilot.pause(0.5)
        await pilot.press("R")
        await pilot.pause(3.0)
        app.save_screenshot(str(HERE / "retry-preview.svg"))
        await pilot.press("n")
        await pilot.pause(0.5)
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        app.save_screenshot(str(HERE / "help.svg"))
        await pilot.press("escape")
        await pilot.press("f")
        await pilot.pause(4.0)
        app.save_screenshot(str(HERE / "failures.svg"))
        await pilot.press("escape")
        await pilot.pause(0.5)
        await pilot.press("escape")
        await pilot.pause(0.5)
        await pilot.press("P")
        await pilot.pause(3.0)
        app.save_screenshot(str(HERE / "pause-all.svg"))
        await pilot.press("n")


async def shoot_small(url: str, warmup_s: float) -> None:
    app = QueueConsoleApp(demo_settings(url, refresh=1.0))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(min(warmup_s, 10.0))
        app.save_screenshot(str(HERE / "overview-80x24.svg"))
        table = app.screen.query_one(DataTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        table.move_cursor(row=names.index("emails"))
        await pilot.press("enter")
        await pilot.pause(1.0)
        for _ in range(4):
            await pilot.press("tab")
        await pilot.pause(3.0)
        app.save_screenshot(str(HERE / "queue-80x24.svg"))


def main() -> None:
    warmup = float(sys.argv[1]) if len(sys.argv) > 1 else 45.0
    with running_redis_demo() as url:
        asyncio.run(shoot(url, warmup))
        asyncio.run(shoot_small(url, warmup))
    print(f"wrote overview, queue-failed, job, retry-preview, help, failures, pause-all, overview-80x24 and "
          f"queue-80x24 (.svg) in {HERE}")


if __name__ == "__main__":
    main()
