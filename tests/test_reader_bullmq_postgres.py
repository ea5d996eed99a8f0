"""BullMQ on PostgreSQL read and changed by queue-console, with BullMQ for Python 3.4.4's own
PostgreSQL backend as producer and worker (a schema of the test's own on the session database).

Counts must equal the library's ``getJobCounts``; retries, purges, promotes and pauses go through
console.actions (preview, policy, audit) and BullMQ's own SQL commands, and a real BullMQ worker
then processes what the console re-queued.
"""
from __future__ import annotations

import asyncio
import html
import time
import uuid

import pytest

from backends.bullmq_postgres import layout
from backends.contract import QueueRef
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Selection
from tests import pgboss_helpers as h

pytest.importorskip("psycopg", reason="BullMQ for Python's PostgreSQL backend needs psycopg")
from bullmq import Queue, Worker  # noqa: E402

NATIVE = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children", "paused")


class World:
    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = f"qct_bmpg_{uuid.uuid4().hex[:8]}"
        self.name = "mails"
        self.opts = {"backend": "postgres", "connection": url, "schema": self.schema}
        self.queue = Queue(self.name, self.opts)
        self.readers: list = []

    async def reader(self):
        readers = await open_readers(self.url, ConnectOptions(backend="bullmq-postgres", schema=self.schema))
        self.readers += readers
        return readers[0]

    def ref(self) -> QueueRef:
        return QueueRef(connection=self.readers[0].url.redacted if self.readers else self.url, backend="bullmq-postgres",
                        namespace=self.schema, name=self.name)

    async def lib_counts(self) -> dict:
        counts = await self.queue.getJobCounts(*NATIVE)
        return {k: int(v) for k, v in counts.items()}

    async def run_worker(self, until, fail_odd: bool = False, timeout: float = 60.0) -> list[str]:
        """A BullMQ worker until ``until(counts)``; returns the ids it processed."""
        seen: list[str] = []

        async def process(job, token):
            seen.append(job.id)
            await job.log(f"processing {job.id}")
            if fail_odd and job.data.get("i", 0) % 2 == 1:
                raise Exception(f"boom {job.data['i']}")
            return {"i": job.data.get("i")}

        worker = Worker(self.name, process, {**self.opts, "drainDelay": 1})
        try:
            end = time.monotonic() + timeout
            while not until(await self.lib_counts()):
                assert time.monotonic() < end, f"worker did not get there: {await self.lib_counts()}"
                await asyncio.sleep(0.05)
        finally:
            await worker.close()
        return seen

    async def close(self):
        try:
            for r in self.readers:
                await r.close()
            await self.queue.close()
        finally:  # a BullMQ schema left behind would join every later PostgreSQL test's readers
            await h.drop(self.url, self.schema)


@pytest.fixture
async def world(postgres_url):
    w = World(postgres_url)
    try:
        yield w
    finally:
        await w.close()


async def produce(w: World, n: int = 6) -> None:
    """n jobs (odd ones fail), then one delayed, one waiting, one prioritized."""
    for i in range(n):
        await w.queue.add("send", {"i": i}, {"attempts": 1})
    await w.run_worker(lambda c: c["completed"] + c["failed"] == n, fail_odd=True)
    await w.queue.add("later", {"i": 100}, {"delay": 3_600_000})
    await w.queue.add("plain", {"i": 102})
    await w.queue.add("urgent", {"i": 104}, {"priority": 3})


def test_commands_come_from_the_pinned_bullmq_package():
    import bullmq

    assert layout.commands_dir().startswith(bullmq.__path__[0])
    assert "SELECT reprocess_job(" in layout.command("reprocess_job")
    assert "FROM job" in layout.command("get_counts")


