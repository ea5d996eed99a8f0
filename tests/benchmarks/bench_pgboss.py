"""pg-boss at production scale: queue-console's pg-boss reader and actions side by side with pg-boss
for Node's own calls (the versions pinned in tests/interop/pgboss/package-lock.json), in one run.

    python -m tests.benchmarks.bench_pgboss --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

The script creates a database of its own on that server (``qc_bench_<random>``), has pg-boss for
Node install its schemas there (pg-boss 12.38.0 and 10.4.2, their own migrations), create 100 queues
per schema and insert 2,000,000 jobs with pg-boss's own ``insert``; one UPDATE per schema then settles
most of them the way pg-boss's complete/fail/fetch statements leave rows (completed, failed, active,
deferred), and pg-boss's own ``supervise()`` fills the cached counts that ``getQueueStats`` serves.
Two more pairs of queues hold 100,000 failed jobs each for bulk retry and bulk purge. Before timing,
the reader's counts are checked against getQueueStats. The database is dropped at the end.

Every scenario runs several rounds, alternating which side goes first. Statements are counted with
an asyncpg query logger on every connection the console opens (client-side time of each statement,
round trip included). The pg-boss section of docs/performance.md is rewritten (only that section).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
NODE_JS = Path(__file__).with_name("pgboss_node.mjs")
DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- pg-boss section: written by tests/benchmarks/bench_pgboss.py; edit only outside it -->"
END = "<!-- end of the pg-boss section -->"
COMMAND = "python -m tests.benchmarks.bench_pgboss --postgres-url postgresql://postgres@127.0.0.1:5432/postgres"

QUEUES = 100
PER_QUEUE = 20_000
BULK = 100_000
PGBOSS_CHUNK = 1000


# ----------------------------------------------------------------------------------------- helpers
class StatementLog:
    """Every statement the console's connections run (asyncpg query logger): client-side ms + text."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str]] = []
        self.on = False

    def __call__(self, record) -> None:
        if self.on:
            self.items.append((record.elapsed * 1000, " ".join(str(record.query).split())))

    def start(self) -> None:
        self.items, self.on = [], True

    async def stop(self) -> list[tuple[float, str]]:
        await asyncio.sleep(0)  # loggers are called with call_soon
        await asyncio.sleep(0)
        self.on = False
        return list(self.items)


LOG = StatementLog()


def instrument_asyncpg() -> None:
    orig = asyncpg.create_pool

    def create_pool(*args, **kwargs):
        user_init = kwargs.get("init")

        async def init(conn):
            conn.add_query_logger(LOG)
            if user_init is not None:
                await user_init(conn)

        kwargs["init"] = init
        return orig(*args, **kwargs)

    asyncpg.create_pool = create_pool


class Node:
    """One pg-boss for Node process (tests/benchmarks/pgboss_node.mjs)."""

    def __init__(self, url: str, lib: str, schema: str) -> None:
        self.args = ["node", str(NODE_JS), url, lib, schema]
        self.proc: asyncio.subprocess.Process | None = None
        self.version = "?"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, limit=64 << 20)
        self.version = (await self._line(120))["version"]

    async def _line(self, timeout: float) -> dict:
        assert self.proc and self.proc.stdout
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"pg-boss child {self.args[3]} ended")
        return json.loads(line)

    async def call(self, timeout: float = 900, **cmd) -> dict:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        out = await self._line(timeout)
        if not out.get("ok"):
            raise RuntimeError(f"pg-boss {cmd['op']}: {out.get('error')}")
        return out

    async def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(b'{"op": "stop"}\n')  # type: ignore[union-attr]
            await asyncio.wait_for(self.proc.wait(), 30)
        except Exception:
            self.proc.kill()
            await self.proc.wait()


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_ms(x: float | None) -> str:
    if x is None or x != x:
        return "—"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def ratio(ours: float, theirs: float) -> str:
    """theirs / ours: above 1 means the console is faster."""
    if not ours or not theirs or ours != ours or theirs != theirs:
        return "—"
    return f"{theirs / ours:.2f}x"


