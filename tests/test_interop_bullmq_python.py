"""Interop: queues written by BullMQ for Python (the ``bullmq`` PyPI package, 3.4.4) read by
queue-console's reader, compared with what the Python library itself reports.

The same comparisons as ``tests/test_interop_bullmq_node.py`` (shared in ``tests/interop/compare.py``),
for a world built in-process: completed jobs (return values, logs), failed jobs after retries,
one job held active by a live Worker, waiting (custom ids, colon ids, lifo, a scheduler job
``repeat:<id>:<millis>``), prioritized, delayed, waiting-children (a flow) and a paused queue.
No Node needed. (Python bullmq 3.x has v6 semantics: pause keeps jobs in ``wait``.)
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator

import pytest

bullmq = pytest.importorskip("bullmq", reason="the bullmq PyPI package is not installed")
from bullmq import FlowProducer, Job, Queue, Worker  # noqa: E402

from tests.interop import compare  # noqa: E402

BASE = "pyinterop"
LIB_STATES = {  # getJobs type -> asc, as the library's own getters order them
    "wait": True, "waiting": True, "prioritized": True, "paused": True, "delayed": True,
    "active": True, "waiting-children": True, "completed": False, "failed": False,
}
TIMEOUT_S = 30.0


async def _wait_for(what: str, predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _unset_zero(value: Any) -> Any:
    # Python bullmq's Job uses 0 for "no processedOn/finishedOn" where node leaves it undefined.
    return None if value in (0, None) else value


def _row(job: Job) -> dict:
    return {
        "id": job.id,
        "name": job.name,
        "timestamp": job.timestamp,
        "processedOn": _unset_zero(job.processedOn),
        "finishedOn": _unset_zero(job.finishedOn),
        "attemptsMade": job.attemptsMade,
        "priority": job.priority,
        "delay": job.delay,
        "failedReason": job.failedReason,
    }


async def _snapshot(queue: Queue) -> tuple[dict, dict]:
    # Python's getJobCounts passes any type to getCounts-1.lua, 'paused' included.
    counts = await queue.getJobCounts(*compare.NATIVE_COUNT_TYPES)
    view: dict = {"name": queue.name, "counts": counts, "isPaused": await queue.isPaused(), "jobs": {}, "rows": {}}
    for state, asc in LIB_STATES.items():
        jobs = await queue.getJobs([state], 0, -1, asc)
        view["jobs"][state] = [j.id for j in jobs]
        view["rows"][state] = [_row(j) for j in jobs]
    details = {}
    for job_id in {i for ids in view["jobs"].values() for i in ids}:
        job = await Job.fromId(queue, job_id)
        assert job is not None, f"{queue.name}: Job.fromId lost {job_id}"
        logs = await queue.getJobLogs(job_id)
        details[job_id] = {
            "id": job.id, "name": job.name, "data": job.data, "attemptsMade": job.attemptsMade,
            "failedReason": job.failedReason, "stacktrace": job.stacktrace, "returnvalue": job.returnvalue,
            "state": await queue.getJobState(job_id), "logs": logs["logs"], "logCount": logs["count"],
        }
    return view, details


@contextlib.asynccontextmanager
async def python_world(redis_url: str, prefix: str) -> AsyncIterator[dict]:
    """Build the queues with Python bullmq, yield the library's report, then close everything."""
    opts = {"connection": redis_url, "prefix": prefix}
    hold_started, hold_release = asyncio.Event(), asyncio.Event()

    async def processor(job: Job, token: str):
        data = job.data or {}
        if data.get("kind") == "ok":
            await job.log(f"start {job.id} n={data['n']}")
            await job.log(f"half-way {data['n'] * 50}%")
            return data["ret"]
        if data.get("kind") == "bad":
            attempt = job.attemptsMade + 1
            await job.log(f"attempt {attempt} of {job.opts.get('attempts', 1)}")
            raise ValueError(f"boom: job {job.id} attempt {attempt} code {1000 + data['n'] * 7 + attempt}")
        if data.get("kind") == "hold":
            await job.log("holding until the test has read")
            hold_started.set()
            await hold_release.wait()
            return "released"
        raise RuntimeError(f"unexpected job {job.id} reached the worker")

    main = Queue(f"{BASE}-main", opts)
    paused = Queue(f"{BASE}-paused", opts)
    flow = FlowProducer(opts)
    worker: Worker | None = None
    try:
        returns = [{"ok": True, "n": 1, "nested": {"a": [1, 2, 3], "s": "héllo ✓"}}, "a plain string", 42, None]
        for n, ret in enumerate(returns):
            await main.add("ok-job", {"kind": "ok", "n": n, "ret": ret}, {"jobId": "order:2024:7"} if n == 1 else {})
        await main.add("bad-job", {"kind": "bad", "n": 1}, {"attempts": 2, "backoff": 0})
        await main.add("bad-job", {"kind": "bad", "n": 2}, {"attempts": 2, "backoff": 0})
        await main.add("bad-once", {"kind": "bad", "n": 3}, {"jobId": "inv:7:x"})

        worker = Worker(main.name, processor, {**opts, "concurrency": 1})

        async def finished() -> bool:
            c = await main.getJobCounts("completed", "failed")
            return c["completed"] == 4 and c["failed"] == 3

        await _wait_for("4 completed and 3 failed jobs", finished)
        await main.add("hold-job", {"kind": "hold"}, {"jobId": "held-1"})
        await asyncio.wait_for(hold_started.wait(), 20)

        w1 = await main.add("wait-job", {"kind": "never", "n": 1, "tags": ["x", "y"]}, {"jobId": "custom-id-abc"})
        await w1.log("producer log line 1")
        await w1.log("producer log line 2")
        await main.add("wait-job", {"kind": "never", "n": 2})
        many = await main.add("wait-job", {"kind": "never", "n": 3})
        for i in range(205):
            await many.log(f"line {i}")
        await main.add("lifo-job", {"kind": "never", "n": 4}, {"lifo": True})
        for n, priority in ((1, 5), (2, 1), (3, 3), (4, 1)):
            await main.add("prio-job", {"kind": "never", "n": n, "priority": priority}, {"priority": priority})
        for n, delay in ((1, 90000), (2, 30000), (3, 60000), (4, 30000)):
            await main.add("delayed-job", {"kind": "never", "n": n, "delay": delay}, {"delay": delay})
        await main.upsertJobScheduler("every-hour", {"every": 3600000}, "tick", {"kind": "never", "tick": True})
        await flow.add({
            "name": "flow-parent", "queueName": main.name, "data": {"kind": "never", "parent": True},
            "opts": {"jobId": "flow-parent"},
            "children": [
                {"name": "flow-child", "queueName": main.name, "data": {"kind": "never", "child": 1}},
                {"name": "flow-child", "queueName": main.name, "data": {"kind": "never", "child": 2}},
            ],
        })

        await paused.add("before-pause", {"n": 1})
        await paused.add("before-pause", {"n": 2})
        await paused.pause()
        for n in (3, 4, 5):
            await paused.add("after-pause", {"n": n})
        await paused.add("after-pause-prio", {"n": 6}, {"priority": 2})
        await paused.add("after-pause-delayed", {"n": 7}, {"delay": 120000})

        doc: dict = {"queues": {}, "jobDetails": {}, "missing": {}}
        for key, queue in (("main", main), ("paused", paused)):
            view, details = await _snapshot(queue)
            doc["queues"][key] = view
            doc["jobDetails"][queue.name] = details
            doc["missing"][queue.name] = await Job.fromId(queue, "no-such-job") is None
        yield doc
    finally:
        hold_release.set()
        if worker is not None:
            await asyncio.wait_for(worker.close(), 10)
        for closable in (flow, main, paused):
            with contextlib.suppress(Exception):
                await closable.close()


