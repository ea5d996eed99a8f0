"""Between the action layer and the pure policy engine: gathering candidates from a reader,
reading and writing the shared ledger, and turning a plan into work. Async, no Textual.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from backends.contract import ConsoleStore, QueueRef, Reader, call_with_timeout
from console.policy import BackendCaps, Candidate, Ledger, LedgerEntry, Policy, Rules

#: most jobs planned one by one in a single bulk retry (the rest stay failed; run again)
PLAN_CAP = 50_000
PAGE = 1000


def is_trivial(policy: Policy, queue: QueueRef) -> bool:
    """No rule could refuse, delay or reorder a requeue of this queue's jobs."""
    if policy.rules_for(queue) != Rules():
        return False
    for fc in policy.failure_classes:
        if fc.queues is None or queue.name in fc.queues or queue.qualified in fc.queues:
            return False
    return True


def caps_for(reader: Reader):
    """The planner's view of what a queue's store can do: a later requeue is scheduled by the
    store where it can (pg-boss start_after, Gello's scheduled set), else paced by the console
    (BullMQ has no script that retries a failed job into `delayed`)."""
    def caps(queue: QueueRef) -> BackendCaps:
        can = reader.queue_capabilities(queue)
        return BackendCaps(delay=can.delayed_retry, job_timeout=can.job_timeout, retention=False)
    return caps


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


DEFAULT_CALL_TIMEOUT = 30.0


async def payload_of(reader: Reader, queue: QueueRef, job_id: str, timeout: float) -> Any:
    """A job's payload parsed as JSON (None when missing or not JSON), for payload rules/filters."""
    detail = await call_with_timeout(reader.job(queue, job_id), timeout, f"reading job {job_id}")
    return parse_payload(detail.data.text if detail and detail.data else None)


def parse_payload(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


async def candidates_for_ids(reader: Reader, queue: QueueRef, job_ids: list[str], need_payload: bool,
                             state: str = "failed", timeout: float = DEFAULT_CALL_TIMEOUT,
                             ) -> tuple[list[Candidate], list[str]]:
    """Candidates for explicit ids (duplicates kept: the planner refuses them); missing ids apart.
    Row summaries come in one round trip per chunk; payloads are read only when a fairness key
    needs them. Every reader call has its own timeout, however long the selection."""
    out, missing = [], []
    for start in range(0, len(job_ids), PAGE):
        chunk = job_ids[start:start + PAGE]
        rows = await call_with_timeout(reader.summaries(queue, list(dict.fromkeys(chunk)), state), timeout,
                                       "reading the selection")
        for job_id in chunk:
            summary = rows.get(job_id)
            if summary is None:
                missing.append(job_id)
                continue
            payload = await payload_of(reader, queue, job_id, timeout) if need_payload else None
            out.append(Candidate.from_summary(queue, summary, payload))
    return out, missing


async def candidates_for_state(reader: Reader, queue: QueueRef, state: str, snapshot_ms: int,
                               need_payload: bool, cap: int = PLAN_CAP, timeout: float = DEFAULT_CALL_TIMEOUT,
                               ) -> tuple[list[Candidate], bool]:
    """Every job of ``state`` finished at or before the snapshot, read in server-side pages
    (newest first). Returns (candidates, capped)."""
    out: list[Candidate] = []
    cursor = None
    while True:
        page = await call_with_timeout(reader.page(queue, state, cursor, PAGE), timeout, "listing the selection")
        for job in page.jobs:
            if job.finished_ms is not None and job.finished_ms > snapshot_ms:
                continue
            payload = await payload_of(reader, queue, job.id, timeout) if need_payload else None
            out.append(Candidate.from_summary(queue, job, payload))
            if len(out) >= cap:
                return out, True
        cursor = page.next_cursor
        if cursor is None:
            return out, False


async def read_ledger(store: ConsoleStore | None, policy: Policy, now_ms: int, connection: str) -> Ledger:
    if store is None:
        return Ledger()
    retention = policy.ledger_retention()
    since = 0 if retention is None else int(now_ms - retention * 1000)
    records = await store.ledger_read(since)
    return Ledger.from_records([{k: v for k, v in r.items() if k != "_id"} for r in records], connection=connection)


async def append_ledger(store: ConsoleStore | None, entries: list[LedgerEntry]) -> None:
    if store is not None and entries:
        await store.ledger_append(Ledger(entries).to_records())
