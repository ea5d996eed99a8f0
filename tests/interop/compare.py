"""What a queue library reported versus what queue-console's reader reads, for the interop tests.

A *library view* is the JSON document printed by ``fixture.js`` (BullMQ for Node) or built by
``tests/test_interop_bullmq_python.py`` (BullMQ for Python), in the same shape::

    {"queues": {key: {"name", "counts", "isPaused", "jobs": {type: [id, ...]},
                      "rows": {type: [{id, name, timestamp, ...}]}}},
     "jobDetails": {queue name: {id: {name, data, attemptsMade, failedReason, stacktrace,
                                      returnvalue, state, logs, logCount}}},
     "missing": {queue name: true when Job.fromId(<unknown id>) found nothing}}

``jobs[type]`` is ``getJobs([type], 0, -1, asc)`` in the order of the library's own getters:
``completed``/``failed`` newest first, every other type oldest (or soonest) first. ``wait`` is the
``wait`` list alone; ``waiting`` is the library's own "waiting" (v5 appends the legacy ``paused``
list to it, v6 does not).
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, AsyncIterator

from backends.bullmq.reader import LOG_TAIL
from backends.contract import JobDetail, JobSummary, Page, QueueRef, Reader
from backends.registry import ConnectOptions, open_readers

#: BullMQ count types (getJobCounts) that status.native must reproduce, the legacy `paused` included
NATIVE_COUNT_TYPES = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children", "paused")

#: canonical reader state -> the library's job types it concatenates, in the reader's order:
#: (library getJobs type, the reader's native_state for rows from that key)
READER_SEGMENTS: dict[str, list[tuple[str, str]]] = {
    "waiting": [("wait", "waiting"), ("prioritized", "prioritized"), ("paused", "waiting")],
    "delayed": [("delayed", "delayed")],
    "active": [("active", "active")],
    "completed": [("completed", "completed")],
    "failed": [("failed", "failed")],
    "waiting_children": [("waiting-children", "waiting-children")],
}
READER_STATES = tuple(READER_SEGMENTS)

#: the library's job state (Job.getState / getJobState) -> the reader's native_state of a detail
LIBRARY_STATE_TO_NATIVE = {
    "waiting": "waiting",
    "prioritized": "prioritized",
    "paused": "paused",
    "delayed": "delayed",
    "active": "active",
    "completed": "completed",
    "failed": "failed",
    "waiting-children": "waiting-children",
}

CANONICAL_OF_NATIVE = {
    "waiting": "waiting", "prioritized": "waiting", "paused": "waiting", "delayed": "delayed",
    "active": "active", "completed": "completed", "failed": "failed", "waiting-children": "waiting_children",
}


@contextlib.asynccontextmanager
async def open_reader(redis_url: str, prefix: str) -> AsyncIterator[Reader]:
    readers = await open_readers(redis_url, ConnectOptions(prefixes=[prefix]))
    try:
        assert len(readers) == 1, f"one reader expected for a Redis URL, got {readers}"
        yield readers[0]
    finally:
        for reader in readers:
            await reader.close()


def queue_ref(discovered: list[QueueRef], name: str) -> QueueRef:
    by_name = {q.name: q for q in discovered}
    assert name in by_name, f"queue {name!r} not discovered (found {sorted(by_name)})"
    return by_name[name]


# ---------------------------------------------------------------------------------------- counts
def expected_native(view: dict) -> dict[str, int]:
    return {t: int(view["counts"][t]) for t in NATIVE_COUNT_TYPES}


def expected_canonical(view: dict) -> dict[str, int | None]:
    """The canonical counts of reader.py, computed from the library's own numbers."""
    c = view["counts"]
    return {
        "waiting": c["waiting"] + c["paused"] + c["prioritized"],
        "delayed": c["delayed"],
        "active": c["active"],
        "completed": c["completed"],
        "failed": c["failed"],
        "cancelled": None,
        "waiting_children": c["waiting-children"],
    }


# ----------------------------------------------------------------------------------------- pages
def expected_page(view: dict, state: str) -> list[tuple[str, str]]:
    """(id, reader native_state) of every job the reader must list for ``state``, in order."""
    out: list[tuple[str, str]] = []
    for lib_type, native in READER_SEGMENTS[state]:
        out.extend((job_id, native) for job_id in view["jobs"][lib_type])
    return out


async def read_all_pages(reader: Reader, queue: QueueRef, state: str, limit: int = 3,
                         max_pages: int = 500) -> tuple[list[JobSummary], list[Page]]:
    """Follow ``next_cursor`` from the first page to the last."""
    rows: list[JobSummary] = []
    pages: list[Page] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page = await reader.page(queue, state, cursor, limit)
        pages.append(page)
        assert len(page.jobs) <= limit, f"{state}: page of {len(page.jobs)} rows with limit {limit}"
        rows.extend(page.jobs)
        if page.next_cursor is None:
            return rows, pages
        assert page.next_cursor != cursor, f"{state}: cursor {cursor!r} did not advance"
        cursor = page.next_cursor
    raise AssertionError(f"{state}: still paging after {max_pages} pages (cursor {cursor!r})")