async def test_discovery_counts_pages_and_detail_equal_the_library(world):
    w = world
    await produce(w)
    reader = await w.reader()
    found = await reader.discover()
    assert [(q.namespace, q.name) for q in found.queues] == [(w.schema, w.name)]
    lib = await w.lib_counts()
    [status] = await reader.statuses(found.queues)
    assert status.native == lib
    assert lib["failed"] == 3 and lib["prioritized"] == 1 and lib["delayed"] == 1
    assert status.counts["waiting"] == lib["waiting"] + lib["prioritized"]
    # failed list, newest first, in pages of 2: the same ids BullMQ lists
    ids, cursor = [], None
    while True:
        page = await reader.page(found.queues[0], "failed", cursor=cursor, limit=2)
        assert page.total == 3
        ids += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    lib_failed = [j.id for j in await w.queue.getJobs(["failed"])]
    assert sorted(ids) == sorted(lib_failed) and len(ids) == 3
    waiting = await reader.page(found.queues[0], "waiting")
    assert [j.native_state for j in waiting.jobs] == ["waiting", "prioritized"]  # claim order: priority 0 first
    detail = await reader.job(found.queues[0], ids[0])
    assert detail.summary.failed_reason.text.startswith("boom")
    assert detail.logs.total == 1 and detail.logs.lines == [f"processing {ids[0]}"]
    assert detail.stacktrace and '"i":' in detail.data.text.replace(" ", "")
    assert await reader.job(found.queues[0], "no-such-job") is None


async def test_retry_by_ids_then_a_bullmq_worker_completes_them(world):
    w = world
    await produce(w)
    reader = await w.reader()
    ref = w.ref()
    failed = [j.id for j in (await reader.page(ref, "failed")).jobs]
    acts = Actions(lambda q: reader, operator="test@host")
    report = await acts.execute(await acts.preview("retry", Selection(ref, job_ids=failed[:2] + ["nope"])))
    assert report.done == 2 and [o.status for o in report.skipped] == ["not-found"]
    lib = await w.lib_counts()
    assert lib["failed"] == 1
    assert (await reader.statuses([ref]))[0].native == lib
    # the re-queued jobs run again in a real worker (everything else waiting runs too)
    processed = await w.run_worker(lambda c: c["waiting"] + c["prioritized"] == 0 and c["active"] == 0)
    assert set(failed[:2]) <= set(processed)
    lib = await w.lib_counts()
    assert lib["failed"] == 1 and lib["completed"] == 3 + 2 + 2
    assert (await reader.statuses([ref]))[0].native == lib
    audit = await reader.console_store().audit_read(10)
    assert audit and audit[0]["action"] == "retry"


async def test_retry_all_and_purge_older_than_run_bullmqs_bulk_commands(world, monkeypatch):
    import console.actions as actions_mod

    monkeypatch.setattr(actions_mod, "BULK_BATCH", 2)  # several retry_jobs / clean calls
    w = world
    await produce(w, n=10)
    reader = await w.reader()
    ref = w.ref()
    acts = Actions(lambda q: reader, operator="test@host")
    preview = await acts.preview("retry", Selection(ref, state="failed"))
    assert preview.count == 5
    assert any("resets attemptsMade" in n for n in preview.warnings)
    report = await acts.execute(preview)
    assert report.done == 5 and report.batches == 3
    assert {j.attempts_made for j in (await reader.page(ref, "waiting")).jobs} == {0}  # as retry_jobs does
    lib = await w.lib_counts()
    assert lib["failed"] == 0 and lib["waiting"] == 6
    assert (await reader.statuses([ref]))[0].native == lib
    # purge completed jobs finished at least 0 ms ago: BullMQ's clean, in batches of 2
    preview = await acts.preview("purge", Selection(ref, state="completed", older_than_ms=0))
    assert preview.count == 5
    report = await acts.execute(preview)
    assert report.done == 5
    lib = await w.lib_counts()
    assert lib["completed"] == 0 and (await reader.statuses([ref]))[0].native == lib


async def test_promote_and_pause_as_bullmq_does(world):
    w = world
    await produce(w, n=2)
    reader = await w.reader()
    ref = w.ref()
    acts = Actions(lambda q: reader, operator="test@host")
    await acts.set_paused([ref], True)
    assert await w.queue.isPaused()
    lib = await w.lib_counts()
    assert lib["paused"] == 1 and lib["waiting"] == 0
    [status] = await reader.statuses([ref])
    assert status.paused and status.native == lib
    [delayed] = (await reader.page(ref, "delayed")).jobs
    report = await acts.apply_to_ids("promote", ref, [delayed.id, "nope"])
    assert report.done == 1 and [o.status for o in report.skipped] == ["not-found"]
    lib = await w.lib_counts()
    assert lib["delayed"] == 0 and lib["paused"] == 2
    await acts.set_paused([ref], False)
    assert not await w.queue.isPaused()
    await w.run_worker(lambda c: c["waiting"] + c["prioritized"] == 0 and c["active"] == 0)
    lib = await w.lib_counts()
    assert lib["completed"] == 1 + 3 and (await reader.statuses([ref]))[0].native == lib


