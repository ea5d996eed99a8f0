"""Interop: queues written by pg-boss 9.0.3 for Node (schema version 20) read by queue-console.

``tests/interop/pgboss/fixture9.mjs`` (run once, in a schema of this module's own) makes jobs in
every v9 state -- created (waiting, one with priority), retry (ready now, and in an hour), active,
completed, failed after a retry, expired, cancelled, delayed -- and lets pg-boss's own archive step
move a completed, a cancelled and a failed job to ``archive``. Supervision is on, so pg-boss writes
its ``__pgboss__maintenance`` rows; one job has ``onComplete``, so a ``__state__completed__main``
job exists. The fixture prints what pg-boss's API reports (getQueueSize, getJobById).

The reader's discovery, counts, pages, details and throughput must equal SQL over pg-boss's own
tables and the API; every mutation must be refused (v9 is read-only) without touching a row.

Node is found and ``npm ci`` run by ``tests/interop/node_env.py`` (``require_node_dir``); without
Node the tests are skipped loudly ("INTEROP SKIPPED: ..."), and with ``CI`` set they fail instead.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from backends.errors import Unsupported
from backends.pgboss.layout import quote_ident
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Refused, Selection
from tests import pgboss_helpers as h
from tests.interop import node_env

pytestmark = pytest.mark.interop

PGBOSS_DIR = Path(__file__).resolve().parent / "interop" / "pgboss"
#: every alias of tests/interop/pgboss/package.json (one npm ci installs them all)
PINNED = {"pgboss9": "9.0.3", "pgboss10": "10.4.2", "pgboss11": "11.1.2", "pgboss12": "12.38.0"}
NATIVE_V9 = ("created", "retry", "active", "completed", "expired", "cancelled", "failed")
INTERNAL = ["__pgboss__maintenance", "__state__completed__main"]


@dataclass
class World:
    schema: str
    store: str
    url: str
    doc: dict


@pytest.fixture(scope="module")
def world(postgres_url):
    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    manifest = json.loads((PGBOSS_DIR / "node_modules" / "pgboss9" / "package.json").read_text())
    assert manifest["version"] == PINNED["pgboss9"], "node_modules does not hold the pinned pg-boss 9"
    schema = h.new_schema("v9")
    store = h.new_schema("v9store")
    try:
        done = subprocess.run([env.node, str(PGBOSS_DIR / "fixture9.mjs"), postgres_url, schema],
                              cwd=PGBOSS_DIR, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"fixture9.mjs failed ({done.returncode}):\n{done.stderr[-4000:]}"
        doc = json.loads(done.stdout.strip().splitlines()[-1])
        yield World(schema=schema, store=store, url=postgres_url, doc=doc)
    finally:
        asyncio.run(h.drop(postgres_url, schema))
        asyncio.run(h.drop(postgres_url, store))


async def _reader(w: World, include_internal: bool = False):
    [reader] = await open_readers(w.url, ConnectOptions(schema=w.schema))
    reader.include_internal = include_internal
    reader.store_schema = w.store
    return reader


async def _sql(w: World, sql: str, *args):
    async with h.admin(w.url) as conn:
        return await conn.fetch(sql.replace("{s}", quote_ident(w.schema)), *args)


async def _native_sql(w: World, name: str) -> dict[str, int]:
    rows = await _sql(w, "SELECT state::text, count(*) FROM {s}.job WHERE name = $1 GROUP BY 1", name)
    want = {k: 0 for k in NATIVE_V9}
    want.update({r[0]: r[1] for r in rows})
    return want


async def _snapshot(w: World) -> list:
    """Every row of pg-boss's job and archive tables, as stored."""
    return [tuple(r) for r in await _sql(
        w, "SELECT 'job', to_jsonb(j)::text FROM {s}.job j UNION ALL "
           "SELECT 'archive', to_jsonb(a)::text FROM {s}.archive a ORDER BY 1, 2")]


def test_fixture_made_every_state(world):
    w = world
    assert w.doc["version"] == PINNED["pgboss9"]
    for role in ("archived", "completed", "failed", "expired", "retry_later", "active", "retry_now", "waiting",
                 "delayed", "cancelled", "other"):
        assert w.doc["ids"][role], role
    jobs = w.doc["jobs"]
    failed = jobs[w.doc["ids"]["failed"][0]]
    assert failed["state"] == "failed" and failed["retrycount"] == 1 and failed["retrylimit"] == 1
    assert [jobs[i]["state"] for i in w.doc["ids"]["archived"]] == ["completed", "cancelled", "failed"]
    assert all(jobs[i]["archivedon"] for i in w.doc["ids"]["archived"])  # getJobById found them in archive
    assert jobs[w.doc["ids"]["expired"][0]]["state"] == "expired"
    assert {jobs[w.doc["ids"][r][0]]["state"] for r in ("retry_now", "retry_later")} == {"retry"}


