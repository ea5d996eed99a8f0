"""The action layer: every mutation goes through here, from the TUI and the CLI alike.

preview (count, sample, warnings, refusal) -> confirmation (by the caller) -> execution in bounded
batches with progress and cancel -> an audit record on the same server. Read-only mode is
enforced here: every mutating call raises ``Refused`` before touching a reader.
No Textual import.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from backends.contract import JobOutcome, JobSummary, QueueRef, Reader, call_with_timeout
from backends.errors import BackendError

BATCH = 500  # jobs per script call / batch: bounded, so the server is never blocked for long
SAMPLE = 5


class Refused(Exception):
    """A mutation refused by read-only mode, the policy, or a missing confirmation (exit 4)."""


def operator_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = os.environ.get("USER", "unknown")
    return f"{user}@{socket.gethostname()}"


@dataclass
class Selection:
    """Which jobs: explicit ids (marks, ``--job``) or every job of ``state`` that finished at or
    before a fixed snapshot time (``--all``), optionally only those older than ``older_than_ms``."""

    queue: QueueRef
    state: str = "failed"
    job_ids: list[str] | None = None
    older_than_ms: int | None = None

    @property
    def is_all(self) -> bool:
        return self.job_ids is None


@dataclass
class Preview:
    action: Literal["retry", "purge"]
    selection: Selection
    count: int
    snapshot_ms: int  # jobs that fail after this instant are never swept in
    sample: list[JobSummary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reset_attempts: bool = False

    def describe(self) -> str:
        q = self.selection.queue
        what = "all" if self.selection.is_all else "the selected"
        age = f" older than {self.selection.older_than_ms // 1000}s" if self.selection.older_than_ms else ""
        return f"{self.action} {what} {self.count} {self.selection.state} jobs{age} of {q.qualified} at {q.connection}"


@dataclass
class Report:
    action: str
    queue: QueueRef
    requested: int
    done: int = 0
    skipped: list[JobOutcome] = field(default_factory=list)
    batches: int = 0
    cancelled: bool = False
    error: str | None = None
    audit_id: str | None = None

    @property
    def complete(self) -> bool:
        return not self.cancelled and self.error is None

    def summary(self) -> str:
        parts = [f"{self.action}: {self.done} of {self.requested} done in {self.batches} batches"]
        if self.skipped:
            by: dict[str, int] = {}
            for o in self.skipped:
                by[o.status] = by.get(o.status, 0) + 1
            parts.append("skipped " + ", ".join(f"{n} {s}" for s, n in sorted(by.items())))
        if self.cancelled:
            parts.append("cancelled; run again to finish the rest")
        if self.error:
            parts.append(f"stopped by an error: {self.error}; nothing done is undone, run again to finish the rest")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action, "connection": self.queue.connection, "backend": self.queue.backend,
            "queue": self.queue.name, "requested": self.requested, "done": self.done,
            "skipped": [o.model_dump() for o in self.skipped], "batches": self.batches,
            "cancelled": self.cancelled, "error": self.error, "complete": self.complete,
            "audit_id": self.audit_id,
        }


Progress = Callable[[int, int], None]  # (done so far, total)


class Actions:
    """Mutations over readers. ``reader_for`` resolves a queue to the reader that holds it."""

    def __init__(self, reader_for: Callable[[QueueRef], Reader], read_only: bool = False,
                 operator: str | None = None, timeout: float = 30.0) -> None:
        self.reader_for = reader_for
        self.read_only = read_only
        self.operator = operator or operator_name()
        self.timeout = timeout

    # -- guards ---------------------------------------------------------------------------
    def _guard(self, what: str, queue: QueueRef, capability: str) -> Reader:
        if self.read_only:
            raise Refused(f"read-only mode: refusing to {what} ({queue.qualified})")
        reader = self.reader_for(queue)
        if not getattr(reader.capabilities, capability):
            raise Refused(f"{queue.backend} cannot {what}")
        return reader

    async def _call(self, coro, what: str):
        return await call_with_timeout(coro, self.timeout, what)

    # -- previews (read only) -------------------------------------------------------------
    def check_allowed(self, action: str, queue: QueueRef) -> None:
        """Raise Refused now (before any prompt) if ``action`` on ``queue`` would be refused."""
        self._guard(action, queue, {"retry": "retry", "purge": "purge"}.get(action, "pause"))

    async def preview(self, action: Literal["retry", "purge"], sel: Selection,
                      reset_attempts: bool = False) -> Preview:
        """What would happen; reads only (allowed in read-only mode, e.g. for --dry-run)."""
        reader = self.reader_for(sel.queue)
        if not getattr(reader.capabilities, "retry" if action == "retry" else "purge"):
            raise Refused(f"{sel.queue.backend} cannot {action} jobs")
        now = await self._server_now(reader)
        snapshot = now - (sel.older_than_ms or 0)
        sample: list[JobSummary] = []
        warnings: list[str] = []
        if sel.is_all:
            count = await self._call(reader.count_finished_before(sel.queue, sel.state, snapshot),
                                     "counting the selection")
            page = await self._call(reader.page(sel.queue, sel.state, None, SAMPLE), "reading a sample")
            sample = [j for j in page.jobs if (j.finished_ms or 0) <= snapshot][:SAMPLE]
            if action == "retry" and sel.queue.backend == "bullmq":
                warnings.append("bulk retry moves jobs to the plain wait list (BullMQ's retryJobs): a job's "
                                "priority is not kept; retry marked jobs (--job) to keep priorities")
        else:
            ids = list(dict.fromkeys(sel.job_ids or []))
            if len(ids) != len(sel.job_ids or []):
                warnings.append("duplicate job ids in the selection were dropped")
            sel.job_ids = ids
            count = len(ids)
            for job_id in ids[:SAMPLE]:
                detail = await self._call(reader.job(sel.queue, job_id), f"reading job {job_id}")
                if detail is not None:
                    sample.append(detail.summary)
        if action == "retry" and not reset_attempts:
            warnings.append("attempts are not reset: each job gets one more attempt (use --reset-attempts "
                            "for its full retry budget)")
        return Preview(action=action, selection=sel, count=count, snapshot_ms=snapshot, sample=sample,
                       warnings=warnings, reset_attempts=reset_attempts)

    async def _server_now(self, reader: Reader) -> int:
        now = await self._call(reader.server_time_ms(), "reading the server clock")
        return now if now is not None else int(time.time() * 1000)

    # -- execution ------------------------------------------------------------------------
    async def execute(self, preview: Preview, progress: Progress | None = None,
                      cancel: asyncio.Event | None = None) -> Report:
        sel = preview.selection
        reader = self._guard(preview.action, sel.queue, "retry" if preview.action == "retry" else "purge")
        report = Report(action=preview.action, queue=sel.queue, requested=preview.count)
        started = time.time()
        try:
            if sel.is_all:
                await self._run_all(reader, preview, report, progress, cancel)
            else:
                await self._run_ids(reader, preview, report, progress, cancel)
        except BackendError as exc:
            report.error = str(exc)
        finally:
            report.audit_id = await self._audit(reader, preview, report, started)
        return report

    async def _run_all(self, reader, preview, report, progress, cancel) -> None:
        sel = preview.selection
        batch_call = reader.retry_batch if preview.action == "retry" else reader.purge_batch
        while True:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                return
            outcome = await self._call(batch_call(sel.queue, sel.state, preview.snapshot_ms, BATCH),
                                       f"{preview.action} batch")
            report.batches += 1
            report.done += outcome.done
            if progress:
                progress(report.done, report.requested)
            if not outcome.more or outcome.done == 0:
                return

    async def _run_ids(self, reader, preview, report, progress, cancel) -> None:
        sel = preview.selection
        ids = sel.job_ids or []
        for start in range(0, len(ids), BATCH):
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                return
            chunk = ids[start:start + BATCH]
            if preview.action == "retry":
                outcomes = await self._call(reader.retry_jobs(sel.queue, chunk, sel.state, preview.reset_attempts),
                                            "retry batch")
            else:
                outcomes = await self._call(reader.remove_jobs(sel.queue, chunk, sel.state), "purge batch")
            report.batches += 1
            report.done += sum(1 for o in outcomes if o.ok)
            report.skipped += [o for o in outcomes if not o.ok]
            if progress:
                progress(report.done, report.requested)

    # -- pause / resume -------------------------------------------------------------------
    async def set_paused(self, queues: list[QueueRef], paused: bool, remember: bool = False) -> list[dict[str, Any]]:
        """Pause or resume queues one by one (not atomic across queues); per-queue results.
        With ``remember`` (global pause) the queues paused here are recorded in the console store,
        so that a global resume resumes exactly those."""
        verb = "pause" if paused else "resume"
        for q in queues:
            self._guard(f"{verb} queues", q, "pause")
        results = []
        for q in queues:
            reader = self.reader_for(q)
            try:
                await self._call(reader.set_paused(q, paused), f"{verb} {q.qualified}")
                result = {"queue": q.name, "backend": q.backend, "connection": q.connection, "ok": True}
                if remember:
                    store = reader.console_store()
                    if store is not None:
                        if paused:
                            await store.paused_add([store_key(q)], self.operator)
                        else:
                            await store.paused_remove([store_key(q)])
            except BackendError as exc:
                result = {"queue": q.name, "backend": q.backend, "connection": q.connection, "ok": False,
                          "error": str(exc)}
            results.append(result)
            store = reader.console_store()
            if store is not None:
                try:
                    await store.audit_append({"at": int(time.time() * 1000), "who": self.operator, "action": verb,
                                              "queue": q.name, "backend": q.backend, "connection": q.connection,
                                              "count": 1, "result": "ok" if result["ok"] else result.get("error"),
                                              "global": remember})
                except BackendError:
                    pass
        return results

    async def _audit(self, reader: Reader, preview: Preview, report: Report, started: float) -> str | None:
        store = reader.console_store()
        if store is None:
            return None
        sel = preview.selection
        record = {
            "at": int(started * 1000), "who": self.operator, "action": preview.action,
            "queue": sel.queue.name, "backend": sel.queue.backend, "connection": sel.queue.connection,
            "state": sel.state, "selection": "all" if sel.is_all else f"{len(sel.job_ids or [])} ids",
            "snapshot_ms": preview.snapshot_ms, "requested": report.requested, "count": report.done,
            "skipped": len(report.skipped), "batches": report.batches,
            "result": "ok" if report.complete else ("cancelled" if report.cancelled else f"error: {report.error}"),
            "reset_attempts": preview.reset_attempts,
            "job_ids": (sel.job_ids or [])[:100],
        }
        try:
            return await self._call(store.audit_append(record), "writing the audit record")
        except BackendError as exc:
            report.error = (report.error + "; " if report.error else "") + f"audit record not written: {exc}"
            return None


def store_key(q: QueueRef) -> str:
    return f"{q.backend}\x1f{q.namespace}\x1f{q.name}"


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w`` -> milliseconds (ValueError when malformed)."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    text = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            number = text[: -len(unit)]
            try:
                value = float(number)
            except ValueError:
                break
            if value < 0:
                break
            return int(value * units[unit])
    raise ValueError(f"bad duration {text!r} (examples: 90s, 15m, 2h, 7d)")