def row_expectations(view: dict) -> dict[tuple[str, str], dict]:
    """(library type, id) -> the row the library reported from getJobs."""
    out = {}
    for lib_type, rows in view["rows"].items():
        for row in rows:
            out[(lib_type, row["id"])] = row
    return out


def compare_row(row: JobSummary, lib: dict) -> dict[str, tuple[Any, Any]]:
    """Row fields that differ: field -> (library, reader). ``attemptsMade`` is compared elsewhere."""
    reason = row.failed_reason.text if row.failed_reason is not None else None
    lib_reason = lib.get("failedReason")
    if row.failed_reason is not None and row.failed_reason.truncated and lib_reason is not None:
        lib_reason = lib_reason[: len(reason or "")]
    pairs = {
        "name": (lib.get("name"), row.name),
        "timestamp": (lib.get("timestamp"), row.created_ms),
        "processedOn": (lib.get("processedOn"), row.processed_ms),
        "finishedOn": (lib.get("finishedOn"), row.finished_ms),
        "priority": (lib.get("priority"), row.priority),
        "delay": (lib.get("delay"), row.delay_ms),
        "failedReason": (lib_reason, reason),
    }
    return {k: v for k, v in pairs.items() if v[0] != v[1]}


# ---------------------------------------------------------------------------------------- detail
def blob_json(blob) -> Any:
    if blob is None:
        return None
    assert not blob.truncated, f"blob cut at {len(blob.text)} of {blob.size} bytes"
    return json.loads(blob.text)


def compare_detail(detail: JobDetail | None, lib: dict, in_paused_list: bool = False) -> dict[str, tuple[Any, Any]]:
    """Detail fields that differ: field -> (library, reader). ``attemptsMade`` is compared elsewhere.

    ``in_paused_list``: the library's getJobs('paused') lists the job. BullMQ's getState (v4, v5
    and v6 getState-8.lua) answers "waiting" for an id in the legacy ``paused`` list, and so does
    the reader's native_state; the list it sits in is the detail's ``extra["list"]``.
    """
    if detail is None:
        return {"exists": (True, False)}
    s = detail.summary
    diffs: dict[str, tuple[Any, Any]] = {}

    def check(field: str, lib_value: Any, reader_value: Any) -> None:
        if lib_value != reader_value:
            diffs[field] = (lib_value, reader_value)

    check("id", lib["id"], s.id)
    check("name", lib["name"], s.name)
    check("data", lib["data"], blob_json(detail.data))
    check("failedReason", lib["failedReason"], s.failed_reason.text if s.failed_reason is not None else None)
    # The library keeps the stacktrace oldest first; the reader hands it out newest first.
    check("stacktrace (reader reversed)", list(lib["stacktrace"]), [b.text for b in reversed(detail.stacktrace)])
    # The library returns null both for "no returnvalue field" and for a stored JSON null.
    check("returnvalue", lib["returnvalue"], blob_json(detail.return_value))
    logs = detail.logs
    check("logs (last LOG_TAIL lines)", list(lib["logs"])[-LOG_TAIL:], logs.lines if logs else None)
    check("log count", lib["logCount"], logs.total if logs else None)
    lib_native = LIBRARY_STATE_TO_NATIVE.get(lib["state"], lib["state"])
    check("state", lib_native, s.native_state)
    check("list", "paused" if in_paused_list else None, (detail.extra.get("list") or "").split(" ")[0] or None)
    check("canonical state", CANONICAL_OF_NATIVE.get(lib["state"], lib["state"]), s.state)
    return diffs


