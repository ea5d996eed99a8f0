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
from backends.errors import BackendError, BackendTimeout, ConnectError
from console import formatting as fmt
from console import requeue_planning as rp
from console.policy import Force, LedgerEntry, Plan, Policy, default_policy, plan as make_plan

BATCH = 500  # jobs per batch of explicit ids (one pipelined round trip of per-job scripts)
BULK_BATCH = 1000  # jobs per bulk script call (BullMQ's own retryJobs/clean default): bounded
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
    #: the policy plan (retry only); None when no policy rule applies and "all" runs in bulk
    plan: Plan | None = None
    #: the selection was "all" and was listed to be planned job by job
    from_all: bool = False

    def describe(self) -> str:
        q = self.selection.queue
        what = "all" if self.selection.is_all or self.from_all else "the selected"
        age = f" older than {fmt.duration_ms(self.selection.older_than_ms)}" if self.selection.older_than_ms else ""
        jobs = fmt.plural(self.count, f"{self.selection.state} job")
        return f"{self.action} {what} {jobs}{age} of {q.qualified} at {q.connection}"


@dataclass
class Report:
    """What a run did, counted on the server: ``done`` includes a batch whose reply was lost (the
    connection dropped or timed out while it ran), recounted once the server answered again."""

    action: str
    queue: QueueRef
    requested: int
    done: int = 0
    skipped: list[JobOutcome] = field(default_factory=list)
    batches: int = 0
    cancelled: bool = False
    error: str | None = None
    audit_id: str | None = None
    refused: int = 0  # jobs the policy refused (reported in ``skipped`` with the reason)
    plan_summary: dict[str, Any] | None = None
    #: jobs of a batch whose reply never came, found done by a recount on the server
    recounted: int = 0
    #: a batch's outcome could not be recounted (the server did not answer again in time)
    unknown: int = 0
    #: why the audit record could not be written (None: written, or this store keeps none)
    audit_error: str | None = None
    #: jobs of the batch being sent now (0 between batches): unknown if the run is interrupted
    in_flight: int = 0

    @property
    def complete(self) -> bool:
        return not self.cancelled and self.error is None

    @property
    def to_do(self) -> int:
        """The jobs this run meant to change: the selection less what the policy refused."""
        return max(self.requested - self.refused, 0)

    def status(self) -> str:
        """``N of M, done`` / ``N of M, cancelled`` / ``N of M, stopped by: <error>`` (report and audit)."""
        head = f"{self.done} of {self.to_do}"
        if self.cancelled:
            return f"{head}, cancelled"
        if self.error:
            return f"{head}, stopped by: {self.error}"
        return f"{head}, done"

    def summary(self) -> str:
        parts = [f"{self.action}: {self.status()}", fmt.plural(self.batches, "batch")]
        if self.refused:
            parts.append(f"{self.refused} refused by the policy (of {self.requested} selected)")
        others = [o for o in self.skipped if not o.status.startswith("refused")]
        if others:
            by: dict[str, int] = {}
            for o in others:
                by[o.status] = by.get(o.status, 0) + 1
            parts.append("skipped " + ", ".join(f"{n} {s}" for s, n in sorted(by.items())))
        if self.recounted:
            parts.append(f"{self.recounted} of them in the batch the error interrupted (recounted on the server)")
        if self.unknown:
            parts.append(f"the interrupted batch of up to {self.unknown} jobs could not be recounted: "
                         "it may or may not have run")
        if not self.complete:
            parts.append("nothing done is undone; run again to finish the rest")
        if self.audit_error:
            parts.append(f"audit record NOT written: {self.audit_error}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action, "connection": self.queue.connection, "backend": self.queue.backend,
            "queue": self.queue.name, "requested": self.requested, "done": self.done, "to_do": self.to_do,
            "status": self.status(),
            "skipped": [o.model_dump() for o in self.skipped], "batches": self.batches,
            "cancelled": self.cancelled, "error": self.error, "stopped_by": self.error, "complete": self.complete,
            "recounted": self.recounted, "unknown": self.unknown,
            "audit_id": self.audit_id, "audit_error": self.audit_error, "refused": self.refused,
            "plan": self.plan_summary,
        }


def totals(previews: list[Preview]) -> dict[str, int]:
    """Jobs selected, and what a run would do with them: now, later (paced or scheduled by the
    policy), refused by the policy -- the one count behind dry runs and confirmations."""
    out = {"selected": 0, "now": 0, "later": 0, "refused": 0}
    for p in previews:
        out["selected"] += p.count
        if p.plan is None:
            out["now"] += p.count
        else:
            s = p.plan.summary
            out["now"] += s.now
            out["later"] += s.later
            out["refused"] += s.refused
    return out