@dataclass
class Row:
    scenario: str
    console_call: str
    console_ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    pgboss_call: str = "—"
    pgboss_ms: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, ms: float, stmts: list[tuple[float, str]]) -> None:
        self.console_ms.append(ms)
        self.statements.append(len(stmts))
        if stmts:
            self.slowest.append(max(stmts))

    def slowest_stmt(self) -> tuple[float, str]:
        return max(self.slowest) if self.slowest else (0.0, "")


async def timed_console(row: Row, coro_fn) -> Any:
    LOG.start()
    t = time.perf_counter()
    out = await coro_fn()
    ms = (time.perf_counter() - t) * 1000
    row.add(ms, await LOG.stop())
    return out


# ----------------------------------------------------------------------------------------- data
def settle_sql(schema: str) -> str:
    """Rows as pg-boss's own statements leave them: 85 % completed (output, completed_on in the last
    hour), 5 % failed (error output), 2 % active, 2 % deferred, the rest ready (created)."""
    s = f'"{schema}"'
    return f"""
    UPDATE {s}.job SET
      state = (CASE WHEN k < 85 THEN 'completed' WHEN k < 90 THEN 'failed' ELSE 'active' END)::{s}.job_state,
      started_on = now() - make_interval(secs => 3600 - (k * 37 % 3600)) - interval '2 seconds',
      completed_on = CASE WHEN k < 90 THEN now() - make_interval(secs => 3600 - ((i * 7919) % 3600)) END,
      output = CASE WHEN k < 85 THEN '{{"ok": true}}'::jsonb
                    WHEN k < 90 THEN jsonb_build_object('message', 'boom ' || (i % 13), 'stack', 'Error: boom')
               END
    FROM (SELECT id AS jid, name AS jname, (data->>'i')::int AS i, ((data->>'i')::int % 100) AS k
          FROM {s}.job WHERE name LIKE 'q%') x
    WHERE job.name = x.jname AND job.id = x.jid AND x.k < 92;
    UPDATE {s}.job SET start_after = now() + interval '1 day'
    WHERE name LIKE 'q%' AND state = 'created' AND ((data->>'i')::int % 100) < 94
    """


def failed_sql(schema: str, names: list[str]) -> str:
    s = f'"{schema}"'
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"""
    UPDATE {s}.job SET state = 'failed', started_on = now() - interval '2 minutes',
      completed_on = now() - make_interval(secs => 60 + (data->>'i')::int % 600), retry_count = 0,
      output = jsonb_build_object('message', 'bulk failure ' || ((data->>'i')::int % 7))
    WHERE name IN ({quoted})
    """


async def build(url: str, db_url: str, only: set[str], out: dict) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    names = [f"q{i:03d}" for i in range(QUEUES)]
    bulk_names = ["retry_console", "retry_pgboss", "purge_console", "purge_pgboss"]
    need12 = only & {"refresh", "page", "retry", "purge"}
    need10 = only & {"throughput"}
    conn = await asyncpg.connect(db_url)
    try:
        for lib, schema, want, extra in (("pgboss12", "pgb12", need12, bulk_names), ("pgboss10", "pgb10", need10, [])):
            if not want:
                continue
            t = time.perf_counter()
            node = Node(db_url, lib, schema)
            await node.start()
            nodes[schema] = node
            want_main = bool(want & {"refresh", "page", "throughput"})
            qs = (names if want_main else []) + [b for b in extra if b.split("_")[0] in want]
            await node.call(op="queues", names=qs)
            for q in qs:
                await node.call(op="insert", name=q, n=BULK if q in extra else PER_QUEUE, chunk=5000)
            inserted = time.perf_counter() - t
            if want_main:
                await conn.execute(settle_sql(schema))
            if extra:
                await conn.execute(failed_sql(schema, [b for b in extra if b in qs]))
                await conn.execute(f'CREATE TABLE "{schema}".qcbench_stash AS SELECT * FROM "{schema}".job '
                                   "WHERE name IN ('purge_console', 'purge_pgboss')")
            await conn.execute(f'VACUUM ANALYZE "{schema}".job')
            await conn.execute(f"VACUUM ANALYZE \"{schema}\".queue")
            rows = await conn.fetchval(f'SELECT count(*) FROM "{schema}".job')
            size = await conn.fetchval(f"SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                                       f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 "
                                       f"AND c.relkind = 'r'", schema)
            out[schema] = {"lib": lib, "version": node.version, "rows": rows, "queues": len(qs), "size": size,
                           "insert_s": inserted, "build_s": time.perf_counter() - t}
            print(f"built {schema}: {rows:,} rows, {size}, {time.perf_counter() - t:.0f} s", flush=True)
    finally:
        await conn.close()
    return nodes


