"""Quick n presses, checked on every frame the app draws: the page label never describes rows
other than those on screen (it once said "page 7: jobs 301–350" over jobs 101–150)."""
from __future__ import annotations

import asyncio
import re

from textual import events

from tests.fixed_data import write_fixed_queue
from tests.test_tui import SIZE, app_for, open_failed, wait_for

LABEL = re.compile(r"page (\d+): jobs (\d+)–(\d+) of 400")


async def test_quick_n_presses_never_draw_a_label_over_another_pages_rows(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "many", failed=400, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 50)

        frames: list[tuple[str, str | None, int]] = []  # (label, first id, rows) of every frame drawn
        display = app._display

        def checked(scr, renderable) -> None:
            display(scr, renderable)
            if app.screen is screen:
                label = str(screen.query_one("#page-info").render())
                frames.append((label, str(jobs.get_row_at(0)[0]) if jobs.row_count else None, jobs.row_count))

        app._display = checked
        for _ in range(5):  # as a terminal sends them: into the driver's queue, no wait between
            app._driver.send_message(events.Key("n", "n"))
        await wait_for(pilot, lambda: screen._page_on_screen() and len(screen.cursors) > 1, what="a later page")
        await asyncio.sleep(1.0)  # pages still on their way, the refreshes after them
        await pilot.pause()
        app._display = display

        shown = [(m, first, n) for label, first, n in frames if (m := LABEL.search(label))]
        assert shown, frames[-3:]
        for m, first, n in shown:  # ids run 400, 399, ... newest first: page k starts at 400 - 50 (k - 1)
            page, start, end = (int(g) for g in m.groups())
            assert (start, end) == ((page - 1) * 50 + 1, page * 50), m.group(0)
            assert first == str(400 - (page - 1) * 50) and n == 50, (m.group(0), first, n)
        last_page = int(shown[-1][0].group(1))
        assert last_page == len(screen.cursors) > 1