async def test_demo_workload_makes_every_state_and_the_console_reads_it(postgres_url):
    from console.demo_bullmq_postgres import PLANS, BullMQPostgresWorkload

    schema = f"qct_bmpgd_{uuid.uuid4().hex[:8]}"
    workload = BullMQPostgresWorkload(postgres_url, schema=schema, speed=4.0)
    [reader] = await open_readers(postgres_url, ConnectOptions(backend="bullmq-postgres", schema=schema))
    try:
        await asyncio.to_thread(workload.start, 60)
        seen: set[str] = set()
        end = time.monotonic() + 60
        while not {"completed", "failed", "delayed", "waiting-children"} <= seen:
            assert time.monotonic() < end, f"states seen so far: {seen}"
            assert workload.error is None
            found = await reader.discover()
            for status in await reader.statuses(found.queues):
                seen |= {k for k, v in status.native.items() if v}
            await asyncio.sleep(0.2)
        assert sorted(q.name for q in found.queues) == sorted(PLANS)
        assert workload.counts["sent"] > 0
    finally:
        await asyncio.to_thread(workload.stop)
        await reader.close()
        await h.drop(postgres_url, schema)
    assert not workload.running


async def test_throughput_counts_bullmqs_finished_events_between_samples(world):
    w = world
    reader = await w.reader()
    for i in range(4):
        await w.queue.add("send", {"i": i}, {"attempts": 1})
    ref = w.ref()
    assert await reader.throughput([ref]) == []  # the first sample only sets the mark
    await w.run_worker(lambda c: c["completed"] + c["failed"] == 4, fail_odd=True)
    [tp] = await reader.throughput([ref])
    assert tp.source == "events"
    assert round(tp.completed_per_s * tp.interval_s) == 2 and round(tp.failed_per_s * tp.interval_s) == 2


async def test_purge_marked_jobs_runs_bullmqs_remove(world):
    w = world
    await produce(w, n=2)
    reader = await w.reader()
    ref = w.ref()
    [done] = (await reader.page(ref, "completed")).jobs
    [waiting] = [j for j in (await reader.page(ref, "waiting")).jobs if j.native_state == "waiting"]
    acts = Actions(lambda q: reader, operator="test@host")
    report = await acts.execute(await acts.preview("purge", Selection(ref, state="completed",
                                                                      job_ids=[done.id, waiting.id, "nope"])))
    assert report.done == 1 and sorted(o.status for o in report.skipped) == ["not-found", "not-in-state"]
    assert await w.queue.getJob(done.id) is None
    lib = await w.lib_counts()
    assert lib["completed"] == 0 and lib["waiting"] == 1 and (await reader.statuses([ref]))[0].native == lib


async def test_a_newer_schema_version_is_read_only(world):
    from backends.errors import Unsupported

    w = world
    await produce(w, n=2)
    reader = await w.reader()
    ref = w.ref()
    async with h.admin(w.url) as conn:
        await conn.execute(f'INSERT INTO "{w.schema}".migration (version, name) VALUES (99, \'future.sql\')')
    await reader.discover()
    caps = reader.queue_capabilities(ref)
    assert not caps.retry and not caps.pause and "99" in caps.read_only_reason
    [failed] = (await reader.page(ref, "failed")).jobs
    with pytest.raises(Unsupported):
        await reader.retry_jobs(ref, [failed.id])
    assert (await w.lib_counts())["failed"] == 1


async def test_gauges_count_workers_as_bullmq_does_and_age_the_next_job(world):
    w = world
    reader = await w.reader()
    await w.queue.add("send", {"i": 0})
    ref = w.ref()
    [g] = await reader.gauges([ref])
    assert g.workers == 0 and g.oldest_waiting_s is not None and g.oldest_waiting_s >= 0

    async def never(job, token):
        await asyncio.sleep(3600)

    worker = Worker(w.name, never, {**w.opts, "drainDelay": 1})
    try:
        end = time.monotonic() + 30
        while len(await w.queue.get_workers()) < 1:
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
        [g] = await reader.gauges([ref])
        assert g.workers == len(await w.queue.get_workers()) == 1
    finally:
        await worker.close(force=True)


