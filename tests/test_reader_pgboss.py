"""Reader contract tests for pg-boss on a real PostgreSQL (QC_TEST_POSTGRES_URL's server or pgserver).

Schemas are the real pg-boss 10.4.2 / 11.1.2 / 12.38.0 DDL (tests/pgboss_ddl, dumped from installs
made by pg-boss itself); rows are written by the test as SQL. Node interop is in
test_interop_pgboss_node.py.
"""
from __future__ import annotations

import asyncio
import json
import re

import asyncpg
import pytest

from backends.contract import call_with_timeout
from backends.errors import BackendTimeout, BadCursor, ConnectError
from backends.pgboss import reader as pgreader
from backends.pgboss.layout import quote_ident
from backends.registry import ConnectOptions, open_readers
from tests import pgboss_helpers as h

MAJORS = ("v10", "v11", "v12")
ODD_NAME = 'we"ird q\'ueue ünï 🚀'


async def open_reader(url, schema=None, **kw):
    readers = await open_readers(url, ConnectOptions(schema=schema, **kw))
    assert len(readers) == 1 and readers[0].backend == "pgboss"
    return readers[0]


@pytest.fixture(params=MAJORS)
async def world(request, postgres_url):
    """A pg-boss schema of this test's own with queues `main` (every state), its DLQ `main_dlq`,
    `empty`, an odd name, and pg-boss's internal `__pgboss__send-it`."""
    major = request.param
    schema = h.new_schema(major)
    await h.install(postgres_url, major, schema)
    ids: dict[str, list[str]] = {}
    try:
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, schema, "main_dlq")
            await h.create_queue(conn, schema, "main", {"deadLetter": "main_dlq"})
            await h.create_queue(conn, schema, "empty")
            await h.create_queue(conn, schema, ODD_NAME)
            await h.create_queue(conn, schema, "__pgboss__send-it")

            async def add(state, n=1, **kw):
                for _ in range(n):
                    ids.setdefault(state if "tag" not in kw else kw.pop("tag"), []).append(
                        await h.add_job(conn, schema, "main", "created" if state == "delayed" else state, **kw))

            for i in range(7):
                ids.setdefault("waiting", []).append(await h.add_job(conn, schema, "main", "created", priority=i % 3,
                                                                     created_s=-100 + i, data={"i": i}))
            ids["retry_ready"] = [await h.add_job(conn, schema, "main", "retry", retry_count=1, started_s=-5)]
            ids["waiting"].append(ids["retry_ready"][0])
            for i in range(4):
                ids.setdefault("delayed", []).append(await h.add_job(conn, schema, "main", "created",
                                                                     start_after_s=3600 + i))
            ids["retry_later"] = [await h.add_job(conn, schema, "main", "retry", start_after_s=600, retry_count=1)]
            ids["delayed"].append(ids["retry_later"][0])
            ids["active"] = [await h.add_job(conn, schema, "main", "active", started_s=-2)]
            for i in range(5):
                ids.setdefault("completed", []).append(await h.add_job(
                    conn, schema, "main", "completed", started_s=-60 + i, completed_s=-50 + i, output={"ok": i}))
            for i in range(3):
                ids.setdefault("failed", []).append(await h.add_job(
                    conn, schema, "main", "failed", started_s=-40, completed_s=-30 + i, retry_count=2, retry_limit=2,
                    output={"message": f"boom {i}", "stack": f"Error: boom {i}\n    at handler (w.js:1:1)"},
                    singleton_key="k1" if i == 0 else None))
            ids["cancelled"] = [await h.add_job(conn, schema, "main", "cancelled", completed_s=-20)]
            ids["dlq"] = [await h.add_job(conn, schema, "main_dlq", "created", output={"message": "boom 0"})]
            ids["odd"] = [await h.add_job(conn, schema, ODD_NAME, "created", data={"name": ODD_NAME})]
            await h.add_job(conn, schema, "__pgboss__send-it", "created")
        yield major, schema, ids
    finally:
        await h.drop(postgres_url, schema)


def by_name(statuses):
    return {s.queue.name: s for s in statuses}


async def sql_native(url, schema, name):
    async with h.admin(url) as conn:
        rows = await conn.fetch(f'SELECT state::text, count(*) FROM {quote_ident(schema)}.job WHERE name = $1 GROUP BY 1',
                                name)
    out = {s: 0 for s in ("created", "retry", "active", "completed", "cancelled", "failed")}
    out.update({r[0]: r[1] for r in rows})
    return out