def format_diffs(diffs: dict[str, dict[str, tuple[Any, Any]]]) -> str:
    lines = []
    for where, fields in diffs.items():
        for field, (lib_value, reader_value) in fields.items():
            lines.append(f"  {where}: {field}: library={lib_value!r} reader={reader_value!r}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the whole comparison
async def check_discovery(reader: Reader, view_doc: dict, prefix: str) -> list[QueueRef]:
    found = await reader.discover()
    assert found.complete, f"discovery incomplete: {found.note}"
    got = sorted((q.backend, q.namespace, q.name) for q in found.queues)
    want = sorted(("bullmq", prefix, v["name"]) for v in view_doc["queues"].values())
    assert got == want, f"discovery: library made {want}, reader found {got}"
    return found.queues


async def check_statuses(reader: Reader, queues: list[QueueRef], view_doc: dict) -> None:
    views = {v["name"]: v for v in view_doc["queues"].values()}
    statuses = await reader.statuses(queues)
    assert [s.queue for s in statuses] == queues
    problems = []
    for status in statuses:
        view = views[status.queue.name]
        if status.native != expected_native(view):
            problems.append(f"{status.queue.name}: native library={expected_native(view)} reader={status.native}")
        if status.paused != view["isPaused"]:
            problems.append(f"{status.queue.name}: paused library={view['isPaused']} reader={status.paused}")
        if status.counts != expected_canonical(view):
            problems.append(f"{status.queue.name}: canonical counts from library={expected_canonical(view)} reader={status.counts}")
    assert not problems, "status disagrees with the library:\n" + "\n".join(problems)


async def check_pages(reader: Reader, queues: list[QueueRef], view_doc: dict, state: str, limit: int = 3) -> None:
    problems = []
    for view in view_doc["queues"].values():
        queue = queue_ref(queues, view["name"])
        rows, pages = await read_all_pages(reader, queue, state, limit)
        want = expected_page(view, state)
        got = [(r.id, r.native_state) for r in rows]
        if got != want:
            problems.append(f"{view['name']} {state}: library order {want}\n      reader order  {got}")
            continue
        if any(r.state != state for r in rows):
            problems.append(f"{view['name']} {state}: rows with another canonical state {[r.state for r in rows]}")
        totals = {p.total for p in pages}
        if totals != {len(want)}:
            problems.append(f"{view['name']} {state}: page totals {totals}, library has {len(want)} jobs")
        lib_rows = row_expectations(view)
        diffs = {}
        for row, (lib_type, _native) in zip(rows, _segment_types(view, state)):
            d = compare_row(row, lib_rows[(lib_type, row.id)])
            if d:
                diffs[f"{view['name']} {state} row {row.id}"] = d
        if diffs:
            problems.append("row fields:\n" + format_diffs(diffs))
    assert not problems, f"pages (limit {limit}) disagree with the library's getJobs:\n" + "\n".join(problems)


def _segment_types(view: dict, state: str) -> list[tuple[str, str]]:
    out = []
    for lib_type, native in READER_SEGMENTS[state]:
        out.extend((lib_type, native) for _ in view["jobs"][lib_type])
    return out


async def check_details(reader: Reader, queues: list[QueueRef], view_doc: dict) -> int:
    diffs: dict[str, dict] = {}
    n = 0
    views = {v["name"]: v for v in view_doc["queues"].values()}
    for name, jobs in view_doc["jobDetails"].items():
        queue = queue_ref(queues, name)
        paused_ids = set(views[name]["jobs"].get("paused", []))
        for job_id, lib in jobs.items():
            assert lib is not None, f"{name} {job_id}: the library itself lost the job"
            d = compare_detail(await reader.job(queue, job_id), lib, in_paused_list=job_id in paused_ids)
            n += 1
            if d:
                diffs[f"{name} job {job_id}"] = d
        if view_doc["missing"].get(name):
            assert await reader.job(queue, "no-such-job") is None, f"{name}: reader found a job the library does not have"
    assert not diffs, "job details disagree with Job.fromId/getJobLogs:\n" + format_diffs(diffs)
    return n


async def attempts_diffs(reader: Reader, queues: list[QueueRef], view_doc: dict,
                         never_attempted: bool) -> dict[str, dict]:
    """attemptsMade (library) vs attempts_made (reader) in job details and in page rows, for the
    jobs attempted at least once (``never_attempted=False``) or never (``True``)."""
    diffs: dict[str, dict] = {}
    for name, jobs in view_doc["jobDetails"].items():
        queue = queue_ref(queues, name)
        for job_id, lib in jobs.items():
            if (lib["attemptsMade"] == 0) != never_attempted:
                continue
            detail = await reader.job(queue, job_id)
            assert detail is not None
            if detail.summary.attempts_made != lib["attemptsMade"]:
                diffs[f"{name} detail {job_id} ({lib['state']})"] = {
                    "attemptsMade": (lib["attemptsMade"], detail.summary.attempts_made)}
    for view in view_doc["queues"].values():
        queue = queue_ref(queues, view["name"])
        lib_rows = row_expectations(view)
        for state in READER_STATES:
            rows, _ = await read_all_pages(reader, queue, state, limit=50)
            for row, (lib_type, _native) in zip(rows, _segment_types(view, state)):
                lib = lib_rows[(lib_type, row.id)]
                if (lib["attemptsMade"] == 0) != never_attempted:
                    continue
                if row.attempts_made != lib["attemptsMade"]:
                    diffs[f"{view['name']} {state} row {row.id}"] = {
                        "attemptsMade": (lib["attemptsMade"], row.attempts_made)}
    return diffs
