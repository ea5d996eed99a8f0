"""Issue 10's closest BullMQ budgets, round-robin in one run: counts of 1,000 queues and bulk purge.

    python -m tests.benchmarks.bench_rounds [--port 6444] [--turns 10] [--purge-rounds 6]

The scale suite (tests/benchmarks/bench_scale.py) runs each side's rounds as a block (Node first)
and each bulk action once, so a load change on this shared machine between the blocks moves a
ratio by 30% either way. Here the sides alternate, turn by turn, in the same run, and the order
flips every turn:

- **Counts**: the scale suite's data (999 queues of 1,000 jobs and one of 1,000,000 failed, in
  BullMQ v6's layout, tests/benchmarks/scale_data.py). Per turn: a Node process runs
  ``Promise.all`` of ``getJobCounts`` over the 1,000 queues 5 times (the last 3 are kept); the
  console runs ``reader.statuses()`` 5 times (the last 3 kept); and, beside it, the same reads in
  the order the console used before (every reply read, then every record built), to show what the
  overlap of client and server work gives.
- **Bulk purge**: a fresh set of 100,000 failed jobs per side and round; BullMQ for Node's
  ``clean(0, 1000, 'failed')`` until it returns nothing, against the console's ``Actions.preview``
  + ``execute``.

For each side: the median, the ratio to Node (above 1: the console is faster), the server's own
time (INFO commandstats: EVALSHA and TIME microseconds, the scripts' inner commands included) and
the slowest single server call (SLOWLOG, threshold 0). It starts a private redis-server (never the
machine's shared one) and rewrites only its own section of docs/performance.md. Nothing here asserts
on time; it is not collected by pytest.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import time
from pathlib import Path

from tests.benchmarks.bench_scale import DEFAULT_OUT, PREFIX, T0, PrivateRedis, ServerWatch, merge_block, node

BEGIN = "<!-- rounds: written by tests/benchmarks/bench_rounds.py -->"
END = "<!-- end of the rounds section -->"


def server_ms(r) -> float:
    """Server time of the scripts (and TIME) since the last CONFIG RESETSTAT, in ms."""
    stats = r.info("commandstats")
    return sum(v["usec"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_time")) / 1000


class Tally:
    def __init__(self, who: str, call: str) -> None:
        self.who, self.call = who, call
        self.ms: list[float] = []
        self.server: list[float] = []
        self.slowest = 0.0

    def row(self, base: Tally) -> str:
        med = statistics.median(self.ms)
        ratio = "" if self is base else f"{statistics.median(base.ms) / med:.2f}×"
        return (f"| {self.who} | {self.call} | {med:,.1f} | {ratio} | {statistics.median(self.server):,.1f} | "
                f"{self.slowest:.2f} |")


async def counts(r, url: str, turns: int) -> list[Tally]:
    from backends.bullmq.keys import QueueKeys
    from backends.contract import QueueRef
    from backends.registry import ConnectOptions, open_readers
    from tests.benchmarks.scale_data import write_queue

    names = [f"q{i:04d}" for i in range(999)] + ["bigqueue"]
    for name in names[:-1]:
        write_queue(r, PREFIX, name, T0, completed=600, failed=200, waiting=150, delayed=25, prioritized=25)
    write_queue(r, PREFIX, "bigqueue", T0, failed=1_000_000)
    [reader] = await open_readers(url, ConnectOptions(prefixes=[PREFIX]))
    refs = [QueueRef(connection=reader.url.redacted, backend="bullmq", namespace=PREFIX, name=n) for n in names]
    keys = [QueueKeys(q.namespace, q.name) for q in refs]

    async def serial(_refs):
        now, raws = await reader._counter.count(keys, bullmq=[True] * len(keys))
        return [reader._status(q, raw, now) for q, raw in zip(refs, raws)]

    sides = {"node": Tally("BullMQ for Node", "`Promise.all` of 1,000 `getJobCounts()`"),
             "console": Tally("queue-console", "`reader.statuses()`: each record built as its reply arrives"),
             "serial": Tally("queue-console, the order before", "the same reads; every record built after the last reply")}
    watch = ServerWatch(r)
    try:
        for turn in range(turns):
            for who in (["node", "console", "serial"] if turn % 2 == 0 else ["serial", "console", "node"]):
                side = sides[who]
                watch.start()
                if who == "node":
                    d, _ = node(url, "counts", 5, names=names)
                    kept = d["ms"][2:]
                else:
                    call = reader.statuses if who == "console" else serial
                    kept = []
                    for i in range(5):
                        t = time.perf_counter()
                        got = await call(refs)
                        if i >= 2:
                            kept.append((time.perf_counter() - t) * 1000)
                        if len(got) != len(names) or got[-1].native["failed"] != 1_000_000:
                            raise RuntimeError("the console's counts are wrong")
                side.server.append(server_ms(r) / 5)
                side.slowest = max(side.slowest, watch.stop(5)[1])
                side.ms += kept
    finally:
        await reader.close()
    return list(sides.values())


async def purge(r, url: str, rounds: int, bulk: int) -> list[Tally]:
    from backends.contract import QueueRef
    from backends.registry import ConnectOptions, open_readers
    from console.actions import Actions, Selection
    from tests.benchmarks.scale_data import delete_prefix, write_queue

    [reader] = await open_readers(url, ConnectOptions(prefixes=[PREFIX]))
    acts = Actions(lambda _q: reader, operator="bench@bench")
    sides = {"node": Tally("BullMQ for Node", "`clean(0, 1000, 'failed')` until it returns nothing"),
             "console": Tally("queue-console", "`Actions.preview` + `execute` (bulk batches)")}
    watch = ServerWatch(r)
    try:
        for rnd in range(rounds):
            for who in (["node", "console"] if rnd % 2 == 0 else ["console", "node"]):
                qname = f"purge-{who}"
                write_queue(r, PREFIX, qname, T0, failed=bulk)
                watch.start()
                if who == "node":
                    d, _ = node(url, "clean", 1, qname)
                    ms = d["ms"][0]
                else:
                    ref = QueueRef(connection=reader.url.redacted, backend="bullmq", namespace=PREFIX, name=qname)
                    t = time.perf_counter()
                    report = await acts.execute(await acts.preview("purge", Selection(ref)))
                    ms = (time.perf_counter() - t) * 1000
                    if report.done != bulk:
                        raise RuntimeError(f"console purge: {report.summary()}")
                side = sides[who]
                side.server.append(server_ms(r))
                side.slowest = max(side.slowest, watch.stop(1)[1])
                side.ms.append(ms)
                if r.zcard(f"{PREFIX}:{qname}:failed"):
                    raise RuntimeError(f"{who} purge left jobs in failed")
                delete_prefix(r, f"{PREFIX}:{qname}")
    finally:
        await reader.close()
    return list(sides.values())


def document(args, c: list[Tally], p: list[Tally], meta: dict) -> list[str]:
    head = "| who | call | median ms | vs Node | server ms (median) | slowest server call ms |"
    rule = "|---|---|---:|---:|---:|---:|"
    return [
        BEGIN, "", "## Round-robin: counts of 1,000 queues and bulk purge (BullMQ)", "",
        f"- Date: {meta['date']}; command: `python -m tests.benchmarks.bench_rounds --port {args.port} "
        f"--turns {args.turns} --purge-rounds {args.purge_rounds}` ({meta['minutes']:.1f} min); load average "
        f"{meta['load_start']:.1f} at the start, {meta['load_end']:.1f} at the end (2 CPUs shared with other programs)",
        "- A private redis-server; the sides alternate turn by turn and the order flips every turn. *Server ms*: "
        "the scripts' own time per call (INFO commandstats, inner commands included); *slowest*: the slowest "
        "single server call (SLOWLOG, threshold 0).", "",
        f"Counts of 1,000 queues / 1,999,000 jobs, in-process ({args.turns} turns, 3 timed calls of 5 per side "
        "and turn):", "", head, rule, *(t.row(c[0]) for t in c), "",
        f"Bulk purge of {args.bulk:,} failed jobs ({args.purge_rounds} rounds, a fresh set per side and round):", "",
        head, rule, *(t.row(p[0]) for t in p), "", END,
    ]


async def run(args) -> tuple[list[Tally], list[Tally], dict]:
    meta = {"started": time.time(), "load_start": os.getloadavg()[0],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    server = PrivateRedis(args.port)
    try:
        p = await purge(server.sync, server.url, args.purge_rounds, args.bulk)
        print("[rounds] purge: " + ", ".join(f"{t.who} {statistics.median(t.ms):.0f} ms" for t in p), flush=True)
        c = await counts(server.sync, server.url, args.turns)
        print("[rounds] counts: " + ", ".join(f"{t.who} {statistics.median(t.ms):.1f} ms" for t in c), flush=True)
    finally:
        server.stop()
    meta.update(load_end=os.getloadavg()[0], minutes=(time.time() - meta["started"]) / 60)
    return c, p, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_rounds")
    ap.add_argument("--port", type=int, default=6444, help="port for the private redis-server (default 6444)")
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--purge-rounds", type=int, default=6)
    ap.add_argument("--bulk", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    c, p, meta = asyncio.run(run(args))
    merge_block(args.out, document(args, c, p, meta), BEGIN, END)
    print(f"[rounds] wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