# ------------------------------------------------------------------------------------ discovery
async def test_no_pgboss_says_what_it_looked_for(postgres_url):
    reader = await open_reader(postgres_url, schema="nosuchschema")
    try:
        disc = await reader.discover()
    finally:
        await reader.close()
    assert disc.queues == []
    assert "nosuchschema" in " ".join(disc.looked_for)
    assert "--schema" in (disc.hint or "")  # the what-to-try hint, beside the note


async def test_discovery_hides_internal_queues_and_pins_schema(world, postgres_url):
    major, schema, _ = world
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
    finally:
        await reader.close()
    assert sorted(q.name for q in disc.queues) == sorted(["main", "main_dlq", "empty", ODD_NAME])
    assert {q.namespace for q in disc.queues} == {schema}
    assert {q.backend for q in disc.queues} == {"pgboss"}


async def test_discovery_without_schema_finds_every_schema(world, postgres_url):
    _, schema, _ = world
    other = h.new_schema("v12")
    await h.install(postgres_url, "v12", other)
    try:
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, other, "elsewhere")
        reader = await open_reader(postgres_url)
        try:
            disc = await reader.discover()
        finally:
            await reader.close()
        found = {(q.namespace, q.name) for q in disc.queues}
        assert (schema, "main") in found and (other, "elsewhere") in found
    finally:
        await h.drop(postgres_url, other)


# ------------------------------------------------------------------------------------ counts
async def test_exact_counts_equal_sql_per_state(world, postgres_url):
    major, schema, ids = world
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        st = by_name(await reader.statuses(disc.queues))
    finally:
        await reader.close()
    main = st["main"]
    assert main.native == await sql_native(postgres_url, schema, "main")
    assert main.counts["waiting"] == len(ids["waiting"]) == 8
    assert main.counts["delayed"] == len(ids["delayed"]) == 5
    assert (main.counts["active"], main.counts["completed"], main.counts["failed"], main.counts["cancelled"]) == (1, 5, 3, 1)
    assert main.estimated == []
    assert main.info["dead letter queue"] == "main_dlq"
    assert st["main_dlq"].info["dead letter of"] == "main"
    assert st["main_dlq"].counts["waiting"] == 1
    assert st["empty"].native == {s: 0 for s in ("created", "retry", "active", "completed", "cancelled", "failed")}
    assert st[ODD_NAME].counts["waiting"] == 1
    assert main.server_time_ms and main.info["schema version"].startswith(str(h.VERSIONS[major]))
    if major == "v12":
        assert main.counts["blocked"] == 0


async def test_large_table_counts_are_indexed_or_estimated(world, postgres_url):
    """Above the size threshold only the live states are counted (partial indexes); completed and
    cancelled are estimates, labelled as such, and never in `native`."""
    major, schema, ids = world
    readers = await open_readers(postgres_url, ConnectOptions(schema=schema))
    reader = readers[0]
    reader.exact_max_bytes = -1
    try:
        disc = await reader.discover()
        main = by_name(await reader.statuses(disc.queues))["main"]
    finally:
        await reader.close()
    assert main.counts["waiting"] == 8 and main.counts["delayed"] == 5
    assert {"completed", "cancelled"} <= set(main.estimated)
    assert "completed" not in main.native and "cancelled" not in main.native
    if major == "v12":  # 12.38's job_i14 makes active and failed exact too
        assert main.counts["active"] == 1 and main.counts["failed"] == 3
        assert "failed" not in main.estimated and main.native["failed"] == 3
    if major == "v12" or major == "v9":
        assert main.native["created"] + main.native["retry"] == 13
    else:  # v10/v11: waiting/delayed from the fetch index alone (index-only), created + retry not split
        assert "created" not in main.native and "retry" not in main.native


async def _set_counters(url, schema, name, age_s: float, **values) -> None:
    """Write the queue row's cached counters as pg-boss's monitor does (the columns this version has)."""
    async with h.admin(url) as conn:
        cols = {r[0] for r in await conn.fetch("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_schema = $1 AND table_name = 'queue'", schema)}
        if "monitor_on" not in cols:  # v10: no counters
            return
        sets = [f"{k} = {int(v)}" for k, v in values.items() if k in cols]
        sets.append("monitor_on = now() - make_interval(secs => $2::int)")
        await conn.execute(f"UPDATE {quote_ident(schema)}.queue SET {', '.join(sets)} WHERE name = $1", name, age_s)


