"""Reading failed jobs across queues for the dead-letter view: bounded, with progress and a cap.

Server-side where the store allows it: ``id:`` is a direct lookup, ``queue:`` limits which queues
are read, pages come from the server newest first. Other terms are checked on each row as it is
read; ``data.`` terms load each payload, so they are capped lower. Async, no Textual.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

from backends.contract import FailedRow, JobSummary, QueueRef, Reader, call_with_timeout
from console.filters import Filter
from console.requeue_planning import DEFAULT_CALL_TIMEOUT, parse_payload, payload_of

ROW_CAP = 10_000  # failed jobs read per queue (the TUI keeps what it read in memory)
PAYLOAD_CAP = 2_000  # payloads read per queue for data. terms
#: jobs per server page (the readers' largest)
PAGE = 1000


@dataclass
class ScanResult:
    items: list[tuple[QueueRef, JobSummary | FailedRow]] = field(default_factory=list)
    scanned: int = 0
    capped: list[str] = field(default_factory=list)  # queues where the cap stopped the scan
    #: failed jobs per queue as the server counted them (the first page's total), so that a capped
    #: scan can say how many exist
    totals: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cancelled: bool = False


async def scan_failed(targets: list[tuple[QueueRef, Reader]], flt: Filter, now_ms: int | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      cancel: asyncio.Event | None = None, timeout: float = DEFAULT_CALL_TIMEOUT,
                      row_cap: int = ROW_CAP, light: bool = False) -> ScanResult:
    """``now_ms`` (for ``age:`` terms) defaults to the first server's clock, as the actions use.
    ``row_cap``: failed jobs read per queue when no payload is needed. ``light``: the items are
    ``FailedRow``s (id, name, finish time, reason: what filtering and grouping need, read with
    ``Reader.failed_rows``) instead of full rows; a filter on the payload reads full rows anyway."""
    out = ScanResult()
    light = light and not flt.needs_payload
    if now_ms is None:
        now_ms = await _server_now(targets, timeout)
    cap = PAYLOAD_CAP if flt.needs_payload else row_cap
    for queue, reader in targets:
        if not flt.queue_matches(queue):
            continue
        try:
            if flt.ids:
                for job_id in flt.ids:
                    detail = await call_with_timeout(reader.job(queue, job_id), timeout, f"reading job {job_id}")
                    out.scanned += 1
                    if detail and detail.summary.state == "failed":
                        payload = parse_payload(detail.data.text if detail.data else None)
                        if flt.matches(queue, detail.summary, now_ms, payload):
                            out.items.append((queue, detail.summary))
                continue
            cursor, seen = None, 0
            while True:
                if cancel is not None and cancel.is_set():
                    out.cancelled = True
                    return out
                what = f"reading failed jobs of {queue.qualified}"
                if light:
                    jobs, cursor, total = await call_with_timeout(reader.failed_rows(queue, cursor, PAGE), timeout, what)
                else:
                    page = await call_with_timeout(reader.page(queue, "failed", cursor, PAGE), timeout, what)
                    jobs, cursor, total = page.jobs, page.next_cursor, page.total
                if seen == 0 and total is not None:
                    out.totals[queue.qualified] = total
                seen += len(jobs)
                if flt.needs_payload:
                    for job in jobs:
                        payload = await payload_of(reader, queue, job.id, timeout)
                        if flt.matches(queue, job, now_ms, payload):
                            out.items.append((queue, job))
                elif flt.checks_jobs:
                    out.items.extend((queue, job) for job in jobs if flt.matches(queue, job, now_ms))
                else:
                    out.items.extend((queue, job) for job in jobs)
                out.scanned += len(jobs)
                if progress:
                    progress(out.scanned, len(out.items))
                if cursor is None:
                    break
                if seen >= cap:
                    out.capped.append(queue.qualified)
                    break
        except Exception as exc:  # one queue failing must not hide the others
            out.errors.append(f"{queue.qualified}: {exc}")
    return out


async def _server_now(targets: list[tuple[QueueRef, Reader]], timeout: float) -> int:
    import time

    for _queue, reader in targets[:1]:
        now = await call_with_timeout(reader.server_time_ms(), timeout, "reading the server clock")
        if now is not None:
            return now
    return int(time.time() * 1000)