async def test_discovery_finds_version_20_and_hides_internal_queues(world):
    w = world
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        assert sorted(q.name for q in disc.queues) == ["main", "other"]
        assert "version 20" in disc.note and "read-only" in disc.note
        layout = await reader._layout(w.schema)
        assert (layout.version, layout.major, layout.has_archive) == (20, "v9", True)
    finally:
        await reader.close()
    reader = await _reader(w, include_internal=True)
    try:
        disc = await reader.discover()
        assert sorted(q.name for q in disc.queues) == sorted(["main", "other"] + INTERNAL)
        st = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    finally:
        await reader.close()
    for name in INTERNAL:  # pg-boss's own rows are read like any queue when asked for
        assert st[name].native == await _native_sql(w, name), name
        assert w.doc["api"][name]["getQueueSize"] == st[name].native["created"] + st[name].native["retry"]


async def test_counts_equal_sql_and_the_pgboss_api(world):
    w = world
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        st = {s.queue.name: s for s in await reader.statuses(disc.queues)}
        # a table too big to count exactly: only the queued states (fetch index), the rest null
        reader.exact_max_bytes = 0
        big = {s.queue.name: s for s in await reader.statuses(disc.queues)}
    finally:
        await reader.close()
    for name, s in st.items():
        assert s.native == await _native_sql(w, name), name  # the live job table, as pg-boss counts
        assert s.estimated == []
        assert s.info["schema version"] == "20 (v9)" and "read-only" in s.info["read-only"]
        assert s.paused is False
        api = w.doc["api"][name]
        assert api["getQueueSize"] == s.native["created"] + s.native["retry"]
        assert api["getQueueSizeBeforeCompleted"] == s.native["created"] + s.native["retry"] + s.native["active"]
        ready = await _sql(w, "SELECT count(*) FILTER (WHERE startafter < now()), count(*) FILTER (WHERE NOT "
                              "(startafter < now())) FROM {s}.job WHERE name = $1 AND state < 'active'", name)
        assert (s.counts["waiting"], s.counts["delayed"]) == tuple(ready[0])
        assert s.counts["failed"] == s.native["failed"] + s.native["expired"]
        b = big[name]
        assert (b.counts["waiting"], b.counts["delayed"]) == (s.counts["waiting"], s.counts["delayed"])
        assert all(b.counts[k] is None for k in ("active", "completed", "failed", "cancelled")), b.counts
    main = st["main"]
    ids = w.doc["ids"]
    assert (main.counts["waiting"], main.counts["delayed"], main.counts["active"], main.counts["completed"],
            main.counts["failed"], main.counts["cancelled"]) == (4, 2, 1, 1, 2, 1) == (
        len(ids["waiting"]) + len(ids["retry_now"]), len(ids["delayed"]) + len(ids["retry_later"]),
        len(ids["active"]), len(ids["completed"]), len(ids["failed"]) + len(ids["expired"]), len(ids["cancelled"]))
    assert main.native["expired"] == 1 and main.native["retry"] == 2
    # archived rows are history, not queue contents: pg-boss's getQueueSize and the reader skip them
    archived = await _sql(w, "SELECT state::text, count(*) FROM {s}.archive WHERE name = 'main' GROUP BY 1")
    assert {r[0]: r[1] for r in archived} == {"completed": 1, "cancelled": 1, "failed": 1}
    assert st["other"].counts["waiting"] == 1


ORDERS = {
    "waiting": "state < 'active' AND startafter < now() ORDER BY priority DESC, createdon, id",
    "delayed": "state < 'active' AND NOT (startafter < now()) ORDER BY startafter, id",
    "active": "state = 'active' ORDER BY startedon, id",
    "completed": "state = 'completed' ORDER BY completedon DESC, id DESC",
    "failed": "state IN ('failed', 'expired') ORDER BY completedon DESC, id DESC",
    "cancelled": "state = 'cancelled' ORDER BY completedon DESC, id DESC",
}