def _check_world(doc: dict) -> None:
    main = doc["queues"]["main"]
    for state in ("wait", "prioritized", "delayed", "active", "completed", "failed", "waiting-children"):
        assert main["jobs"][state], f"python fixture: main queue has no {state} job"
    assert main["jobs"]["active"] == ["held-1"]
    assert any(i.startswith("repeat:every-hour:") for i in main["jobs"]["wait"] + main["jobs"]["delayed"])
    assert doc["queues"]["paused"]["isPaused"] is True


async def test_python_bullmq_queues_read_like_the_library(redis_url, prefix):
    async def run() -> None:
        async with python_world(redis_url, prefix) as doc:
            _check_world(doc)
            async with compare.open_reader(redis_url, prefix) as reader:
                queues = await compare.check_discovery(reader, doc, prefix)
                await compare.check_statuses(reader, queues, doc)
                for state in compare.READER_STATES:
                    for limit in (3, 1, 7):
                        await compare.check_pages(reader, queues, doc, state, limit=limit)
                assert await compare.check_details(reader, queues, doc) >= 20
                diffs = await compare.attempts_diffs(reader, queues, doc, never_attempted=False)
                assert not diffs, "attemptsMade disagrees:\n" + compare.format_diffs(diffs)

    await asyncio.wait_for(run(), TIMEOUT_S)


async def test_python_bullmq_attempts_made_of_never_attempted_jobs(redis_url, prefix):
    async def run() -> None:
        async with python_world(redis_url, prefix) as doc:
            async with compare.open_reader(redis_url, prefix) as reader:
                queues = await compare.check_discovery(reader, doc, prefix)
                diffs = await compare.attempts_diffs(reader, queues, doc, never_attempted=True)
                assert not diffs, "attemptsMade disagrees:\n" + compare.format_diffs(diffs)

    await asyncio.wait_for(run(), TIMEOUT_S)