Progress = Callable[[int, int], None]  # (done so far, total)


class Actions:
    """Mutations over readers. ``reader_for`` resolves a queue to the reader that holds it."""

    def __init__(self, reader_for: Callable[[QueueRef], Reader], read_only: bool = False,
                 operator: str | None = None, timeout: float = 30.0, policy: Policy | None = None,
                 force: Force | bool | str | None = None, reconnect_wait: float | None = None) -> None:
        self.reader_for = reader_for
        self.read_only = read_only
        self.operator = operator or operator_name()
        self.timeout = timeout
        self.policy = policy or default_policy()
        self.force = Force.parse(force)
        #: after a dropped connection, how long to wait for the server to answer again (to recount
        #: the interrupted batch and write the audit record)
        self.reconnect_wait = timeout if reconnect_wait is None else reconnect_wait

    # -- guards ---------------------------------------------------------------------------
    def _guard(self, what: str, queue: QueueRef, capability: str) -> Reader:
        if self.read_only:
            raise Refused(f"read-only mode: refusing to {what} ({queue.qualified})")
        reader = self.reader_for(queue)
        caps = reader.queue_capabilities(queue)
        if not getattr(caps, capability):
            raise Refused(caps.read_only_reason or f"{queue.backend} cannot {what}")
        return reader

    async def _call(self, coro, what: str):
        return await call_with_timeout(coro, self.timeout, what)

    # -- previews (read only) -------------------------------------------------------------
    def check_allowed(self, action: str, queue: QueueRef) -> None:
        """Raise Refused now (before any prompt) if ``action`` on ``queue`` would be refused."""
        self._guard(action, queue, {"retry": "retry", "purge": "purge", "promote": "promote",
                                    "cancel": "cancel"}.get(action, "pause"))

    async def preview(self, action: Literal["retry", "purge"], sel: Selection,
                      reset_attempts: bool = False) -> Preview:
        """What would happen; reads only (allowed in read-only mode, e.g. for --dry-run)."""
        reader = self.reader_for(sel.queue)
        caps = reader.queue_capabilities(sel.queue)
        if not getattr(caps, "retry" if action == "retry" else "purge"):
            raise Refused(caps.read_only_reason or f"{sel.queue.backend} cannot {action} jobs")
        now = await self._server_now(reader)
        snapshot = now - (sel.older_than_ms or 0)
        sample: list[JobSummary] = []
        warnings: list[str] = []
        if sel.is_all:
            count = await self._call(reader.count_finished_before(sel.queue, sel.state, snapshot),
                                     "counting the selection")
            page = await self._call(reader.page(sel.queue, sel.state, None, SAMPLE), "reading a sample")
            sample = [j for j in page.jobs if (j.finished_ms or 0) <= snapshot][:SAMPLE]
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
        planned = action == "retry" and not rp.is_trivial(self.policy, sel.queue)
        if action == "retry":
            # what this store's retry does to priorities and attempts, in its own words
            warnings += reader.retry_notes(sel.queue, bulk=sel.is_all and not planned, reset_attempts=reset_attempts)
        preview = Preview(action=action, selection=sel, count=count, snapshot_ms=snapshot, sample=sample,
                          warnings=warnings, reset_attempts=reset_attempts)
        if planned:
            await self._plan_preview(reader, preview, now)
        return preview

    async def _plan_preview(self, reader: Reader, preview: Preview, now: int) -> None:
        """Plan every job one by one: list "all" into explicit ids (bounded), read the ledger."""
        sel = preview.selection
        need_payload = self.policy.rules_for(sel.queue).fairness.key is not None
        if sel.is_all:
            # each reader call has its own timeout inside: a big selection may take longer in all
            candidates, capped = await rp.candidates_for_state(reader, sel.queue, sel.state, preview.snapshot_ms,
                                                               need_payload, timeout=self.timeout)
            if capped:
                preview.warnings.append(f"the selection is larger than {rp.PLAN_CAP:,} jobs: only the newest "
                                        f"{rp.PLAN_CAP:,} are planned; run again for the rest")
            sel.job_ids = [c.job_id for c in candidates]
            preview.from_all = True
        else:
            candidates, missing = await rp.candidates_for_ids(reader, sel.queue, sel.job_ids or [], need_payload,
                                                              timeout=self.timeout)
            if missing:
                preview.warnings.append(f"{len(missing)} selected jobs do not exist: {', '.join(missing[:5])}")
        preview.plan = await self._plan(reader, sel.queue, candidates, now)
        preview.count = len(candidates)
        sel.job_ids = [d.job_id for d in preview.plan.decisions]

    async def _plan(self, reader: Reader, queue: QueueRef, candidates, now_ms: int) -> Plan:
        ledger = await self._call(rp.read_ledger(reader.console_store(), self.policy, now_ms, queue.connection),
                                  "reading the requeue ledger")
        return make_plan(candidates, self.policy, ledger, rp.to_datetime(now_ms), force=self.force,
                         backend_caps=rp.caps_for(reader), rng_seed=0)

    async def _server_now(self, reader: Reader) -> int:
        now = await self._call(reader.server_time_ms(), "reading the server clock")
        return now if now is not None else int(time.time() * 1000)

    # -- execution ------------------------------------------------------------------------
    async def execute(self, preview: Preview, progress: Progress | None = None,
                      cancel: asyncio.Event | None = None) -> Report:
        """Run a confirmed preview. ``cancel`` stops the run between batches (never inside one);
        the report and the audit record then say "N of M, cancelled". A backend error stops it
        too ("N of M, stopped by: ..."): a batch whose reply was lost is recounted on the server
        once it answers again, and the audit record is written then."""
        sel = preview.selection
        reader = self._guard(preview.action, sel.queue, "retry" if preview.action == "retry" else "purge")
        report = Report(action=preview.action, queue=sel.queue, requested=preview.count)
        started = time.time()
        try:
            if preview.plan is not None:
                await self._run_plan(reader, preview, report, progress, cancel)
            elif sel.is_all:
                await self._run_all(reader, preview, report, progress, cancel)
            else:
                await self._run_ids(reader, preview, report, progress, cancel)
        except BackendError as exc:
            report.error = str(exc)
        except Refused as exc:  # e.g. the plan changed since the preview: nothing of it ran
            report.error = f"refused: {exc}"
            raise
        except asyncio.CancelledError:
            # the task itself was cancelled (the app or the process is going away), not a cancel
            # request: the batch in flight may or may not have run
            report.cancelled = True
            report.error = report.error or "interrupted"
            report.unknown = report.unknown or report.in_flight
            raise
        finally:
            report.audit_id = await self._audit(reader, preview, report, started)
        return report

    async def execute_many(self, previews: list[Preview], progress: Progress | None = None,
                           cancel: asyncio.Event | None = None) -> list[Report | BaseException]:
        """Run several confirmed previews; one report (or the exception that refused one) per
        preview, in order. Planned retries run side by side, each on its own plan's clock, so
        their paced starts interleave across queues as the plans have them (rates and budgets are
        per queue; docs/policy.md); the rest run one after another first."""
        done = [0] * len(previews)
        total = sum(p.count for p in previews)

        def part(i: int) -> Progress:
            def report_progress(n: int, _total: int) -> None:
                done[i] = n
                if progress:
                    progress(sum(done), total)
            return report_progress

        async def one(i: int) -> Report | BaseException:
            try:
                return await self.execute(previews[i], progress=part(i), cancel=cancel)
            except (Refused, BackendError) as exc:
                return exc

        out: list[Report | BaseException | None] = [None] * len(previews)
        planned = [i for i, p in enumerate(previews) if p.plan is not None]
        gone: set[str] = set()  # connections that stopped a run and did not answer again
        for i, p in enumerate(previews):
            if p.plan is not None:
                continue
            conn = p.selection.queue.connection
            if conn in gone:
                out[i] = BackendError(f"not started: {conn} stopped answering during this run")
                continue
            out[i] = result = await one(i)
            if isinstance(result, Report) and result.error and result.audit_error:
                gone.add(conn)
        for i, result in zip(planned, await asyncio.gather(*(one(i) for i in planned))):
            out[i] = result
        return [r for r in out if r is not None]

    async def _server_back(self, reader: Reader) -> bool:
        """Wait (up to ``reconnect_wait`` seconds) until the server answers again."""
        deadline = time.monotonic() + self.reconnect_wait
        while True:
            left = deadline - time.monotonic()
            try:
                await call_with_timeout(reader.server_time_ms(), max(min(self.timeout, left), 0.5),
                                        "waiting for the server")
                return True
            except BackendError:
                if deadline - time.monotonic() <= 0:
                    return False
                await asyncio.sleep(min(0.25, max(deadline - time.monotonic(), 0)))

    async def _recount(self, reader: Reader, preview: Preview, report: Report, before: int, batch: int) -> None:
        """A bulk batch's reply was lost: what it did is the drop of the selection's count on the
        server since the last batch that answered (the batch is atomic: all of it ran, or none; a
        batch moves at most ``batch`` jobs)."""
        sel = preview.selection
        if await self._server_back(reader):
            try:
                after = await self._call(reader.count_finished_before(sel.queue, sel.state, preview.snapshot_ms),
                                         "recounting the selection")
            except BackendError:
                report.unknown = batch
                return
            moved = min(max(before - after, 0), batch)
            report.done += moved
            report.recounted += moved
            if moved:
                report.batches += 1
        else:
            report.unknown = batch

    async def _run_all(self, reader, preview, report, progress, cancel) -> None:
        sel = preview.selection
        batch_call = reader.retry_batch if preview.action == "retry" else reader.purge_batch
        # counted once (the selection only shrinks: a job that fails again is past the snapshot),
        # then kept by what each batch reports, so that a batch whose reply is lost can be recounted
        remaining = await self._call(reader.count_finished_before(sel.queue, sel.state, preview.snapshot_ms),
                                     "counting the selection")
        while remaining > 0:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                return
            report.in_flight = min(remaining, BULK_BATCH)
            try:
                outcome = await self._call(batch_call(sel.queue, sel.state, preview.snapshot_ms, BULK_BATCH),
                                           f"{preview.action} batch")
            except (ConnectError, BackendTimeout):
                report.in_flight = 0
                await self._recount(reader, preview, report, remaining, min(remaining, BULK_BATCH))
                raise
            report.in_flight = 0
            report.batches += 1
            report.done += outcome.done
            remaining = max(remaining - outcome.done, 0) if outcome.more else 0
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
            report.in_flight = len(chunk)
            try:
                if preview.action == "retry":
                    outcomes = await self._call(reader.retry_jobs(sel.queue, chunk, sel.state, preview.reset_attempts),
                                                "retry batch")
                else:
                    outcomes = await self._call(reader.remove_jobs(sel.queue, chunk, sel.state), "purge batch")
            except (ConnectError, BackendTimeout):
                # each job is atomic, but which of the chunk ran before the reply was lost is not
                # known (a job may have left the state for another reason): say so
                report.unknown, report.in_flight = len(chunk), 0
                raise
            report.in_flight = 0
            report.batches += 1
            report.done += sum(1 for o in outcomes if o.ok)
            report.skipped += [o for o in outcomes if not o.ok]
            if progress:
                progress(report.done, report.requested)

    async def _run_plan(self, reader, preview, report, progress, cancel) -> None:
        """Re-plan with a fresh ledger; refuse if the plan changed; then run it in order: "now"
        jobs in batches, "later" jobs when their time comes (paced by the console), recording
        each requeue in the shared ledger as it happens."""
        sel = preview.selection
        old = preview.plan
        candidates, _ = await rp.candidates_for_ids(
            reader, sel.queue, [d.job_id for d in old.by_index()],
            self.policy.rules_for(sel.queue).fairness.key is not None, timeout=self.timeout)
        now_ms = await self._server_now(reader)
        fresh = await self._plan(reader, sel.queue, candidates, now_ms)
        if fresh.fingerprint() != old.fingerprint():
            raise Refused("the plan changed since the preview (jobs moved, or another operator requeued "
                          "some of them): preview again")
        report.plan_summary = fresh.summary.to_dict()
        report.skipped += [JobOutcome(job_id=d.job_id, ok=False, status=f"refused: {d.reason}")
                           for d in fresh.refused]
        report.refused = len(fresh.refused)
        store = reader.console_store()
        start_wall = time.monotonic()
        pending: list = []

        async def flush() -> None:
            if not pending:
                return
            ids = [d.job_id for d in pending]
            report.in_flight = len(ids)
            try:
                outcomes = await self._call(reader.retry_jobs(sel.queue, ids, sel.state, preview.reset_attempts,
                                                              **_timeout_kw(pending[0])), "retry batch")
            except (ConnectError, BackendTimeout):
                report.in_flight = 0
                await self._recount_planned(reader, sel.queue, sel.state, list(pending), report, store)
                pending.clear()
                raise
            report.in_flight = 0
            executed = rp.to_datetime(await self._server_now(reader))
            ok = {o.job_id for o in outcomes if o.ok}
            await self._call(rp.append_ledger(store, [
                LedgerEntry.make(d.queue, d.job_id, executed, run_at=executed, operator=self.operator)
                for d in pending if d.job_id in ok]), "writing the requeue ledger")
            report.batches += 1
            report.done += len(ok)
            report.skipped += [o for o in outcomes if not o.ok]
            pending.clear()
            if progress:
                progress(report.done, report.requested)

        async def schedule(d) -> None:
            """A later requeue the store schedules itself: retried now, to start at its time."""
            now_ms = await self._server_now(reader)
            run_at = now_ms + max((d.delay_ms or 0) - int((time.monotonic() - start_wall) * 1000), 0)
            outcomes = await self._call(reader.retry_jobs(sel.queue, [d.job_id], sel.state, preview.reset_attempts,
                                                          run_at_ms=run_at, **_timeout_kw(d)), "scheduled retry")
            executed = rp.to_datetime(now_ms)
            if outcomes and outcomes[0].ok:
                await self._call(rp.append_ledger(store, [LedgerEntry.make(
                    d.queue, d.job_id, executed, run_at=rp.to_datetime(run_at), operator=self.operator)]),
                    "writing the requeue ledger")
                report.done += 1
            else:
                report.skipped += [o for o in outcomes if not o.ok]
            report.batches += 1
            if progress:
                progress(report.done, report.requested)

        for d in fresh.accepted:
            if cancel is not None and cancel.is_set():
                await flush()
                report.cancelled = True
                return
            if d.mode == "delayed":
                await schedule(d)
                continue
            wait_s = (d.delay_ms or 0) / 1000 - (time.monotonic() - start_wall)
            if wait_s > 0:
                await flush()
                if await _sleep_or_cancel(wait_s, cancel):
                    report.cancelled = True
                    return
            if pending and d.job_timeout_s != pending[0].job_timeout_s:
                await flush()  # one batch, one timeout
            pending.append(d)
            if len(pending) >= BATCH:
                await flush()
        await flush()

    async def _recount_planned(self, reader: Reader, queue: QueueRef, state: str, pending: list,
                               report: Report, store) -> None:
        """A planned batch's reply was lost. Its jobs were all in ``state`` when the run re-planned:
        each one no longer there was retried by this batch (recorded in the ledger as well)."""
        if not await self._server_back(reader):
            report.unknown = len(pending)
            return
        try:
            moved = []
            for d in pending:
                detail = await self._call(reader.job(queue, d.job_id), f"reading job {d.job_id}")
                if detail is not None and detail.summary.state != state:
                    moved.append(d)
            executed = rp.to_datetime(await self._server_now(reader))
            await self._call(rp.append_ledger(store, [
                LedgerEntry.make(d.queue, d.job_id, executed, run_at=executed, operator=self.operator)
                for d in moved]), "writing the requeue ledger")
        except BackendError:
            report.unknown = len(pending)
            return
        report.done += len(moved)
        report.recounted += len(moved)
        if moved:
            report.batches += 1

    # -- promote / cancel (explicit ids) ---------------------------------------------------
    async def apply_to_ids(self, action: Literal["promote", "cancel"], queue: QueueRef, job_ids: list[str],
                           progress: Progress | None = None) -> Report:
        """Promote delayed jobs to now, or cancel jobs (pg-boss), per job in bounded batches."""
        reader = self._guard(action, queue, action)
        ids = list(dict.fromkeys(job_ids))
        report = Report(action=action, queue=queue, requested=len(ids))
        started = time.time()
        call = reader.promote_jobs if action == "promote" else reader.cancel_jobs
        try:
            for start in range(0, len(ids), BATCH):
                outcomes = await self._call(call(queue, ids[start:start + BATCH]), f"{action} batch")
                report.batches += 1
                report.done += sum(1 for o in outcomes if o.ok)
                report.skipped += [o for o in outcomes if not o.ok]
                if progress:
                    progress(report.done, report.requested)
        except BackendError as exc:
            report.error = str(exc)
        finally:
            store = reader.console_store()
            if store is not None:
                report.audit_id = await self._append_audit(reader, store, {
                    "at": int(started * 1000), "who": self.operator, "action": action, "queue": queue.name,
                    "backend": queue.backend, "connection": queue.connection, "requested": report.requested,
                    "count": report.done, "done": report.done, "to_do": report.to_do, "skipped": len(report.skipped),
                    "job_ids": ids[:100], "result": report.status(), "stopped_by": report.error}, report)
        return report

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
            store = reader.console_store()
            try:
                note = await self._call(reader.set_paused(q, paused), f"{verb} {q.qualified}")
                result = {"queue": q.name, "backend": q.backend, "connection": q.connection, "ok": True}
                if isinstance(note, str) and note:
                    result["note"] = note
            except BackendError as exc:
                result = {"queue": q.name, "backend": q.backend, "connection": q.connection, "ok": False,
                          "error": str(exc)}
            if result["ok"] and remember and store is not None:
                # the queue did change state: a failed note is a warning, not a failed pause
                try:
                    if paused:
                        await self._call(store.paused_add([store_key(q)], self.operator), "remembering the pause")
                    else:
                        await self._call(store.paused_remove([store_key(q)]), "forgetting the pause")
                except BackendError as exc:
                    result["warning"] = (f"{verb}d, but not recorded in the console store ({exc}): "
                                         + ("resume --all will not resume it" if paused else "it may be resumed again"))
            results.append(result)
            if store is not None:
                try:
                    await store.audit_append({"at": int(time.time() * 1000), "who": self.operator, "action": verb,
                                              "queue": q.name, "backend": q.backend, "connection": q.connection,
                                              "count": 1, "result": "ok" if result["ok"] else result.get("error"),
                                              "global": remember})
                except BackendError:
                    pass
        return results

    async def forget_paused(self, reader: Reader, keys: list[str]) -> None:
        """Drop global-pause records of queues that no longer exist (resume --all found none)."""
        store = reader.console_store()
        if store is not None and keys:
            await self._call(store.paused_remove(keys), "forgetting vanished queues")

    async def _audit(self, reader: Reader, preview: Preview, report: Report, started: float) -> str | None:
        """One record per run, written also when the run stopped on an error: if the server does not
        answer, it is written once it answers again (within ``reconnect_wait``); if it cannot be
        written at all, the report says so."""
        store = reader.console_store()
        if store is None:
            return None
        sel = preview.selection
        record = {
            "at": int(started * 1000), "who": self.operator, "action": preview.action,
            "queue": sel.queue.name, "backend": sel.queue.backend, "connection": sel.queue.connection,
            "state": sel.state, "selection": "all" if sel.is_all else f"{len(sel.job_ids or [])} ids",
            "snapshot_ms": preview.snapshot_ms, "requested": report.requested, "count": report.done,
            "done": report.done, "to_do": report.to_do,
            "skipped": len(report.skipped), "batches": report.batches,
            "result": report.status(), "cancelled": report.cancelled, "stopped_by": report.error,
            "recounted": report.recounted, "unknown": report.unknown,
            "reset_attempts": preview.reset_attempts,
            "job_ids": (sel.job_ids or [])[:100],
            "policy": report.plan_summary, "refused": report.refused, "force": self.force.value,
        }
        return await self._append_audit(reader, store, record, report)

    async def _append_audit(self, reader: Reader, store, record: dict[str, Any], report: Report) -> str | None:
        for attempt in (1, 2):
            try:
                return await self._call(store.audit_append(record), "writing the audit record")
            except Exception as exc:  # a store that lets a driver error through must not lose the report
                if attempt == 1 and await self._server_back(reader):
                    continue
                report.audit_error = str(exc) if isinstance(exc, BackendError) else type(exc).__name__
                return None
        return None


async def _sleep_or_cancel(seconds: float, cancel: asyncio.Event | None) -> bool:
    """Sleep; True when cancelled meanwhile."""
    if cancel is None:
        await asyncio.sleep(seconds)
        return False
    try:
        await asyncio.wait_for(cancel.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


def store_key(q: QueueRef) -> str:
    return f"{q.backend}\x1f{q.namespace}\x1f{q.name}"


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``2h``, ``1h30m``, ``7d``, ``1w`` -> milliseconds (ValueError when malformed or
    negative). The one duration grammar of the console: the policy engine's."""
    from console.policy import parse_duration as seconds

    value = seconds(text)
    if value < 0:
        raise ValueError(f"bad duration {text!r}: must not be negative")
    return int(value * 1000)


def _timeout_kw(decision) -> dict[str, Any]:
    """The policy's job timeout for a retry, passed only when planned (only stores whose
    capabilities say ``job_timeout`` get one planned)."""
    return {"job_timeout_s": decision.job_timeout_s} if decision.job_timeout_s is not None else {}