# ----------------------------------------------------------------------------------------- scenarios
async def open_reader(db_url: str, schema: str):
    from backends.registry import ConnectOptions, open_readers

    readers = await open_readers(db_url, ConnectOptions(schema=schema, op_timeout=30.0))
    return readers[0]


async def check_counts(reader, node: Node, queues, out: list) -> None:
    """The reader's counts against getQueueStats on every queue (after a fresh supervise())."""
    stats = (await node.call(op="stats", names=[q.name for q in queues]))["stats"]
    statuses = {s.queue.name: s for s in await reader.statuses(queues)}
    bad = []
    for q in queues:
        st, pb = statuses[q.name], stats[q.name]
        c = st.counts
        mine = {"readyCount": c.get("waiting"), "deferredCount": c.get("delayed"), "activeCount": c.get("active"),
                "failedCount": c.get("failed")}
        theirs = {k: pb[k] for k in mine}
        if mine != theirs:
            bad.append((q.name, mine, theirs))
    s0 = statuses[queues[0].name]
    out.append(("reader counts == getQueueStats (ready, deferred, active, failed) on all "
                f"{len(queues)} queues", not bad,
                json.dumps(bad[:2]) if bad else f"{queues[0].name}: {json.dumps(s0.counts)}; "
                f"labelled: {', '.join(f'{k}: {v}' for k, v in s0.info.items() if 'count' in k)}"))