async def test_latency_over_recently_completed_jobs(world):
    w = world
    reader = await w.reader()
    await produce(w, n=4)  # 2 completed
    ref = w.ref()
    [lat] = await reader.latency([ref])
    jobs = [await w.queue.getJob(j.id) for j in (await reader.page(ref, "completed")).jobs]
    runs = sorted(j.finishedOn - j.processedOn for j in jobs)
    waits = sorted(j.processedOn - j.timestamp - (j.delay or 0) for j in jobs)
    assert lat.sample_size == 2
    assert lat.run_p50_ms == sum(runs) / 2 and lat.wait_p50_ms == sum(waits) / 2
    assert lat.run_p95_ms == runs[0] + 0.95 * (runs[1] - runs[0])


async def test_tui_lists_the_queue_and_opens_a_failed_job(world):
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.screens.queue import QueueScreen
    from tests.tui_harness import SIZE, to_state, wait_for

    w = world
    await produce(w, n=2)
    app = QueueConsoleApp(Settings(urls=[w.url], backend="bullmq-postgres", schema=w.schema, refresh=0.5))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count >= 1, what="the queue row")
        assert [str(c) for c in table.get_row_at(0)[:2]] == [w.name, "bullmq-postgres"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue screen")
        await to_state(pilot, app.screen, "failed")  # waiting -> delayed -> active -> completed -> failed
        end = time.monotonic() + 20
        text = ""
        while "boom 1" not in text and time.monotonic() < end:
            await pilot.pause(0.2)
            text = html.unescape(app.export_screenshot()).replace("\xa0", " ")
        assert "boom 1" in text and "error (latest)" in text  # the error in the list and in the job's detail


async def test_history_from_the_metrics_table_bullmq_writes(world):
    """BullMQ's own worker with ``metrics`` on fills the ``metrics`` table; the reader's history
    holds only whole minutes before now, and its counts are those of the library's ``getMetrics``
    read by backends/minute_metrics.py. A queue whose workers keep no metrics says so."""
    from backends.minute_metrics import MINUTE_MS, minute_counts

    w = world
    reader = await w.reader()
    ref = w.ref()
    [none] = await reader.history([ref])
    assert none.at_ms == [] and "keep no metrics" in none.unavailable
    for i in range(4):
        await w.queue.add("send", {"i": i}, {"attempts": 1})
    worker = Worker(w.name, lambda job, token: asyncio.sleep(0, {"ok": 1}),
                    {**w.opts, "drainDelay": 1, "metrics": {"maxDataPoints": 60}})
    try:
        end = time.monotonic() + 60
        while (await w.lib_counts())["completed"] < 4:
            assert time.monotonic() < end
            await asyncio.sleep(0.05)
    finally:
        await worker.close()
    [hist] = await reader.history([ref])
    # the library's own getMetrics statement (BullMQ for Python ships it beside collect_metrics.sql)
    import pathlib

    import asyncpg
    import bullmq

    sql = (pathlib.Path(bullmq.__file__).parent / "postgres" / "commands" / "get_metrics.sql").read_text()
    conn = await asyncpg.connect(w.url, server_settings={"search_path": w.schema})
    try:
        lib = await conn.fetchrow(sql, w.name, "completed", 0, -1)
        # (3.4.4's statement returns total and data; the minute of the newest point is prev_ts's)
        prev = await conn.fetchrow("SELECT prev_ts, prev_count FROM metrics WHERE queue = $1 AND kind = 'completed'",
                                   w.name)
        now_ms = await conn.fetchval("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    finally:
        await conn.close()
    assert hist.unavailable is None and hist.source == "metrics"
    assert lib["total"] == 4
    want = minute_counts(lib["total"], prev["prev_ts"], prev["prev_count"], list(lib["data"]), now_ms)
    assert sum(want.values()) + (lib["total"] - prev["prev_count"] if prev["prev_ts"] // MINUTE_MS >= now_ms // MINUTE_MS
                                 else 0) == 4
    got = {at // MINUTE_MS - 1: round(v * 60) for at, v in zip(hist.at_ms, hist.completed_per_s)}
    assert all(m < now_ms // MINUTE_MS for m in got)
    assert {m: v for m, v in got.items() if v} == {m: v for m, v in want.items() if v and m in got}
