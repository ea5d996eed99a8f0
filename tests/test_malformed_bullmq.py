"""One bad key must not blind the console (BullMQ / Bull in Redis).

A queue name that is not valid UTF-8, job keys of the wrong type, job hashes that hold no job,
numbers that are not numbers, ids with no hash, and state keys of the wrong type: each is shown as
malformed (naming the raw key, escaped) and every other queue and job is read normally. Real Redis,
keys written as a broken producer (or a hand edit) would leave them.
"""
from __future__ import annotations

import json

import pytest

from backends.contract import json_record
from backends.errors import Malformed
from backends.registry import ConnectOptions, open_readers
from console.safe_text import clean, one_line
from tests.cli_harness import run_async as _run_cli

BAD_NAME = b"Qbad\xff\xfename"


@pytest.fixture
async def reader(redis_url, prefix):
    [r] = await open_readers(redis_url, ConnectOptions(prefixes=[prefix], connect_timeout=5))
    yield r
    await r.close()


def _job(sync_redis, key: bytes | str, **extra) -> None:
    fields = {"name": "j", "data": "{}", "opts": "{}", "timestamp": "1700000000000", "delay": "0",
              "priority": "0", "atm": "1", "finishedOn": "1700000001000", "processedOn": "1700000000500",
              "failedReason": "boom"}
    fields.update(extra)
    sync_redis.hset(key, mapping=fields)


def _messy_failed_set(sync_redis, prefix: str) -> dict[str, str]:
    """Ten good failed jobs, one with a binary id, and four that cannot be read; returns id -> expected problem words."""
    base = f"{prefix}:messy"
    sync_redis.hset(f"{base}:meta", mapping={"version": "bullmq:5.0.0", "opts.maxLenEvents": "10000"})
    for i in range(10):
        _job(sync_redis, f"{base}:{i}", name=f"good{i}")
        sync_redis.zadd(f"{base}:failed", {str(i): 1000 + i})
    sync_redis.hset(f"{base}:only-data", "data", "{}")  # a hash holding only data
    sync_redis.set(f"{base}:a-string", "not a hash")  # a job key of the wrong type
    _job(sync_redis, f"{base}:huge-time", processedOn="1e400")  # OverflowError before
    _job(sync_redis, f"{base}:".encode() + b"bin\xff\xfe")  # an id that is not UTF-8: a real job
    sync_redis.zadd(f"{base}:failed", {"only-data": 2000, "a-string": 2001, "huge-time": 2002,
                                       b"bin\xff\xfe": 2003, "no-hash": 2004})
    return {"only-data": "has no name or timestamp", "a-string": "is a string, not a job hash",
            "huge-time": "processedOn='1e400'", "no-hash": "no job hash at"}


async def test_malformed_jobs_are_listed_as_malformed_and_counted(reader, sync_redis, prefix, capsys):
    expected = _messy_failed_set(sync_redis, prefix)
    disc = await reader.discover()
    [ref] = [q for q in disc.queues if q.name == "messy"]
    page = await reader.page(ref, "failed", None, 50)
    assert page.total == 15
    by_id = {j.id: j for j in page.jobs}
    assert len(page.jobs) == 15  # nothing is dropped without a word
    for job_id, words in expected.items():
        assert by_id[job_id].malformed is not None and words in by_id[job_id].malformed
        assert f"{prefix}:messy:{job_id}" in by_id[job_id].malformed  # the raw key
    binary_id = b"bin\xff\xfe".decode("utf-8", "surrogateescape")
    assert by_id[binary_id].malformed is None and by_id[binary_id].name == "j"  # read through its own bytes
    assert [by_id[str(i)].name for i in range(10)] == [f"good{i}" for i in range(10)]
    assert all(by_id[str(i)].malformed is None for i in range(10))

    # planning never sees the unreadable ones (they are refused as not found, apart)
    rows = await reader.summaries(ref, [*expected, "3", binary_id], "failed")
    assert set(rows) == {"3", binary_id}

    # the detail of each is readable too
    detail = await reader.job(ref, "a-string")
    assert detail is not None and "is a string" in detail.summary.malformed
    assert (await reader.job(ref, binary_id)).data.text == "{}"
    assert await reader.job(ref, "no-hash") is None

    code, out, err = await _run_cli(capsys, "jobs", "messy", "--state", "failed", "--url", reader.url.raw,
                              "--prefix", prefix)
    assert code == 0, err
    assert "15 of 15 (4 could not be read: marked MALFORMED)" in out
    assert "bin\\xff\\xfe" in out and "\udcff" not in out  # escaped, never raw bytes on the terminal
    code, out, err = await _run_cli(capsys, "jobs", "messy", "--state", "failed", "--json", "--url", reader.url.raw,
                              "--prefix", prefix)
    assert code == 0, err
    assert sum(1 for j in json.loads(out)["jobs"] if j["malformed"]) == 4


