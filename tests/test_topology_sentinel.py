"""Redis Sentinel: ``redis+sentinel://host:port,host:port,host:port/MASTER/db`` against a master, a
replica and three sentinels that the test starts on loopback (ports 6481-6499, 26481-26489).

The master is failed over (SENTINEL FAILOVER) during a bulk retry and during a TUI session. Nothing is
lost, the console reconnects to the new master, and a batch that hit the demoted master is reported
("stopped by"), then finished by running again.
"""
from __future__ import annotations

import pytest

from backends.registry import ConnectOptions, open_readers
from console import actions as actions_mod
from console.actions import Actions, Selection
from tests.fixed_data import write_fixed_queue
from tests.topology_servers import SentinelSet

PREFIX = "qcsent"


@pytest.fixture
def sentinels():
    s = SentinelSet()
    yield s
    s.close()


def queue_state(client, name: str) -> dict[str, int]:
    base = f"{PREFIX}:{name}"
    jobs = [k for k in client.scan_iter(f"{base}:*") if k.decode().rsplit(":", 1)[1].isdigit()]
    return {"failed": client.zcard(f"{base}:failed"), "wait": client.llen(f"{base}:wait"), "jobs": len(jobs)}


def console_clients(client) -> int:
    return sum(1 for c in client.client_list() if c.get("name") == "queue-console")


@pytest.mark.timeout(90)
async def test_bulk_retry_across_a_failover_loses_nothing(sentinels, monkeypatch):
    write_fixed_queue(sentinels.master(), PREFIX, "emails", failed=300, completed=2, waiting=4, delayed=0)
    [reader] = await open_readers(sentinels.url, ConnectOptions(prefixes=[PREFIX], backend="bullmq"))
    try:
        [queue] = (await reader.discover()).queues
        [status] = await reader.statuses([queue])
        assert status.counts["failed"] == 300 and status.counts["waiting"] == 4
        first = sentinels.master_port()

        # batches of 50: the master is failed over after the first batch
        monkeypatch.setattr(actions_mod, "BULK_BATCH", 50)
        acts = Actions(lambda q: reader, operator="test@host")
        switched = []

        def progress(done: int, total: int) -> None:
            if not switched:
                switched.append(sentinels.failover())

        report = await acts.execute(await acts.preview("retry", Selection(queue, state="failed")), progress)
        assert switched and switched[0] != first
        runs = 1
        while not report.complete:
            # reported, never silent: "N of 300, stopped by ..."; the next run finishes the rest
            assert report.error, report
            assert runs < 4, report
            report = await acts.execute(await acts.preview("retry", Selection(queue, state="failed")))
            runs += 1
        new = sentinels.master()
        assert queue_state(new, "emails") == {"failed": 0, "wait": 304, "jobs": 306}
        assert console_clients(new) >= 1  # the console talks to the new master now
        [status] = await reader.statuses([queue])
        assert status.counts["failed"] == 0 and status.counts["waiting"] == 304
    finally:
        await reader.close()


@pytest.mark.timeout(90)
async def test_tui_follows_a_failover(sentinels):
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.widgets.status_bar import ConnectionBar
    from tests.tui_harness import wait_for

    write_fixed_queue(sentinels.master(), PREFIX, "emails", failed=5, completed=1, waiting=1, delayed=0)
    app = QueueConsoleApp(Settings(urls=[sentinels.url], prefixes=[PREFIX], refresh=0.3))
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the queue row", timeout=20)
        old = sentinels.master_port()
        new = sentinels.failover()
        sentinels.stop_server(old)  # the old master is gone: only the new one can answer now
        # a change made on the new master only: two failed jobs leave the failed set
        sentinels.client(new).zpopmin(f"{PREFIX}:emails:failed", 2)
        await wait_for(pilot, lambda: [str(c) for c in table.get_row_at(0)][7] == "3",
                       what="the failed count read from the new master", timeout=30)
        bar = app.screen.query_one(ConnectionBar)
        assert "1 queues" in str(bar.render())
        assert console_clients(sentinels.client(new)) >= 1


@pytest.mark.timeout(90)
async def test_the_master_is_cached_not_asked_before_every_command(sentinels):
    """Commands do not ask a sentinel each (one round trip each, before): redis-py's own
    Sentinel.discover_master, counted as it is called (sentinel INFO has no command statistics)."""
    write_fixed_queue(sentinels.master(), PREFIX, "emails", failed=3, completed=1, waiting=1, delayed=0)
    [reader] = await open_readers(sentinels.url, ConnectOptions(prefixes=[PREFIX], backend="bullmq"))
    try:
        manager = reader.client.connection_pool.sentinel_manager
        asked = []
        ask = manager.discover_master

        async def counted(name):
            asked.append(name)
            return await ask(name)

        manager.discover_master = counted
        [queue] = (await reader.discover()).queues
        for _ in range(50):
            [status] = await reader.statuses([queue])
            await reader.page(queue, "failed", limit=10)
        assert status.counts["failed"] == 3
        assert len(asked) <= 3, f"{len(asked)} questions to the sentinels for 101 calls"
    finally:
        await reader.close()


def test_sentinel_urls_parse_redact_and_explain():
    from backends.errors import BadUrl
    from backends.urls import parse

    url = parse("redis+sentinel://:s3cret-pw@10.0.0.1:26379,10.0.0.2:26380/orders/3?sentinel_password=s3ntinel-pw")
    assert url.kind == "redis" and url.host_label == "orders via sentinel 10.0.0.1:26379,10.0.0.2:26380"
    assert "s3cret-pw" not in url.redacted and "s3ntinel-pw" not in url.redacted
    assert repr(url).count("***") == 2
    for bad, words in (("redis+sentinel://10.0.0.1:26379/", "no master name"),
                       ("redis+sentinel://10.0.0.1:26379/m/x", "MASTER_NAME[/db]"),
                       ("redis+sentinel:///m", "no sentinel host")):
        with pytest.raises(BadUrl) as err:
            parse(bad)
        assert words in str(err.value)


@pytest.mark.timeout(60)
def test_unreachable_sentinels_are_one_line_exit_3(capsys, monkeypatch, tmp_path):
    from console.cli import main

    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.delenv("QUEUE_CONSOLE_URL", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["status", "--url", "redis+sentinel://:pw-xyz@127.0.0.1:1/orders", "--connect-timeout", "2"])
    err = capsys.readouterr().err
    assert info.value.code == 3 and len(err.strip().splitlines()) == 1, err
    assert "orders via sentinel 127.0.0.1:1" in err and "pw-xyz" not in err