async def test_fresh_cached_counters_are_the_counts_labelled_with_their_age(world, postgres_url):
    """On a big table (11+) the fresh counters pg-boss's monitor keeps are the counts: no job row is
    read, every count is labelled (estimated + "cached, N s old"). Stale counters are not used; a
    small table is still counted exactly; v10 has no counters."""
    major, schema, ids = world
    await _set_counters(postgres_url, schema, "main", 5, queued_count=70, ready_count=40, deferred_count=20,
                        blocked_count=10, active_count=3, failed_count=6, total_count=1079, retained_count=1000)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        small = by_name(await reader.statuses(disc.queues))["main"]
        assert small.counts["waiting"] == 8 and small.estimated == []  # exact wins while the table is small
        reader.exact_max_bytes = -1
        main = by_name(await reader.statuses(disc.queues))["main"]
        if major == "v10":
            assert main.counts["waiting"] == 8 and "counts" not in main.info
            return
        assert re.fullmatch(r"cached, [5-9] s old", main.info["counts"]), main.info
        assert set(main.estimated) == set(main.counts) and main.native == {}
        if major == "v12":
            assert main.counts == {"waiting": 40, "delayed": 20, "blocked": 10, "active": 3, "failed": 6,
                                   "completed": 1000, "cancelled": None}
        else:  # v11: no ready/blocked/failed counters; completed = total - queued - active (incl. failed)
            assert main.counts == {"waiting": 50, "delayed": 20, "active": 3, "failed": None, "completed": 1006,
                                   "cancelled": None}
        await _set_counters(postgres_url, schema, "main", 600)  # stale: counted live again
        main = by_name(await reader.statuses(disc.queues))["main"]
        assert main.counts["waiting"] == 8 and main.counts["delayed"] == 5 and "counts" not in main.info
        assert "(stale)" in main.info["cached counters"]
    finally:
        await reader.close()


async def test_exact_counting_has_a_budget_per_refresh(world, postgres_url, monkeypatch):
    """Exact counting (a pass over the queue's rows) goes smallest table first while the sizes add up
    to at most exact_max_bytes: one refresh never scans more than that. (Live counts go LIVE_CHUNK
    queues per statement: 2 here, so the queues come from several statements.)"""
    major, schema, _ = world
    monkeypatch.setattr(pgreader, "LIVE_CHUNK", 2)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        await reader.statuses(disc.queues)
        sizes = {q.name: reader._queues[(schema, q.name)].table_bytes for q in disc.queues}
        reader.exact_max_bytes = min(sizes.values())
        st = by_name(await reader.statuses(disc.queues))
        exact = [n for n, s in st.items() if not s.estimated]
        assert exact and sum(sizes[n] for n in exact) <= reader.exact_max_bytes
        assert st["main"].counts["waiting"] == 8
    finally:
        await reader.close()


async def test_version_is_read_every_refresh(world, postgres_url):
    """A schema migrated to a version this console does not know becomes read-only, never guessed."""
    _, schema, _ = world
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        assert by_name(await reader.statuses(disc.queues))["main"].counts["waiting"] == 8
        async with h.admin(postgres_url) as conn:
            await conn.execute(f"UPDATE {quote_ident(schema)}.version SET version = 99")
        main = by_name(await reader.statuses(disc.queues))["main"]
        assert main.counts == {} and "99" in main.info["read-only"]
        disc2 = await reader.discover()
        assert "99" in (disc2.note or "")
    finally:
        await reader.close()


