"""``queue-console demo --backend postgres``: the pg-boss 12.38 workload driven from Python.

1. The workload (pg-boss 12.38.0's own DDL and statements, console/pgboss_ddl/) runs for a few
   seconds in a schema of the test's own on the session database; the reader sees its queues,
   counts that move, and completed, failed (after retries, with dead-letter copies), delayed and
   cancelled jobs. The console opens on it.
2. Interop: jobs sent by the Python producer are taken by a real pg-boss 12.38.0 worker in Node
   (``fetch()`` + ``complete()``, and ``work()`` with a failure that retries into the dead-letter
   queue), and end as pg-boss leaves them, checked in SQL. The shipped statement file is byte for
   byte what pg-boss 12.38.0's plans generate (console/pgboss_ddl/generate.mjs --check).

Node is found and ``npm ci`` run by tests/interop/node_env.py (``require_node_dir``): without Node
the interop tests are skipped loudly ("INTEROP SKIPPED: ..."), and with ``CI`` set they fail.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from backends.pgboss.layout import quote_ident
from backends.registry import ConnectOptions, open_readers
from console import demo_pgboss as demo
from tests import pgboss_helpers as h
from tests.interop import node_env

ROOT = Path(__file__).resolve().parent.parent
PGBOSS_DIR = ROOT / "tests" / "interop" / "pgboss"
PINNED = {"pgboss10": "10.4.2", "pgboss11": "11.1.2", "pgboss12": "12.38.0"}
QUEUES = ["emails", "emails_dlq", "payments", "reports", "thumbnails", "webhooks", "webhooks_dlq"]


@pytest.fixture
def schema(postgres_url):
    name = h.new_schema("demo")
    yield name
    asyncio.run(h.drop(postgres_url, name))


def _start(url: str, schema: str, **kw) -> demo.PgBossWorkload:
    workload = demo.PgBossWorkload(url, schema=schema, **kw)
    try:
        workload.start(wait_s=30)
    except BaseException:
        workload.stop()
        raise
    return workload


async def _statuses(url: str, schema: str) -> dict:
    reader = (await open_readers(url, ConnectOptions(schema=schema)))[0]
    try:
        disc = await reader.discover()
        return {s.queue.name: s for s in await reader.statuses(disc.queues)}
    finally:
        await reader.close()


def test_statement_file_holds_every_statement():
    sql = demo.statements("some_schema")
    origins = demo.statement_origins()
    for name in demo.demo_queues():
        assert f"createQueue {name}" in sql and f"insertJobs {name}" in sql
    for key in ("create", "completeJobs", "failJobsById", "cancelJobs", "fetchNextJob emails"):
        assert key in sql
    assert all(demo.PLACEHOLDER not in text for text in sql.values())
    assert "INSERT INTO some_schema.version(version) VALUES ('46')" in sql["create"]
    assert origins["failJobsById"].startswith("plans.failJobsById(")
    assert origins["fetchNextJob emails"].startswith("plans.fetchNextJob(")
    for bad in ("PgBoss", "x;drop", "1abc", "a-b", ""):
        with pytest.raises(ValueError):
            demo.statements(bad)


PARTITION_DAY = re.compile(r"queue_stats_(\d{8})")

CATALOG_SQL = """
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
       || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
