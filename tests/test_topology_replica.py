"""pg-boss on a streaming hot standby: a private PostgreSQL 15 primary and a replica made by
pg_basebackup -R, both started by the test on loopback (ports 15481-15489).

Reads work from the standby; status --json says it is a standby and gives its lag; a mutation
through the standby says it needs the primary (one line, nothing changed), and with --write-url it
goes to the primary, whose change then reaches the standby.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from backends.pgboss.layout import quote_ident
from tests import pgboss_helpers as h
from tests.cli_harness import isolated_env, run  # noqa: F401 (isolated_env: autouse)
from tests.topology_servers import PrivatePostgres


@pytest.fixture(scope="module")
def pair():
    primary = PrivatePostgres()
    try:
        standby = PrivatePostgres(standby_of=primary)
    except BaseException:
        primary.close()
        raise
    yield primary, standby
    standby.close()
    primary.close()


async def _states(url: str, schema: str) -> list[str]:
    async with h.admin(url) as conn:
        rows = await conn.fetch(f"SELECT state::text FROM {quote_ident(schema)}.job WHERE name = 'work' ORDER BY id")
    return [r[0] for r in rows]


def wait_states(url: str, schema: str, expected: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = asyncio.run(_states(url, schema))
        except Exception as exc:  # the schema is not replayed yet
            got = [repr(exc)]
        if sorted(got) == sorted(expected):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"standby shows {got}, expected {expected}")
        time.sleep(0.1)


async def _setup(url: str, schema: str, n: int) -> None:
    await h.install(url, "v12", schema)
    async with h.admin(url) as conn:
        await h.create_queue(conn, schema, "work")
        for i in range(n):
            await h.add_job(conn, schema, "work", "failed", started_s=-40, completed_s=-30,
                            output={"message": f"boom {i}"})


@pytest.mark.timeout(90)
def test_hot_standby_reads_lag_and_mutations_need_the_primary(pair, capsys):
    primary, standby = pair
    schema = h.new_schema("v12")
    asyncio.run(_setup(primary.url, schema, 4))
    wait_states(standby.url, schema, ["failed"] * 4)

    code, out, err = run(capsys, "status", "--json", "--url", standby.url, "--schema", schema)
    assert code == 0, err
    doc = json.loads(out)
    [rec] = [q for q in doc["queues"] if q["queue"] == "work"]
    assert rec["counts"]["failed"] == 4
    [conn] = doc["connections"]
    assert conn["standby"] is True
    assert isinstance(conn["replica_lag_s"], float) and conn["replica_lag_s"] >= 0
    assert conn["replay_bytes_behind"] >= 0
    code, out, err = run(capsys, "status", "--json", "--url", primary.url, "--schema", schema)
    assert code == 0 and json.loads(out)["connections"][0]["standby"] is False

    # a mutation through the standby: one line naming the way out, nothing changed
    code, out, err = run(capsys, "dlq", "retry", "work", "--all", "--yes", "--url", standby.url, "--schema", schema)
    assert code == 3, (out, err)
    assert "0 of 4, stopped by: PostgreSQL at 127.0.0.1:" in out and "is a hot standby" in out
    assert "--write-url" in out and "Traceback" not in out + err
    assert asyncio.run(_states(primary.url, schema)) == ["failed"] * 4

    # with --write-url the mutation goes to the primary; reads stay on the standby
    code, out, err = run(capsys, "dlq", "retry", "work", "--all", "--yes", "--url", standby.url,
                         "--write-url", primary.url, "--schema", schema)
    assert code == 0, (out, err)
    assert asyncio.run(_states(primary.url, schema)) == ["retry"] * 4
    wait_states(standby.url, schema, ["retry"] * 4)


def test_write_url_must_be_postgresql(capsys):
    code, out, err = run(capsys, "status", "--url", "postgresql://127.0.0.1:1/x", "--write-url", "redis://127.0.0.1:1/0")
    assert code == 2 and "write" in err and "postgresql://" in err


@pytest.mark.timeout(60)
async def test_tui_connection_bar_shows_standby_and_lag(pair):
    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.widgets.status_bar import ConnectionBar
    from tests.tui_harness import wait_for

    primary, standby = pair
    schema = h.new_schema("v12")
    await _setup(primary.url, schema, 1)
    app = QueueConsoleApp(Settings(urls=[standby.url], schema=schema, refresh=0.5))
    async with app.run_test(size=(140, 40)) as pilot:
        bar = app.screen.query_one(ConnectionBar)
        await wait_for(pilot, lambda: "standby, lag " in str(bar.render()), what="standby badge")
        assert " s" in str(bar.render()).split("standby, lag ")[1]
    app = QueueConsoleApp(Settings(urls=[primary.url], schema=schema, refresh=0.5))
    async with app.run_test(size=(140, 40)) as pilot:
        bar = app.screen.query_one(ConnectionBar)
        await wait_for(pilot, lambda: "1 queues" in str(bar.render()), what="primary badge")
        assert "standby" not in str(bar.render())


def test_contexts_carry_sentinel_urls_and_a_write_url(tmp_path, monkeypatch):
    from console.config import ConfigError, load
    from console.connections import connect_options

    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "[contexts.prod]\n"
        'urls = ["redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/orders/1", "postgresql://ro@replica/app"]\n'
        'write_url = "postgresql://rw@primary/app"\n')
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(cfg))
    s = load({"context": "prod"})
    assert s.urls[0].startswith("redis+sentinel://") and s.write_url == "postgresql://rw@primary/app"
    assert connect_options(s).write_url == "postgresql://rw@primary/app"
    assert load({"context": "prod", "write_url": "postgresql://other/app"}).write_url == "postgresql://other/app"
    cfg.write_text('[contexts.prod]\nwrite_url = "redis://x:6379/0"\n')
    with pytest.raises(ConfigError) as err:
        load({"context": "prod"})
    assert "write_url" in str(err.value)