async def test_queue_name_that_is_not_utf8_is_read_and_shown_escaped(reader, sync_redis, prefix, capsys):
    bad = prefix.encode() + b":" + BAD_NAME
    sync_redis.hset(bad + b":meta", mapping={"version": "bullmq:5.0.0"})
    _job(sync_redis, bad + b":7")
    sync_redis.rpush(bad + b":wait", b"7")
    sync_redis.hset(f"{prefix}:fine:meta", mapping={"version": "bullmq:5.0.0"})
    sync_redis.rpush(f"{prefix}:fine:wait", "1", "2")

    disc = await reader.discover()
    names = {q.name for q in disc.queues}
    name = BAD_NAME.decode("utf-8", "surrogateescape")
    assert names == {name, "fine"}
    statuses = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    assert statuses[name].counts["waiting"] == 1 and statuses["fine"].counts["waiting"] == 2
    [ref] = [q for q in disc.queues if q.name == name]
    page = await reader.page(ref, "waiting")
    assert [j.id for j in page.jobs] == ["7"]
    assert (await reader.job(ref, "7")).summary.name == "j"
    assert clean(name) == "Qbad\\xff\\xfename"

    url = reader.url.raw
    code, out, err = await _run_cli(capsys, "status", "--url", url, "--prefix", prefix)
    assert code == 0, err
    assert "Qbad\\xff\\xfename" in out and "fine" in out
    # addressable as shown, and as its own bytes (argv decodes with surrogateescape)
    for spec in ("Qbad\\xff\\xfename", name):
        code, out, err = await _run_cli(capsys, "jobs", spec, "--url", url, "--prefix", prefix)
        assert code == 0, err
        assert "1 of 1" in out


async def test_state_key_of_the_wrong_type_marks_only_that_queue(reader, sync_redis, prefix, capsys):
    sync_redis.hset(f"{prefix}:fake:meta", mapping={"version": "bullmq:5.0.0"})
    sync_redis.set(f"{prefix}:fake:wait", "a string")
    sync_redis.hset(f"{prefix}:fine:meta", mapping={"version": "bullmq:5.0.0"})
    sync_redis.rpush(f"{prefix}:fine:wait", "1", "2", "3")
    disc = await reader.discover()
    statuses = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    assert statuses["fine"].malformed is None and statuses["fine"].counts["waiting"] == 3
    assert statuses["fake"].malformed == f"{prefix}:fake:wait is not a list"
    assert json_record(statuses["fake"])["malformed"] == statuses["fake"].malformed
    [fake] = [q for q in disc.queues if q.name == "fake"]
    with pytest.raises(Malformed, match="is not a list"):
        await reader.page(fake, "waiting")

    url = reader.url.raw
    code, out, err = await _run_cli(capsys, "status", "--url", url, "--prefix", prefix)
    assert code == 0, err
    assert "1 of 2 queues could not be read (malformed)" in out
    assert f"fake (bullmq): {prefix}:fake:wait is not a list" in out
    code, out, err = await _run_cli(capsys, "jobs", "fake", "--url", url, "--prefix", prefix)
    assert code == 3 and err.count("\n") == 1 and "is not a list" in err


def test_display_escapes_lone_surrogates_as_their_bytes():
    assert one_line(b"a\xffb\x1b".decode("utf-8", "surrogateescape")) == "a\\xffb\\x1b"
    assert clean("\ud800") == "\\ud800"


async def test_tui_shows_every_queue_with_the_bad_ones_marked(redis_url, sync_redis, prefix):
    """Before: a name that is not UTF-8 made every refresh fail ("0 queues")."""
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.screens.queue import QueueScreen
    from tests.tui_harness import SIZE, plain, rows, wait_for

    bad = prefix.encode() + b":" + BAD_NAME
    sync_redis.hset(bad + b":meta", mapping={"version": "bullmq:5.0.0"})
    sync_redis.rpush(bad + b":wait", b"7")
    _job(sync_redis, bad + b":7")
    sync_redis.hset(f"{prefix}:fake:meta", mapping={"version": "bullmq:5.0.0"})
    sync_redis.set(f"{prefix}:fake:wait", "a string")
    _messy_failed_set(sync_redis, prefix)
    app = QueueConsoleApp(Settings(urls=[redis_url], prefixes=[prefix], refresh=0.5))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3, what="three queues")
        shown = {r[0]: r for r in rows(table)}
        assert set(shown) == {"Qbad\\xff\\xfename", "fake", "messy"}
        assert shown["fake"][2] == "MALFORMED" and f"{prefix}:fake:wait is not a list" in " ".join(shown["fake"])
        assert "1 malformed" in plain(app.screen.query_one("#connections").content)
        # the messy queue opens; its unreadable jobs are rows marked MALFORMED, and the page says how many
        table.move_cursor(row=[r[0] for r in rows(table)].index("messy"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue view")
        await pilot.press("tab", "tab", "tab", "tab")  # waiting -> delayed -> active -> completed -> failed
        jobs = app.screen.query_one("#job-table", DataTable)
        await wait_for(pilot, lambda: app.screen.state == "failed" and jobs.row_count == 15, what="failed page")
        assert sum(1 for r in rows(jobs) if r[1] == "MALFORMED") == 4
        assert "4 could not be read" in plain(app.screen.query_one("#page-info").content)