UNION ALL
SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(co.oid) FROM pg_constraint co
JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = $1
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $1
UNION ALL
SELECT 'enum ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1
"""


async def test_shipped_ddl_builds_what_pgboss_installs(postgres_url):
    """The shipped install script gives the same tables, columns, defaults, indexes, constraints,
    functions and enum as the dump of a fresh install made by pg-boss 12.38.0 (tests/pgboss_ddl)."""
    ours, theirs = h.new_schema("ddl"), h.new_schema("dump")
    try:
        async with h.admin(postgres_url) as conn:
            await conn.execute(demo.statements(ours)["create"])
        await h.install(postgres_url, "v12", theirs)

        async def catalog(name: str) -> set[str]:
            async with h.admin(postgres_url) as conn:
                rows = await conn.fetch(CATALOG_SQL, name)
            return [re.sub(r"\s+", " ", r[0].replace(name, "S")) for r in rows]

        def undated(lines: list[str]) -> set[str]:
            # pg-boss creates queue_stats partitions for the day it installs and the next one
            # (queue_stats_YYYYMMDD): the dump was made on another day than this test runs
            return {PARTITION_DAY.sub("queue_stats_<day>", line) for line in lines}

        got, want = await catalog(ours), await catalog(theirs)
        assert len(want) > 200
        assert undated(got) == undated(want)
        # the same partitions, one per day for as many days, whatever the dates
        assert len(set(PARTITION_DAY.findall(" ".join(got)))) == len(set(PARTITION_DAY.findall(" ".join(want)))) == 2
    finally:
        await h.drop(postgres_url, ours)
        await h.drop(postgres_url, theirs)


async def test_workload_moves_and_makes_every_state(postgres_url, schema):
    workload = _start(postgres_url, schema, speed=4.0, poll_s=0.2)
    try:
        first = await _statuses(postgres_url, schema)
        assert sorted(first) == QUEUES
        deadline = time.monotonic() + 30
        while True:
            await asyncio.sleep(1.0)
            st = await _statuses(postgres_url, schema)
            total = lambda key: sum((s.counts.get(key) or 0) for s in st.values())  # noqa: E731
            ok = (total("completed") > 20 and st["webhooks"].counts["failed"] > 0
                  and st["webhooks_dlq"].counts["waiting"] > 0 and total("delayed") > 0
                  and total("cancelled") > 0)
            if ok or time.monotonic() > deadline:
                break
        assert workload.error is None
        assert ok, {n: s.counts for n, s in st.items()}
        # counts move between two looks
        assert total("completed") > sum((s.counts.get("completed") or 0) for s in first.values())
        assert st["reports"].counts["delayed"] > 0  # startAfter
        assert st["emails_dlq"].info.get("dead letter of") == "emails"
        assert st["webhooks"].info.get("dead letter queue") == "webhooks_dlq"
    finally:
        workload.stop()
    assert workload.counts.get("completed", 0) > 0 and workload.counts.get("cancelled", 0) > 0

    # the rows are what pg-boss's own statements leave behind
    s = quote_ident(schema)
    async with h.admin(postgres_url) as conn:
        failed = await conn.fetch(f"SELECT id, retry_count, retry_limit, output, completed_on FROM {s}.job "
                                  "WHERE name = 'webhooks' AND state = 'failed'")
        assert failed and all(r["retry_count"] == r["retry_limit"] == 1 and r["completed_on"] for r in failed)
        assert all("HTTP 502" in json.loads(r["output"])["message"] for r in failed)
        copies = await conn.fetch(f"SELECT source_name, source_id, source_output FROM {s}.job WHERE name = 'webhooks_dlq'")
        assert {r["source_id"] for r in copies} == {r["id"] for r in failed}
        assert {r["source_name"] for r in copies} == {"webhooks"}
        # a retried email: back as 'retry' after the delay, or claimed again with retry_count > 0
        retried = await conn.fetchval(f"SELECT count(*) FROM {s}.job WHERE name = 'emails' AND "
                                      "(state = 'retry' OR retry_count > 0)")
        assert retried > 0
        singles = await conn.fetchval(f"SELECT count(DISTINCT singleton_key) FROM {s}.job WHERE name = 'payments'")
        assert singles > 1
        priorities = await conn.fetchval(f"SELECT count(DISTINCT priority) FROM {s}.job WHERE name = 'reports'")
        assert priorities > 1
        cancelled = await conn.fetchval(f"SELECT count(*) FROM {s}.job WHERE state = 'cancelled' AND completed_on IS NOT NULL")
        assert cancelled > 0
        version = await conn.fetchval(f"SELECT version FROM {s}.version")
        assert version == demo.SCHEMA_VERSION


async def test_console_opens_on_the_workload(postgres_url, schema):
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings

    workload = _start(postgres_url, schema, speed=2.0)
    try:
        app = QueueConsoleApp(Settings(urls=[postgres_url], schema=schema, refresh=0.5))
        async with app.run_test(size=(160, 45)) as pilot:
            table = app.screen.query_one(DataTable)
            deadline = time.monotonic() + 20
            while table.row_count < len(QUEUES) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            names = sorted(str(table.get_row_at(i)[0]) for i in range(table.row_count))
            assert names == QUEUES
    finally:
        workload.stop()


# ---------------------------------------------------------------------------------- interop (Node)
NODE_WORKER = r"""
import path from 'node:path'
import { createRequire } from 'node:module'
const cfg = JSON.parse(process.env.QC_DEMO_ARGS)
const require = createRequire(path.join(cfg.dir, 'package.json'))
const pkg = require(path.join(cfg.dir, 'node_modules', 'pgboss12', 'package.json'))
const mod = await import(path.join(cfg.dir, 'node_modules', 'pgboss12', pkg.main))
const PgBoss = mod.PgBoss || mod.default || mod
function connection (raw) {
  const u = new URL(raw.replace(/@\//, '@localhost/'))
  const c = { database: decodeURIComponent(u.pathname.slice(1)) || 'postgres', user: decodeURIComponent(u.username) || 'postgres' }
  if (u.password) c.password = decodeURIComponent(u.password)
  c.host = u.searchParams.get('host') || u.hostname
  if (u.port) c.port = Number(u.port)
  return c
}
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const boss = new PgBoss({ ...connection(cfg.url), schema: cfg.schema, supervise: false, schedule: false, max: 3 })
boss.on('error', err => console.error('pg-boss error', err))
await boss.start()
const out = { version: pkg.version, fetched: [], settled: {} }
// fetch() + complete(): the N jobs the Python producer sent
for (let i = 0; i < cfg.n; i++) {
  const [job] = await boss.fetch('emails')
  if (!job) throw new Error(`fetch ${i}: nothing to fetch`)
  out.fetched.push(job.id)
  await boss.complete('emails', [job], { by: `pg-boss ${pkg.version}` })
}
// work(): one webhook succeeds, one throws until it is failed into webhooks_dlq
await boss.work('webhooks', { pollingIntervalSeconds: 0.5 }, async ([job]) => {
  if (job.data.fail) throw new Error(`node worker refused ${job.data.url}`)
  return { status: 204 }
})
const deadline = Date.now() + 20000
for (;;) {
  const jobs = await Promise.all(cfg.webhooks.map(id => boss.getJobById('webhooks', id)))
  if (jobs.every(j => j && ['completed', 'failed'].includes(j.state))) {
    for (const j of jobs) out.settled[j.id] = j.state
    break
  }
  if (Date.now() > deadline) throw new Error('work() did not settle the webhooks: ' + JSON.stringify(jobs.map(j => j && j.state)))
  await sleep(200)
}
process.stdout.write(JSON.stringify(out) + '\n')
await boss.stop({ graceful: false, wait: true, close: true })
process.exit(0)
"""


@pytest.mark.interop
def test_shipped_statements_are_what_pgboss_generates():
    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    done = subprocess.run([env.node, str(ROOT / "console" / "pgboss_ddl" / "generate.mjs"), "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout


@pytest.mark.interop
async def test_pgboss_node_worker_processes_demo_jobs(postgres_url, schema):
    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    # the demo workload runs for a moment, then its workers (and producers) stop
    workload = _start(postgres_url, schema, speed=2.0)
    await asyncio.sleep(1.5)
    workload.stop()
    assert workload.error is None and workload.counts.get("sent", 0) > 0

    # the Python producer sends more, with nobody in Python left to work them
    import asyncpg

    pool = await asyncpg.create_pool(postgres_url, min_size=1, max_size=2)
    try:
        boss = demo.PgBoss(pool, schema)
        n = 5
        ids = [await boss.send("emails", {"to": f"node{i}@example.com", "i": i}, priority=1000 - i) for i in range(n)]
        delayed = await boss.send("emails", {"later": True}, priority=5000, start_after=3600)
        ok_hook = await boss.send("webhooks", {"url": "https://ok.example.invalid"}, singleton_key="node-ok")
        bad_hook = await boss.send("webhooks", {"url": "https://bad.example.invalid", "fail": True},
                                   singleton_key="node-bad")
        assert all(ids) and delayed and ok_hook and bad_hook
    finally:
        await pool.close()

    cfg = {"dir": str(PGBOSS_DIR), "url": postgres_url, "schema": schema, "n": n, "webhooks": [ok_hook, bad_hook]}
    done = subprocess.run([env.node, "--input-type=module", "-e", NODE_WORKER], cwd=PGBOSS_DIR,
                          env={**os.environ, "QC_DEMO_ARGS": json.dumps(cfg)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"node worker failed ({done.returncode}):\n{done.stderr[-4000:]}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["version"] == "12.38.0"
    # priority order, as pg-boss's fetch takes them; the delayed one (priority 5000) is not due yet
    assert out["fetched"] == ids
    assert out["settled"] == {ok_hook: "completed", bad_hook: "failed"}

    s = quote_ident(schema)
    async with h.admin(postgres_url) as conn:
        rows = await conn.fetch(f"SELECT id::text, state::text, output, retry_count, completed_on FROM {s}.job "
                                "WHERE name = 'emails' AND id = ANY($1::uuid[])", ids)
        assert len(rows) == n
        for r in rows:
            assert r["state"] == "completed" and r["completed_on"] is not None and r["retry_count"] == 0
            assert json.loads(r["output"]) == {"by": "pg-boss 12.38.0"}
        assert await conn.fetchval(f"SELECT state::text FROM {s}.job WHERE id = $1::uuid", delayed) == "created"
        bad = await conn.fetchrow(f"SELECT state::text, retry_count, retry_limit, output FROM {s}.job "
                                  "WHERE name = 'webhooks' AND id = $1::uuid", bad_hook)
        assert (bad["state"], bad["retry_count"], bad["retry_limit"]) == ("failed", 1, 1)
        assert "node worker refused" in json.loads(bad["output"])["message"]
        copy = await conn.fetchval(f"SELECT count(*) FROM {s}.job WHERE name = 'webhooks_dlq' AND source_id = $1::uuid",
                                   bad_hook)
        assert copy == 1