async def test_statement_timeout_is_a_backend_timeout(world, postgres_url):
    _, schema, _ = world
    reader = await open_reader(postgres_url, schema=schema, op_timeout=1.0)
    locker = await asyncpg.connect(postgres_url)
    try:
        disc = await reader.discover()
        tr = locker.transaction()
        await tr.start()
        await locker.execute(f"LOCK TABLE {quote_ident(schema)}.job IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(BackendTimeout):
            await call_with_timeout(reader.statuses(disc.queues), 5, "counts")
        await tr.rollback()
        assert by_name(await reader.statuses(disc.queues))["main"].counts["waiting"] == 8  # recovers
    finally:
        await locker.close()
        await reader.close()


# ------------------------------------------------------------------------------------ pages
async def _all_pages(reader, queue, state, limit):
    out, cursor, seen = [], None, 0
    while True:
        page = await reader.page(queue, state, cursor, limit)
        out.extend(page.jobs)
        seen += 1
        assert seen < 100
        if page.next_cursor is None:
            return out, page.total
        cursor = page.next_cursor


async def test_pages_are_keyset_in_pgboss_order(world, postgres_url):
    _, schema, ids = world
    q = quote_ident(schema)
    orders = {
        "waiting": "state < 'active' AND start_after <= now() ORDER BY priority DESC, created_on, id",
        "delayed": "state < 'active' AND start_after > now() ORDER BY start_after, id",
        "active": "state = 'active' ORDER BY started_on, id",
        "completed": "state = 'completed' ORDER BY completed_on DESC, id DESC",
        "failed": "state = 'failed' ORDER BY completed_on DESC, id DESC",
        "cancelled": "state = 'cancelled' ORDER BY completed_on DESC, id DESC",
    }
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        main = next(x for x in disc.queues if x.name == "main")
        async with h.admin(postgres_url) as conn:
            for state, tail in orders.items():
                want = [r[0] for r in await conn.fetch(f"SELECT id::text FROM {q}.job WHERE name = 'main' AND {tail}")]
                assert sorted(want) == sorted(ids[state])
                for limit in (1, 3, 50):
                    jobs, total = await _all_pages(reader, main, state, limit)
                    assert [j.id for j in jobs] == want, (state, limit)
                    assert total == len(want)
                    assert {j.state for j in jobs} == {state}
        failed, _ = await _all_pages(reader, main, "failed", 50)
        assert failed[0].failed_reason.text == "boom 2" and failed[0].attempts_made == 2
    finally:
        await reader.close()


async def test_page_total_is_not_counted_on_every_page(world, postgres_url, monkeypatch):
    """A page is one statement: its total is the last refresh's live count of that state; a state the
    refresh only estimated is counted once on demand and reused by the next pages and reloads."""
    major, schema, _ = world
    log = h.StatementLog().install(monkeypatch)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        main = next(q for q in (await reader.discover()).queues if q.name == "main")
        await reader.statuses([main])
        await log.take()
        p1 = await reader.page(main, "failed", None, 2)
        p2 = await reader.page(main, "failed", p1.next_cursor, 2)
        assert p1.total == p2.total == 3 and len(await log.take()) == 2
        reader.exact_max_bytes = -1  # a big table: completed is an estimate
        status = (await reader.statuses([main]))[0]
        assert "completed" in status.estimated
        await log.take()
        p1 = await reader.page(main, "completed", None, 2)
        p2 = await reader.page(main, "completed", p1.next_cursor, 2)
        p1_again = await reader.page(main, "completed", None, 2)
        texts = await log.take()
        assert p1.total == p2.total == p1_again.total == 5
        assert len([t for t in texts if "count(*)" in t]) == 1 and len(texts) == 4
    finally:
        await reader.close()


async def test_bad_cursor_is_rejected(world, postgres_url):
    _, schema, _ = world
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        main = next(x for x in disc.queues if x.name == "main")
        page = await reader.page(main, "waiting", None, 2)
        for bad in ("nope", page.next_cursor + "x", "e30", "'; DROP TABLE job; --"):
            with pytest.raises(BadCursor):
                await reader.page(main, "waiting", bad, 2)
        with pytest.raises(BadCursor):  # a cursor of another state
            await reader.page(main, "delayed", page.next_cursor, 2)
    finally:
        await reader.close()


# ------------------------------------------------------------------------------------ detail
async def test_job_detail(world, postgres_url):
    _, schema, ids = world
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        main = next(x for x in disc.queues if x.name == "main")
        odd = next(x for x in disc.queues if x.name == ODD_NAME)
        d = await reader.job(main, ids["failed"][0])
        assert d.summary.state == "failed" and d.summary.native_state == "failed"
        assert d.summary.failed_reason.text == "boom 0"
        assert "at handler" in d.stacktrace[0].text
        assert d.max_attempts == 3 and d.extra["retry_count"] == "2" and d.extra["retry_limit"] == "2"
        assert d.extra["singleton_key"] == "k1" and d.extra["policy"] == "standard"
        assert json.loads(d.options.text)["policy"] == "standard"
        c = await reader.job(main, ids["completed"][0])
        assert c.summary.state == "completed" and json.loads(c.return_value.text) == {"ok": 0}
        delayed = await reader.job(main, ids["retry_later"][0])
        assert delayed.summary.state == "delayed" and delayed.summary.native_state == "retry"
        o = await reader.job(odd, ids["odd"][0])
        assert json.loads(o.data.text) == {"name": ODD_NAME}
        assert await reader.job(main, ids["odd"][0]) is None  # another queue's job
        assert await reader.job(main, "not-a-uuid") is None
        assert await reader.job(main, "00000000-0000-0000-0000-000000000000") is None
    finally:
        await reader.close()


async def test_expired_and_wrapped_failures_show_and_group_by_the_message(world, postgres_url):
    """pg-boss stores a timed-out job's error as ``{"value": {"message": "job timed out"}}`` (10.x:
    "job failed by timeout in active state"; 12.x heartbeat: "job heartbeat timeout") and a string
    error as ``{"value": "text"}`` (plans.js failJobsByTimeout / manager's mapCompletionDataArg)."""
    from console.triage import group_jobs

    _, schema, _ = world
    outputs = [{"value": {"message": "job timed out"}}, {"value": {"message": "job timed out"}},
               {"value": {"message": "job heartbeat timeout"}}, {"value": "plain text error"},
               {"message": "boom", "stack": "Error: boom\n    at x (y.js:1:1)"}, [1, 2]]
    async with h.admin(postgres_url) as conn:
        await h.create_queue(conn, schema, "expiry")
        ids = [await h.add_job(conn, schema, "expiry", "failed", started_s=-40, completed_s=-30 + i, output=o)
               for i, o in enumerate(outputs)]
    reader = await open_reader(postgres_url, schema=schema)
    try:
        q = next(x for x in (await reader.discover()).queues if x.name == "expiry")
        page = await reader.page(q, "failed", None, 50)
        reasons = {j.id: j.failed_reason.text for j in page.jobs}
        assert [reasons[i] for i in ids] == ["job timed out", "job timed out", "job heartbeat timeout",
                                             "plain text error", "boom", "[1, 2]"]
        groups = {g.signature: g.count for g in group_jobs([(q, j) for j in page.jobs])}
        assert groups["job timed out"] == 2 and groups["job heartbeat timeout"] == 1
        d = await reader.job(q, ids[0])
        assert d.summary.failed_reason.text == "job timed out"
        d = await reader.job(q, ids[3])
        assert d.summary.failed_reason.text == "plain text error"
        d = await reader.job(q, ids[4])
        assert d.summary.failed_reason.text == "boom" and "at x" in d.stacktrace[0].text
    finally:
        await reader.close()


# ------------------------------------------------------------------------------------ throughput
async def test_throughput_counts_completions_on_the_db_clock(world, postgres_url, monkeypatch):
    _, schema, _ = world
    monkeypatch.setattr(pgreader, "THROUGHPUT_MIN_S", 0.0)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        assert await reader.throughput(disc.queues) == []  # the first call sets the baseline
        async with h.admin(postgres_url) as conn:
            for _ in range(4):
                await h.add_job(conn, schema, "main", "completed", completed_s=0)
            await h.add_job(conn, schema, "main", "failed", completed_s=0)
        await asyncio.sleep(0.05)
        tp = {t.queue.name: t for t in await reader.throughput(disc.queues)}
        main = tp["main"]
        assert round(main.completed_per_s * main.interval_s) == 4
        assert round(main.failed_per_s * main.interval_s) == 1
        assert tp["empty"].completed_per_s == 0
    finally:
        await reader.close()


async def test_throughput_without_a_completed_on_index_scans_a_bounded_turn(world, postgres_url, monkeypatch):
    """v10/v11 keep no index on completed_on: a sample scans queue tables only while their sizes add
    up to THROUGHPUT_SCAN_BYTES, queue by queue in turn, each over its own window; a queue bigger
    than that is never scanned and says so. 12.38 (job_i16) samples every queue every time."""
    major, schema, _ = world
    monkeypatch.setattr(pgreader, "THROUGHPUT_MIN_S", 0.0)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        queues = disc.queues
        await reader.statuses(queues)
        sizes = {q.name: reader._queues[(schema, q.name)].table_bytes for q in queues}
        monkeypatch.setattr(pgreader, "THROUGHPUT_SCAN_BYTES", max(sizes.values()))
        assert await reader.throughput(queues) == []  # the baseline
        async with h.admin(postgres_url) as conn:
            for _ in range(4):
                await h.add_job(conn, schema, "main", "completed", completed_s=0)
            await h.add_job(conn, schema, "main", "failed", completed_s=0)
        await asyncio.sleep(0.05)
        calls = [await reader.throughput(queues) for _ in range(len(queues))]
        done = sum(round(t.completed_per_s * t.interval_s) for c in calls for t in c if t.queue.name == "main")
        fail = sum(round(t.failed_per_s * t.interval_s) for c in calls for t in c if t.queue.name == "main")
        assert (done, fail) == (4, 1)
        assert {t.queue.name for c in calls for t in c} == {q.name for q in queues}
        if major == "v12":
            assert all(len(c) == len(queues) for c in calls)
        else:
            assert all(sum(sizes[t.queue.name] for t in c) <= max(sizes.values()) for c in calls)
            assert len(calls[0]) < len(queues)
            monkeypatch.setattr(pgreader, "THROUGHPUT_SCAN_BYTES", 0)  # only empty tables fit
            assert all(sizes[t.queue.name] == 0 for t in await reader.throughput(queues))
            main = by_name(await reader.statuses(queues))["main"]
            assert main.info["throughput"].startswith("not measured")
    finally:
        await reader.close()


async def test_sessions_have_jit_off_and_no_reset_round_trip(postgres_url, monkeypatch):
    """JIT and parallel workers are off on the console's sessions; giving a connection back to the pool sends nothing
    (asyncpg's default reset query was one more round trip per pooled statement)."""
    log = h.StatementLog().install(monkeypatch)
    reader = await open_reader(postgres_url)
    try:
        await log.take()
        assert await reader.pool.fetchval("SHOW jit") == "off"
        assert await reader.pool.fetchval("SHOW max_parallel_workers_per_gather") == "0"
        wpool = await reader.writer._wpool()
        assert await wpool.fetchval("SHOW jit") == "off"
        # the write pool, once when it opens: is this a hot standby? (backends/postgres_topology.ensure_primary)
        assert await log.take() == ["SHOW jit", "SHOW max_parallel_workers_per_gather", "SELECT pg_is_in_recovery()",
                                    "SHOW jit"]
    finally:
        await reader.close()


# ------------------------------------------------------------------------------------ errors, safety
async def test_unreachable_and_bad_password_name_the_host_not_the_password(postgres_url):
    with pytest.raises(ConnectError) as err:
        await open_readers("postgresql://app:hunter2secret@127.0.0.1:1/jobs", ConnectOptions(connect_timeout=2))
    assert "127.0.0.1:1" in str(err.value) and "hunter2secret" not in str(err.value)
    bad = postgres_url.replace("postgres@", "nosuchrole:hunter3secret@", 1)
    with pytest.raises(ConnectError) as err:
        await open_readers(bad, ConnectOptions(connect_timeout=5))
    assert "hunter3secret" not in str(err.value) and "\n" not in str(err.value)


async def test_reader_sessions_are_read_only(world, postgres_url):
    _, schema, _ = world
    reader = await open_reader(postgres_url, schema=schema)
    try:
        async with reader.pool.acquire() as conn:
            assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
            assert await conn.fetchval("SHOW statement_timeout") not in ("0", "0ms")
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute(f"DELETE FROM {quote_ident(schema)}.job WHERE name = 'main'")
    finally:
        await reader.close()


def test_quote_ident():
    assert quote_ident("pgboss") == '"pgboss"'
    assert quote_ident('a"b') == '"a""b"'
    with pytest.raises(ValueError):
        quote_ident("a\x00b")


async def test_latency_p50_p95_from_the_most_recent_completed_jobs(world, postgres_url):
    """Wait = started_on - max(created_on, start_after), run = completed_on - started_on, over the
    most recent completed jobs; percentiles as statistics.quantiles(inclusive) gives them."""
    import statistics

    _, schema, _ = world
    waits, runs = [1, 2, 3, 4, 5], [10, 20, 30, 40, 50]
    async with h.admin(postgres_url) as conn:
        await h.create_queue(conn, schema, "lat")
        for w, r in zip(waits, runs):
            await h.add_job(conn, schema, "lat", "completed", created_s=-300, start_after_s=-300,
                            started_s=-300 + w, completed_s=-300 + w + r)
        # a retry waits from its start_after, not from its creation
        await h.add_job(conn, schema, "lat", "failed", created_s=-900, start_after_s=-200, started_s=-199,
                        completed_s=-100)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        await reader.statuses(disc.queues)
        by = {lat.queue.name: lat for lat in await reader.latency(disc.queues)}
    finally:
        await reader.close()
    lat = by["lat"]
    assert lat.sample_size == 5
    q = lambda xs, p: statistics.quantiles([x * 1000.0 for x in xs], n=100, method="inclusive")[p - 1]  # noqa: E731
    assert lat.wait_p50_ms == pytest.approx(q(waits, 50), abs=1) and lat.wait_p95_ms == pytest.approx(q(waits, 95), abs=1)
    assert lat.run_p50_ms == pytest.approx(q(runs, 50), abs=1) and lat.run_p95_ms == pytest.approx(q(runs, 95), abs=1)
    assert by["empty"].sample_size == 0 and by["empty"].wait_p50_ms is None


async def test_history_by_minute_from_finish_times(world, postgres_url, monkeypatch):
    """12.38 (index on name, completed_on): the whole minutes of the last hour, on the DB clock,
    at most HISTORY_ROWS finishes (labelled when cut); v10/v11 say there is no history."""
    major, schema, _ = world
    async with h.admin(postgres_url) as conn:
        await h.create_queue(conn, schema, "hist")
        for at in (-1800, -1800, -600):
            await h.add_job(conn, schema, "hist", "completed", started_s=at - 1, completed_s=at)
        await h.add_job(conn, schema, "hist", "failed", started_s=-301, completed_s=-300)
        await h.add_job(conn, schema, "hist", "completed", started_s=-7201, completed_s=-7200)  # over an hour ago
        db_now = await conn.fetchval("SELECT extract(epoch FROM now())::float8")
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        await reader.statuses(disc.queues)
        [hist] = await reader.history([q for q in disc.queues if q.name == "hist"])
        monkeypatch.setattr(pgreader, "HISTORY_ROWS", 2)
        [cut] = await reader.history([q for q in disc.queues if q.name == "hist"])
    finally:
        await reader.close()
    if major != "v12":
        assert hist.at_ms == [] and "no index on completed_on" in hist.unavailable
        return
    minute = lambda s: int((db_now + s) // 60)  # noqa: E731
    done = {at // 60_000 - 1: round(v * 60) for at, v in zip(hist.at_ms, hist.completed_per_s) if v}
    fail = {at // 60_000 - 1: round(v * 60) for at, v in zip(hist.at_ms, hist.failed_per_s) if v}
    assert done == {minute(-1800): 2, minute(-600): 1} and fail == {minute(-300): 1}
    assert hist.source == "finished" and hist.note is None
    # the two most recent finishes: the older of their minutes was read in part and is left out
    assert [at // 60_000 - 1 for at in cut.at_ms] == [minute(-300)] and "last 2 finishes" in cut.note


async def test_latency_leaves_out_rows_with_infinite_times(world, postgres_url):
    """PostgreSQL cannot subtract infinite timestamps: such a completed row is not in the sample,
    and the others are measured (found by tests/test_fuzz_readers.py)."""
    _, schema, _ = world
    async with h.admin(postgres_url) as conn:
        await h.create_queue(conn, schema, "inf")
        await h.add_job(conn, schema, "inf", "completed", created_s=-20, start_after_s=-20, started_s=-18, completed_s=-10)
        await conn.execute(f'''UPDATE "{schema}".job SET started_on = '-infinity' WHERE name = 'inf' ''')
        await h.add_job(conn, schema, "inf", "completed", created_s=-20, start_after_s=-20, started_s=-17, completed_s=-7)
    reader = await open_reader(postgres_url, schema=schema)
    try:
        disc = await reader.discover()
        await reader.statuses(disc.queues)
        [lat] = await reader.latency([q for q in disc.queues if q.name == "inf"])
    finally:
        await reader.close()
    assert lat.sample_size == 1 and lat.run_p50_ms == pytest.approx(10_000, abs=5)
