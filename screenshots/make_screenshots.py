"""Render the README/docs screenshots from the live demo: ``python screenshots/make_screenshots.py``.

Starts the demo's embedded Redis and BullMQ workload, lets it run until the sparklines have a
shape, then saves the overview, the queue view (failed tab with a job's detail) and the failures
view (errors grouped across queues) as SVG here.
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
        await pilot.press("f")
        await pilot.pause(4.0)
        app.save_screenshot(str(HERE / "failures.svg"))


def main() -> None:
    warmup = float(sys.argv[1]) if len(sys.argv) > 1 else 45.0
    with running_redis_demo() as url:
        asyncio.run(shoot(url, warmup))
    print(f"wrote overview.svg, queue-failed.svg and failures.svg in {HERE}")


if __name__ == "__main__":
    main()
