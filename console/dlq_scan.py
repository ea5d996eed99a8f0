"""Reading failed jobs across queues for the dead-letter view: bounded, with progress and a cap.

Server-side where the store allows it: ``id:`` is a direct lookup, ``queue:`` limits which queues
are read, pages come from the server newest first. Other terms are checked on each row as it is
read; ``data.`` terms load each payload, so they are capped lower. Async, no Textual.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from backends.contract import JobSummary, QueueRef, Reader
from console.filters import Filter
from console.requeue_planning import _payload

ROW_CAP = 10_000  # failed jobs read per queue
PAYLOAD_CAP = 2_000  # payloads read per queue for data. terms
PAGE = 500


@dataclass
class ScanResult:
    items: list[tuple[QueueRef, JobSummary]] = field(default_factory=list)
    scanned: int = 0
    capped: list[str] = field(default_factory=list)  # queues where the cap stopped the scan
    errors: list[str] = field(default_factory=list)
    cancelled: bool = False


async def scan_failed(targets: list[tuple[QueueRef, Reader]], flt: Filter, now_ms: int,
                      progress: Callable[[int, int], None] | None = None,
                      cancel: asyncio.Event | None = None) -> ScanResult:
    out = ScanResult()
    cap = PAYLOAD_CAP if flt.needs_payload else ROW_CAP
    for queue, reader in targets:
        if not flt.queue_matches(queue):
            continue
        try:
            if flt.ids:
                for job_id in flt.ids:
                    detail = await reader.job(queue, job_id)
                    out.scanned += 1
                    if detail and detail.summary.state == "failed":
                        payload = _payload(detail.data.text if detail.data else None)
                        if flt.matches(queue, detail.summary, now_ms, payload):
                            out.items.append((queue, detail.summary))
                continue
            cursor, seen = None, 0
            while True:
                if cancel is not None and cancel.is_set():
                    out.cancelled = True
                    return out
                page = await reader.page(queue, "failed", cursor, PAGE)
                for job in page.jobs:
                    seen += 1
                    payload: Any = None
                    if flt.needs_payload:
                        detail = await reader.job(queue, job.id)
                        payload = _payload(detail.data.text if detail and detail.data else None)
                    if flt.matches(queue, job, now_ms, payload):
                        out.items.append((queue, job))
                out.scanned += len(page.jobs)
                if progress:
                    progress(out.scanned, len(out.items))
                cursor = page.next_cursor
                if cursor is None:
                    break
                if seen >= cap:
                    out.capped.append(queue.qualified)
                    break
        except Exception as exc:  # one queue failing must not hide the others
            out.errors.append(f"{queue.qualified}: {exc}")
    return out