async def scenario_refresh(db_url: str, node: Node, rounds: int, rows: list[Row], checks: list) -> None:
    reader = await open_reader(db_url, "pgb12")
    try:
        await node.call(op="supervise")
        disc = await reader.discover()
        queues = [q for q in disc.queues if q.name.startswith("q")]
        names = [q.name for q in queues]
        await check_counts(reader, node, queues, checks)
        row = Row("v12, 100 queues / 2M rows", f"`reader.statuses(all {len(queues)})`",
                  pgboss_call=f"`getQueueStats(name)` on each of {len(queues)} queues in turn")
        for r in range(rounds):
            for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                if side == 0:
                    await timed_console(row, lambda: reader.statuses(queues))
                else:
                    row.pgboss_ms.append((await node.call(op="stats", names=names))["ms"])
        rows.append(row)
        # no pg-boss monitor running (counters older than 120 s): the reader counts live, in chunks
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute("UPDATE pgb12.queue SET monitor_on = monitor_on - interval '10 minutes' "
                               "WHERE name LIKE 'q%'")
            stale = Row("v12, counters stale (no pg-boss monitor for 10 min)", f"`reader.statuses(all {len(queues)})` "
                        "(live counts through job_i14)", note="no pg-boss call compared: getQueueStats serves "
                        "its cache for 1 h")
            for _ in range(rounds):
                await timed_console(stale, lambda: reader.statuses(queues))
            rows.append(stale)
            await conn.execute("UPDATE pgb12.queue SET monitor_on = monitor_on + interval '10 minutes' "
                               "WHERE name LIKE 'q%'")
        finally:
            await conn.close()
        # a new session: the first refresh on a connection of its own (JIT, plan cache, catalog cache)
        first = Row("v12, first refresh on a new connection", "open reader + `discover()` + `statuses(all)`",
                    note="no pg-boss call compared")
        for _ in range(max(2, rounds // 3)):
            async def fresh():
                rd = await open_reader(db_url, "pgb12")
                try:
                    d = await rd.discover()
                    await rd.statuses([q for q in d.queues if q.name.startswith("q")])
                finally:
                    await rd.close()
            await timed_console(first, fresh)
        rows.append(first)
    finally:
        await reader.close()


async def scenario_page(db_url: str, rounds: int, rows: list[Row]) -> None:
    reader = await open_reader(db_url, "pgb12")
    try:
        disc = await reader.discover()
        q = next(q for q in disc.queues if q.name == "q000")
        await reader.statuses([q])  # what the TUI has before it opens a list
        for state in ("completed", "failed", "waiting"):
            first = Row(f"v12, page of 50 `{state}` (q000: 20,000 jobs in a 2M-row table)",
                        f"`reader.page(q000, '{state}', None, 50)` (first page, reloaded every tick)")
            nxt = Row(f"v12, next page of `{state}`", f"`reader.page(q000, '{state}', cursor, 50)`")
            for _ in range(rounds):
                page = await timed_console(first, lambda: reader.page(q, state, None, 50))
                if page.next_cursor:
                    await timed_console(nxt, lambda: reader.page(q, state, page.next_cursor, 50))
            first.note = f"total {page.total}"
            rows += [first, nxt] if nxt.console_ms else [first]
    finally:
        await reader.close()


async def scenario_throughput(db_url: str, node: Node, rounds: int, rows: list[Row], checks: list) -> None:
    reader = await open_reader(db_url, "pgb10")
    try:
        disc = await reader.discover()
        queues = [q for q in disc.queues if q.name.startswith("q")]
        names = [q.name for q in queues]
        sizes = (await node.call(op="stats", names=names))["stats"]
        statuses = {s.queue.name: s for s in await reader.statuses(queues)}
        bad = [n for n in names if statuses[n].counts["waiting"] + statuses[n].counts["delayed"]
               != sizes[n]["queuedCount"]]
        s0 = statuses[names[0]]
        checks.append((f"v10: reader waiting + delayed == getQueueSize() on all {len(names)} queues", not bad,
                       json.dumps(bad[:3]) if bad else f"{names[0]}: {json.dumps(s0.counts)}; "
                       f"labelled: {s0.info.get('counting', '')} / throughput {s0.info.get('throughput', '')}"))
        await reader.throughput(queues)  # the baseline sample
        row = Row("v10, 100 queues / 2M rows: a poll tick with throughput",
                  "`statuses(all)` + `throughput(all)`",
                  pgboss_call=f"`getQueueSize(name)` on each of {len(queues)} queues in turn (v10 has no getQueueStats)")
        tp = Row("v10: the throughput call alone", "`reader.throughput(all)`")
        for r in range(rounds):
            for side in ((0, 1) if r % 2 == 0 else (1, 0)):
                if side == 0:
                    reader._tp_at.clear()  # a sample is due (the reader samples at most every 5 s)

                    async def tick():
                        await reader.statuses(queues)
                        LOG.items.append((0.0, "-- throughput --"))
                        return await reader.throughput(queues)

                    await timed_console(row, tick)
                    reader._tp_at.clear()
                    await timed_console(tp, lambda: reader.throughput(queues))
                else:
                    row.pgboss_ms.append((await node.call(op="stats", names=names))["ms"])
        rows += [row, tp]
    finally:
        await reader.close()


@dataclass
class BulkRun:
    who: str
    seconds: float
    jobs: int
    calls: list[float]
    statements: int = 0
    slowest_stmt: tuple[float, str] = (0.0, "")
    check: str = ""


async def _bulk_ids(conn, schema: str, name: str) -> list[str]:
    rows = await conn.fetch(f'SELECT id::text FROM "{schema}".job WHERE name = $1 AND state = \'failed\' ORDER BY id',
                            name)
    return [r[0] for r in rows]


async def scenario_bulk(db_url: str, node: Node, action: str, rounds: int, runs: list[BulkRun]) -> None:
    from backends.contract import QueueRef
    from console.actions import Actions, Selection

    schema = "pgb12"
    mine, theirs = f"{action}_console", f"{action}_pgboss"
    reader = await open_reader(db_url, schema)
    conn = await asyncpg.connect(db_url)
    try:
        disc = await reader.discover()
        queue: QueueRef = next(q for q in disc.queues if q.name == mine)
        actions = Actions(lambda q: reader, timeout=60.0)
        calls: list[float] = []
        real = reader.retry_batch if action == "retry" else reader.purge_batch

        async def wrapped(*a, **kw):
            t = time.perf_counter()
            try:
                return await real(*a, **kw)
            finally:
                calls.append((time.perf_counter() - t) * 1000)

        setattr(reader, "retry_batch" if action == "retry" else "purge_batch", wrapped)

        async def reset() -> None:
            if action == "retry":
                await conn.execute(failed_sql(schema, [mine, theirs]))
            else:
                await conn.execute(f'DELETE FROM "{schema}".job WHERE name IN ($1, $2)', mine, theirs)
                await conn.execute(f'INSERT INTO "{schema}".job SELECT * FROM "{schema}".qcbench_stash')
            await conn.execute(f'VACUUM ANALYZE "{schema}".job_common')

        async def check(name: str) -> str:
            left = await conn.fetchval(f'SELECT count(*) FROM "{schema}".job WHERE name = $1 AND state = \'failed\'',
                                       name)
            if action == "retry":
                moved = await conn.fetchval(f'SELECT count(*) FROM "{schema}".job WHERE name = $1 AND state = \'retry\'',
                                            name)
                return f"{moved:,} in retry, {left:,} failed"
            total = await conn.fetchval(f'SELECT count(*) FROM "{schema}".job WHERE name = $1', name)
            return f"{total:,} left"

        for r in range(rounds):
            await reset()
            # pg-boss's caller needs the ids; reading them also brings the rows into cache, so the
            # console's set is read the same way first: both sides start from the same cache state
            ids_theirs = await _bulk_ids(conn, schema, theirs)
            await _bulk_ids(conn, schema, mine)
            for side in (("console", "pgboss") if r % 2 == 0 else ("pgboss", "console")):
                if side == "console":
                    calls.clear()
                    LOG.start()
                    t = time.perf_counter()
                    preview = await actions.preview(action, Selection(queue=queue, state="failed"))
                    previewed = time.perf_counter() - t
                    report = await actions.execute(preview)
                    secs = time.perf_counter() - t
                    stmts = await LOG.stop()
                    assert report.error is None, report.error
                    runs.append(BulkRun(f"console `Actions.preview` + `execute` (`{action} --all`)", secs, report.done,
                                        list(calls), len(stmts), max(stmts) if stmts else (0.0, ""),
                                        f"{await check(mine)}; preview {previewed * 1000:.0f} ms"))
                else:
                    ids = ids_theirs
                    res = await node.call(op="retry" if action == "retry" else "delete", name=theirs, ids=ids,
                                          chunk=PGBOSS_CHUNK)
                    call = "retry" if action == "retry" else "deleteJob"
                    runs.append(BulkRun(f"pg-boss `{call}(name, ids)` in chunks of {PGBOSS_CHUNK:,}", res["ms"] / 1000,
                                        len(ids), res["calls"], len(res["calls"]), (0.0, ""), await check(theirs)))
    finally:
        await conn.close()
        await reader.close()


# ----------------------------------------------------------------------------------------- report
def machine() -> dict:
    info = {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["ram"] = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return info


def render(meta: dict, checks: list, rows: list[Row], bulk: dict[str, list[BulkRun]]) -> str:
    m = meta["machine"]
    lines = [BEGIN, "", "## pg-boss", "",
             "queue-console's pg-boss reader and bulk actions against pg-boss for Node's own calls, in the same run, "
             "on one PostgreSQL. Method: a database of the benchmark's own; pg-boss for Node installs its schemas "
             "(its own migrations), creates the queues and inserts every job with its own `insert`; one UPDATE per "
             "schema settles most jobs as pg-boss's complete/fail/fetch statements leave them (85 % completed, 5 % "
             "failed, 2 % active, 2 % deferred, 6 % ready); pg-boss's `supervise()` fills the cached counts. "
             "Each scenario runs several rounds, alternating which side goes first; times are medians of the whole "
             "call as each client sees it (pg-boss's timed inside its Node process). *Statements* counts what the "
             "console's connections sent per call (an asyncpg query logger, BEGIN/COMMIT and pool resets included); "
             "the slowest statement is its client-side time, round trip included. Ratio = pg-boss ms / console ms "
             "(above 1: the console is faster). No test asserts on these times.", "",
             f"- Date: {meta['date']}; command: `{COMMAND}`" + (f" (this run: `{meta['argv']}`)" if meta['argv'] else ""),
             f"- Server: PostgreSQL {meta['server_version']} on 127.0.0.1 (the machine's shared server; other "
             "programs used it meanwhile); database created and dropped by the run",
             f"- Machine: {m['nproc']} CPUs, {m.get('ram', '?')} RAM, {m['platform']}; Python {m['python']}, "
             f"asyncpg {meta['asyncpg']}, Node {meta['node']}",
             ]
    for schema, d in meta["data"].items():
        lines.append(f"- `{schema}`: pg-boss {d['version']}, {d['queues']} queues, {d['rows']:,} rows ({d['size']}), "
                     f"inserted by pg-boss in {d['insert_s']:.0f} s, built in {d['build_s']:.0f} s")
    lines.append(f"- Rounds: {meta['rounds']}; load average (1 min) {meta['load_start']:.2f} at the start, "
                 f"{meta['load_end']:.2f} at the end; whole run {meta['minutes']:.1f} min")
    lines += ["", "### Layout check", "", "| check | equal | detail |", "|---|---|---|"]
    for what, ok, detail in checks:
        lines.append(f"| {what} | {'yes' if ok else '**no**'} | {detail[:300].replace('|', '/')} |")
    lines += ["", "### Reads", "",
              "| scenario | queue-console | median ms | statements per call | slowest statement ms | "
              "pg-boss for Node | median ms | ratio |", "|---|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        slow_ms, slow_sql = r.slowest_stmt()
        lines.append(f"| {r.scenario} | {r.console_call}{' (' + r.note + ')' if r.note else ''} | {fmt_ms(med(r.console_ms))} | "
                     f"{med(r.statements):.0f} | {fmt_ms(slow_ms)} | {r.pgboss_call} | {fmt_ms(med(r.pgboss_ms))} | "
                     f"{ratio(med(r.console_ms), med(r.pgboss_ms))} |")
    slow = [(r.slowest_stmt(), r.scenario) for r in rows if r.slowest]
    if slow:
        (ms, sql), scen = max(slow)
        lines += ["", f"Slowest single statement of the reads: {fmt_ms(ms)} ms ({scen}): `{sql[:160]}`"]
    for action, runs in bulk.items():
        if not runs:
            continue
        lines += ["", f"### Bulk {action} of {BULK:,} failed jobs", "",
                  "| who | jobs | total s (median) | rounds s | calls | median call ms | slowest call ms | "
                  "calls over 50 ms | statements | slowest statement ms | check (last round) |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
        by_who: dict[str, list[BulkRun]] = {}
        for run in runs:
            by_who.setdefault(run.who, []).append(run)
        meds = {}
        for who, rs in by_who.items():
            secs = [x.seconds for x in rs]
            meds[who] = med(secs)
            allcalls = [c for x in rs for c in x.calls]
            slow_stmt = max(x.slowest_stmt for x in rs)
            lines.append(f"| {who} | {rs[-1].jobs:,} | {med(secs):.2f} | {', '.join(f'{s:.2f}' for s in secs)} | "
                         f"{len(rs[-1].calls)} | {fmt_ms(med(allcalls))} | {fmt_ms(max(allcalls) if allcalls else None)} | "
                         f"{sum(1 for c in allcalls if c > 50)} | "
                         f"{rs[-1].statements if rs[-1].statements else '—'} | "
                         f"{fmt_ms(slow_stmt[0]) if slow_stmt[1] else '—'} | {rs[-1].check} |")
        whos = list(meds)
        console = next((w for w in whos if w.startswith("console")), None)
        other = next((w for w in whos if w.startswith("pg-boss")), None)
        if console and other:
            lines += ["", f"Ratio (pg-boss s / console s): **{meds[other] / meds[console]:.2f}x**."]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_doc(section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the section between ``begin`` and ``end`` (or append it), keeping the rest."""
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


# ----------------------------------------------------------------------------------------- main
async def main(argv: list[str]) -> None:
    global QUEUES, PER_QUEUE, BULK
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres-url", required=True)
    ap.add_argument("--only", action="append", choices=["refresh", "page", "throughput", "retry", "purge"])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--bulk-rounds", type=int, default=3)
    ap.add_argument("--per-queue", type=int, default=PER_QUEUE, help="jobs per queue (100 queues)")
    ap.add_argument("--bulk", type=int, default=BULK, help="failed jobs per bulk set")
    ap.add_argument("--database", help="reuse this database (not dropped); default: a new qc_bench_<random>")
    ap.add_argument("--no-doc", action="store_true", help="print the section instead of writing docs/performance.md")
    args = ap.parse_args(argv)
    PER_QUEUE, BULK = args.per_queue, args.bulk
    only = set(args.only or ["refresh", "page", "throughput", "retry", "purge"])
    instrument_asyncpg()
    started = time.time()
    load_start = os.getloadavg()[0]
    admin = await asyncpg.connect(args.postgres_url)
    db = args.database or f"qc_bench_{uuid.uuid4().hex[:8]}"
    created = False
    if not args.database:
        await admin.execute(f'CREATE DATABASE "{db}"')
        created = True
    base = args.postgres_url.rsplit("/", 1)[0]
    db_url = f"{base}/{db}"
    nodes: dict[str, Node] = {}
    meta: dict[str, Any] = {"data": {}, "rounds": args.rounds, "argv": " ".join(a for i, a in enumerate(argv) if a != "--postgres-url"
                                            and (i == 0 or argv[i - 1] != "--postgres-url"))}
    checks: list = []
    rows: list[Row] = []
    bulk: dict[str, list[BulkRun]] = {"retry": [], "purge": []}
    try:
        meta["server_version"] = (await admin.fetchval("SHOW server_version")).split()[0]
        nodes = await build(args.postgres_url, db_url, only, meta["data"])
        if "refresh" in only:
            await scenario_refresh(db_url, nodes["pgb12"], args.rounds, rows, checks)
        if "page" in only:
            await scenario_page(db_url, args.rounds, rows)
        if "throughput" in only:
            await scenario_throughput(db_url, nodes["pgb10"], args.rounds, rows, checks)
        for action in ("retry", "purge"):
            if action in only:
                await scenario_bulk(db_url, nodes["pgb12"], action, args.bulk_rounds, bulk[action])
    finally:
        for node in nodes.values():
            await node.stop()
        if created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
    import importlib.metadata as md

    node_version = (await (await asyncio.create_subprocess_exec("node", "--version", stdout=asyncio.subprocess.PIPE))
                    .communicate())[0].decode().strip()
    meta.update(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
                asyncpg=md.version("asyncpg"), node=node_version, load_start=load_start, load_end=os.getloadavg()[0],
                minutes=(time.time() - started) / 60)
    section = render(meta, checks, rows, bulk)
    if args.no_doc:
        print(section)
    else:
        write_doc(section)
        print(section)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