async def test_pages_equal_sql_keyset_order(world):
    w = world
    ids = w.doc["ids"]
    roles = {"waiting": ids["waiting"] + ids["retry_now"], "delayed": ids["delayed"] + ids["retry_later"],
             "active": ids["active"], "completed": ids["completed"], "failed": ids["failed"] + ids["expired"],
             "cancelled": ids["cancelled"]}
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        main = next(q for q in disc.queues if q.name == "main")
        for state, tail in ORDERS.items():
            want = [r[0] for r in await _sql(w, "SELECT id::text FROM {s}.job WHERE name = 'main' AND " + tail)]
            assert sorted(want) == sorted(roles[state]), state
            for limit in (1, 2):
                got, cursor = [], None
                while True:
                    page = await reader.page(main, state, cursor, limit)
                    got += [j.id for j in page.jobs]
                    assert page.total == len(want)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                assert got == want, (state, limit)
            assert not set(got) & set(ids["archived"])  # pages list the live table only
        first = (await reader.page(main, "waiting", None, 1)).jobs[0]
        assert first.id == ids["waiting"][2] and first.priority == 5  # what pg-boss's fetch takes next
        failed = {j.id: j for j in (await reader.page(main, "failed", None, 10)).jobs}
        assert failed[ids["failed"][0]].failed_reason.text == "final failure"
        assert failed[ids["expired"][0]].native_state == "expired" and failed[ids["expired"][0]].state == "failed"
        delayed = {j.id: j for j in (await reader.page(main, "delayed", None, 10)).jobs}
        assert delayed[ids["retry_later"][0]].native_state == "retry"
        assert (await reader.page(main, "blocked", None, 10)).jobs == []
    finally:
        await reader.close()


async def test_details_equal_getjobbyid_including_archived_jobs(world):
    w = world
    ids = w.doc["ids"]
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        queues = {q.name: q for q in disc.queues}
        for role, role_ids in ids.items():
            queue = queues["other" if role == "other" else "main"]
            for job_id in role_ids:
                api = w.doc["jobs"][job_id]
                d = await reader.job(queue, job_id)
                assert d is not None, (role, job_id)
                s = d.summary
                assert s.native_state == api["state"]
                assert json.loads(d.data.text) == api["data"]
                assert s.attempts_made == api["retrycount"]
                assert d.max_attempts == api["retrylimit"] + 1
                assert d.extra.get("singleton_key") == api["singletonkey"]
                assert d.attempts_started == api["retrycount"] + (1 if api["startedon"] else 0)
                assert s.created_ms == _ms(api["createdon"]) and s.finished_ms == _ms(api["completedon"])
                assert ("archived" in d.extra) == (role == "archived") == ("archivedon" in api)
                if api["state"] == "completed":
                    assert json.loads(d.return_value.text) == api["output"]
                if api["state"] == "failed":
                    assert s.state == "failed"
                    assert s.failed_reason.text == api["output"]["message"]
                    assert d.stacktrace and api["output"]["message"] in d.stacktrace[0].text
                if api["state"] == "expired":
                    assert s.state == "failed" and d.extra["expire_in"] == "00:00:01"
                if role in ("waiting", "retry_now"):
                    assert s.state == "waiting"
                if role in ("delayed", "retry_later"):
                    assert s.state == "delayed" and s.delay_ms and s.delay_ms > 3_000_000
        failed = await reader.job(queues["main"], ids["failed"][0])
        assert failed.attempts_started == 2 and failed.extra["singleton_key"] == "fail-key"
        assert (await reader.job(queues["main"], ids["waiting"][0])).attempts_started == 0
        archived_done = await reader.job(queues["main"], ids["archived"][0])
        assert json.loads(archived_done.return_value.text) == {"archived": True}
        assert archived_done.extra["archivedon"]
        assert await reader.job(queues["other"], ids["archived"][0]) is None  # another queue's job
        assert await reader.job(queues["main"], "00000000-0000-0000-0000-000000000000") is None
        quoted = await reader.job(queues["main"], ids["waiting"][1])
        assert json.loads(quoted.data.text)["uni"] == "ünï 🚀"
    finally:
        await reader.close()


