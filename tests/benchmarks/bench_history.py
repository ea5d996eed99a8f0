"""The first frame's history and the latency sample on pg-boss 12.38: how long the bounded
statements take on a busy queue, against a calm one and a counts refresh.

    python -m tests.benchmarks.bench_history --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

A database of its own (``qc_bench_hist_<random>``, dropped at the end) gets the pg-boss 12.38 schema
(tests/pgboss_ddl/v12.sql, dumped from pg-boss's own install), a queue ``busy`` with ``--rows``
finished jobs spread over the last hour (1 in 10 failed) and a queue ``calm`` with 1,000. The
reader's ``history`` (at most HISTORY_ROWS finishes by the (name, completed_on) index), ``latency``
(50 most recent completed) and ``statuses`` (the counts refresh) run ``--rounds`` times each; the
history section of docs/performance.md is rewritten (only that section).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from backends.pgboss import reader as pgreader
from backends.registry import ConnectOptions, open_readers
from tests import pgboss_helpers as h

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- history: written by tests/benchmarks/bench_history.py -->"
END = "<!-- end of the history section -->"
COMMAND = "python -m tests.benchmarks.bench_history --postgres-url postgresql://postgres@127.0.0.1:5432/postgres"


def fill_sql(schema: str, name: str, rows: int) -> str:
    """``rows`` finished jobs of ``name`` over the last hour, newest last; every 10th failed."""
    return f"""
    INSERT INTO "{schema}".job (id, name, state, data, created_on, start_after, started_on, completed_on, policy)
    SELECT gen_random_uuid(), '{name}',
           (CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END)::text::"{schema}".job_state,
           '{{}}'::jsonb, t - interval '2 s', t - interval '2 s', t - interval '1 s', t, 'standard'
    FROM (SELECT i, now() - (interval '3600 s' * (1 - i::float8 / {rows})) AS t
          FROM generate_series(1, {rows}) i) s"""


async def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def run(url: str, rows: int, rounds: int) -> dict:
    db = f"qc_bench_hist_{uuid.uuid4().hex[:8]}"
    async with h.admin(url) as conn:
        await conn.execute(f'CREATE DATABASE "{db}"')
    db_url = url.rsplit("/", 1)[0] + "/" + db
    try:
        schema = "pgboss"
        await h.install(db_url, "v12", schema)
        async with h.admin(db_url) as conn:
            for name in ("busy", "calm"):
                await h.create_queue(conn, schema, name)
            await conn.execute(fill_sql(schema, "busy", rows))
            await conn.execute(fill_sql(schema, "calm", 1000))
            await conn.execute(f'ANALYZE "{schema}".job')
        [reader] = await open_readers(db_url, ConnectOptions(schema=schema))
        try:
            queues = {q.name: q for q in (await reader.discover()).queues}
            await reader.statuses(list(queues.values()))
            [busy] = await reader.history([queues["busy"]])
            assert busy.note and sum(busy.completed_per_s) * 60 + sum(busy.failed_per_s) * 60 < pgreader.HISTORY_ROWS
            out = {
                "history busy": await timed(lambda: reader.history([queues["busy"]]), rounds),
                "history calm": await timed(lambda: reader.history([queues["calm"]]), rounds),
                "latency busy": await timed(lambda: reader.latency([queues["busy"]]), rounds),
                "counts refresh (2 queues)": await timed(lambda: reader.statuses(list(queues.values())), rounds),
                "points": len(busy.at_ms), "note": busy.note,
            }
        finally:
            await reader.close()
        return out
    finally:
        async with h.admin(url) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def render(res: dict, rows: int, rounds: int) -> str:
    med = {k: statistics.median(v) for k, v in res.items() if isinstance(v, list)}
    ref = med["counts refresh (2 queues)"]
    lines = [BEGIN, "", "### First-frame history and latency sample (pg-boss 12.38)", "",
             f"`{COMMAND}` ({datetime.date.today().isoformat()}; {rows:,} finished jobs in the last hour in "
             f"`busy`, 1,000 in `calm`; median of {rounds} rounds, client-side, round trip included). "
             f"History reads at most {pgreader.HISTORY_ROWS:,} finishes by the `(name, completed_on)` index "
             f"(`busy`: {res['points']} whole minutes, labelled \"{res['note']}\").", "",
             "| call | median | vs. the counts refresh |", "|---|---|---|"]
    for k, v in med.items():
        lines.append(f"| {k} | {v:.1f} ms | {v / ref:.2f}× |")
    lines += ["", f"`history busy` / `history calm`: {med['history busy'] / med['history calm']:.1f}× "
              f"for {rows // 1000:,}× the rows (the read is bounded, not proportional).", "", END]
    return "\n".join(lines) + "\n"


def write_doc(section: str) -> None:
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres-url", required=True)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    res = asyncio.run(run(args.postgres_url, args.rows, args.rounds))
    section = render(res, args.rows, args.rounds)
    write_doc(section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