def test_cli_opens_a_job_whose_queue_is_only_in_the_archive(world, monkeypatch, tmp_path, capsys):
    """``job exp ID`` where every row of ``exp`` was archived: discovery (which reads ``job``) does
    not list ``exp``, but the job opens as ``getJobById`` finds it; an unknown id still exits 2."""
    from console.cli import main

    w = world
    arch = w.doc["archivedQueue"]
    api = arch["job"]
    assert api["state"] == "expired" and api["archivedon"], api
    for name in ("QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_CONTEXT", "QUEUE_CONSOLE_READ_ONLY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "empty.toml"))

    def run(*argv):
        with pytest.raises(SystemExit) as info:
            main(["--url", w.url, "--schema", w.schema, *argv])
        out, err = capsys.readouterr()
        return info.value.code or 0, out, err

    code, out, err = run("job", "exp", arch["id"], "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["queue"] == "exp" and doc["summary"]["id"] == arch["id"]
    assert doc["summary"]["native_state"] == "expired" and doc["summary"]["state"] == "failed"
    assert doc["extra"]["archived"] and json.loads(doc["data"]["text"]) == api["data"]
    code, out, err = run("job", "exp", "00000000-0000-0000-0000-000000000000")
    assert code == 2 and "no queue named 'exp'" in err


def _ms(iso: str | None) -> int | None:
    return None if iso is None else int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


async def test_throughput_counts_job_and_archive(world):
    w = world
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        assert await reader.throughput(disc.queues) == []  # the first call sets the baseline
        # move the baseline back to before the fixture ran (and allow the next sample at once):
        # the window then holds every finish the fixture made, in job and in archive
        [[since]] = await _sql(w, "SELECT min(createdon) - interval '1 second' FROM {s}.job")
        reader._tp_since[w.schema] = since
        reader._tp_at.clear()
        tp = {t.queue.name: t for t in await reader.throughput(disc.queues)}
    finally:
        await reader.close()
    [[done, fail]] = await _sql(
        w, "SELECT (SELECT count(*) FROM {s}.job WHERE name = 'main' AND state = 'completed') + "
           "(SELECT count(*) FROM {s}.archive WHERE name = 'main' AND state = 'completed'), "
           "(SELECT count(*) FROM {s}.job WHERE name = 'main' AND state IN ('failed', 'expired')) + "
           "(SELECT count(*) FROM {s}.archive WHERE name = 'main' AND state IN ('failed', 'expired'))")
    assert (done, fail) == (2, 3)
    main = tp["main"]
    assert round(main.completed_per_s * main.interval_s) == done
    assert round(main.failed_per_s * main.interval_s) == fail
    assert tp["other"].completed_per_s == 0 == tp["other"].failed_per_s


async def test_every_mutation_is_refused_on_v9(world):
    w = world
    ids = w.doc["ids"]
    before = await _snapshot(w)
    reader = await _reader(w)
    try:
        disc = await reader.discover()
        main = next(q for q in disc.queues if q.name == "main")
        [[now_ms]] = await _sql(w, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        calls = {
            "retry_jobs": lambda: reader.retry_jobs(main, ids["failed"]),
            "retry_batch": lambda: reader.retry_batch(main, "failed", now_ms, 10),
            "remove_jobs": lambda: reader.remove_jobs(main, ids["completed"]),
            "purge_batch": lambda: reader.purge_batch(main, "completed", now_ms, 10),
            "promote_jobs": lambda: reader.promote_jobs(main, ids["delayed"]),
            "cancel_jobs": lambda: reader.cancel_jobs(main, ids["waiting"]),
            "pause": lambda: reader.set_paused(main, True),
            "resume": lambda: reader.set_paused(main, False),
        }
        for what, call in calls.items():
            with pytest.raises(Unsupported, match="version 20.*read-only"):
                await call()
            assert await _snapshot(w) == before, f"{what} changed pg-boss's tables"
        [[store_made]] = await _sql(w, "SELECT to_regnamespace($1) IS NOT NULL", w.store)
        assert not store_made, "a refused mutation created the console's store"
        assert await _snapshot(w) == before

        # the action layer refuses every mutation of a v9 queue up front (Refused: exit 4 in the CLI)
        actions = Actions(lambda q: reader, operator="test")
        for action, state in (("retry", "failed"), ("purge", "completed")):
            for sel in (Selection(queue=main, state=state), Selection(queue=main, state=state,
                                                                      job_ids=ids[state])):
                with pytest.raises(Refused, match="read-only"):
                    await actions.preview(action, sel)
                with pytest.raises(Refused, match="read-only"):
                    actions.check_allowed(action, main)
        for action, job_ids in (("promote", ids["delayed"]), ("cancel", ids["waiting"])):
            with pytest.raises(Refused, match="read-only"):
                await actions.apply_to_ids(action, main, job_ids)
        for paused in (True, False):
            with pytest.raises(Refused, match="read-only"):
                await actions.set_paused([main], paused)
        assert not reader.queue_capabilities(main).retry
        assert await _snapshot(w) == before
        st = {s.queue.name: s for s in await reader.statuses(disc.queues)}
        assert st["main"].paused is False and "paused" not in st["main"].info
    finally:
        await reader.close()
