"""The reader contract: what every queue-system reader offers, and the records it returns.

Plain Python and pydantic; no Textual. The TUI and the CLI only ever see these types.

A reader is bound to one connection (one Redis or PostgreSQL server) and one queue system on it.
Every method is a coroutine; the caller wraps each call in a timeout (see ``call_with_timeout``).
"""
from __future__ import annotations

import abc
import asyncio
from typing import Any, Awaitable, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, Field

from backends.errors import BackendTimeout, UnknownState, Unsupported

#: Canonical states, in display order. A backend may add its own (e.g. ``waiting_children``).
CANONICAL_STATES: tuple[str, ...] = ("waiting", "delayed", "active", "completed", "failed", "cancelled")

T = TypeVar("T")


async def call_with_timeout(coro: Awaitable[T], seconds: float, what: str) -> T:
    """Await ``coro`` for at most ``seconds``; raise BackendTimeout naming ``what`` otherwise."""
    try:
        return await asyncio.wait_for(coro, seconds)
    except asyncio.TimeoutError:
        raise BackendTimeout(f"{what} timed out after {seconds:g} s") from None


class Capabilities(BaseModel):
    """What a reader can do. The UI offers only what is True here; it never fakes the rest."""

    states: tuple[str, ...] = CANONICAL_STATES
    job_logs: bool = False
    throughput: bool = False
    latency: bool = False
    # Mutations (filled in by the actions layer of later issues).
    pause: bool = False
    retry: bool = False
    purge: bool = False
    promote: bool = False
    cancel: bool = False
    #: a retry can be scheduled for a later time by the store itself (pg-boss start_after,
    #: Gello's scheduled set); otherwise the console paces later requeues itself
    delayed_retry: bool = False
    #: a retry can set how long the requeued job may run (pg-boss expire_in / expire_seconds), so
    #: the policy's ``timeouts.job_timeout`` applies
    job_timeout: bool = False
    payload_search: bool = False
    #: parent/child links of job flows can be read (``Reader.flow``)
    flows: bool = False
    #: what a queue's namespace is called in this store ("prefix" for Redis keys, "schema" for SQL)
    namespace_label: str = "namespace"
    read_only_reason: str | None = None

    def read_only(self, reason: str) -> "Capabilities":
        """The same reading capabilities with every mutation off."""
        return self.model_copy(update={"pause": False, "retry": False, "purge": False, "promote": False,
                                       "cancel": False, "delayed_retry": False, "job_timeout": False,
                                       "read_only_reason": reason})


class QueueRef(BaseModel):
    """One queue on one connection. ``namespace`` is the BullMQ key prefix or pg-boss schema."""

    model_config = {"frozen": True}

    connection: str  # redacted URL, never a password
    backend: str  # "bullmq", "bull", "pgboss", ...
    namespace: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{self.backend}:{self.name}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.connection, self.backend, self.namespace, self.name)


class QueueStatus(BaseModel):
    """Counts and flags of one queue at one instant."""

    queue: QueueRef
    paused: bool = False
    #: canonical state -> count; None where the backend has no such state.
    counts: dict[str, int | None] = Field(default_factory=dict)
    #: the backend's own state names -> count, equal to what the library itself reports.
    native: dict[str, int] = Field(default_factory=dict)
    #: canonical states whose number is estimated or capped (the UI labels them).
    estimated: list[str] = Field(default_factory=list)
    #: free-form facts worth showing (library version hint, global concurrency, ...).
    info: dict[str, str] = Field(default_factory=dict)
    #: server clock (ms) when the counts were taken.
    server_time_ms: int | None = None
    #: why this queue's keys/rows could not be read (e.g. a state key of the wrong type); its counts
    #: are then empty. Shown apart from the other queues, which are read normally.
    malformed: str | None = None
    #: how long the queue's rate limiter still holds jobs back (BullMQ's getRateLimitTtl; 0 = not
    #: limited); None where the store has no rate limiter.
    rate_limit_ttl_ms: int | None = None


class Throughput(BaseModel):
    """Finished jobs of one queue per second since the previous sample."""

    queue: QueueRef
    at_ms: int
    interval_s: float
    completed_per_s: float
    failed_per_s: float
    #: events: a queue's event stream; metrics: a library's own counters; finished: rows counted by
    #: their finish time (e.g. pg-boss completed_on windows); none: not available
    source: Literal["events", "metrics", "finished", "none"] = "none"
    #: True when the sample hit a read cap and the rate is a lower bound.
    capped: bool = False


class History(BaseModel):
    """A queue's throughput before the console started, read once from what the store keeps
    (BullMQ's per-minute ``metrics`` points, pg-boss finish times): one record per queue, the
    points as plain number lists (the poller copies them into its ring), oldest first."""

    queue: QueueRef
    #: end of each point's window (server clock, ms), oldest first
    at_ms: list[int] = Field(default_factory=list)
    completed_per_s: list[float] = Field(default_factory=list)
    failed_per_s: list[float] = Field(default_factory=list)
    #: seconds each point covers (60 for BullMQ's per-minute metrics)
    step_s: float = 60.0
    #: where the points come from, as ``Throughput.source``
    source: Literal["events", "metrics", "finished", "none"] = "none"
    #: why there is no history (e.g. "metrics not enabled on the workers"): shown instead of a chart
    unavailable: str | None = None
    #: set when the history was cut to a bounded read (e.g. "sample of the last 20,000 finishes")
    note: str | None = None


class Latency(BaseModel):
    """Wait and processing time over the most recent completed jobs (milliseconds)."""

    queue: QueueRef
    sample_size: int
    wait_p50_ms: float | None = None
    wait_p95_ms: float | None = None
    run_p50_ms: float | None = None
    run_p95_ms: float | None = None


class QueueGauges(BaseModel):
    """Monitoring numbers of one queue beyond its counts (read by the metrics exporter), each
    bounded in cost per queue. None: the store does not know it (never a guess)."""

    queue: QueueRef
    #: seconds the job next in line has been waiting (the oldest of the waiting jobs a reader can
    #: see without a scan); 0.0 when nothing waits
    oldest_waiting_s: float | None = None
    #: workers connected for this queue, counted the way the library's own API counts them
    workers: int | None = None


class Blob(BaseModel):
    """A piece of untrusted queue data: kept raw (decoded), cut at a limit, with its true size."""

    text: str
    size: int  # bytes in the store
    truncated: bool = False
    is_binary: bool = False


class JobSummary(BaseModel):
    """One row of a job list: cheap fields only (no payload)."""

    id: str
    state: str  # canonical
    native_state: str
    name: str | None = None
    created_ms: int | None = None
    processed_ms: int | None = None
    finished_ms: int | None = None
    attempts_made: int | None = None
    priority: int | None = None
    delay_ms: int | None = None
    failed_reason: Blob | None = None
    #: why this row could not be read as a job of its library (no job hash, a key of the wrong
    #: type, a field that is not a number, ...), naming the raw key; None for a well-formed job.
    #: A malformed row is listed (so a page never hides it) and never retried; whether it can be
    #: purged is the reader's call (BullMQ leaves it out of ``summaries``; Gello purges its raw member).
    malformed: str | None = None

    @property
    def reason_text(self) -> str:
        """The failure reason as read (cut for a row), "" when there is none."""
        return self.failed_reason.text if self.failed_reason else ""


class FailedRow(NamedTuple):
    """A failed job with only what filtering and grouping by error need: built without validation,
    so that 100,000 of them cost little (``Reader.failed_rows``). ``reason`` is untrusted text cut
    like a row's (backends.blob.ROW_LIMIT); a job whose fields cannot be read has None there."""

    id: str
    name: str | None
    finished_ms: int | None
    reason: str | None

    @property
    def reason_text(self) -> str:
        return self.reason or ""


class FailedRows(NamedTuple):
    """One server-side window of ``FailedRow``s: the same cursors as ``Reader.page(queue, "failed")``."""

    rows: list[FailedRow]
    next_cursor: str | None
    total: int | None


class LogLines(BaseModel):
    lines: list[str]
    total: int


class JobDetail(BaseModel):
    """Everything about one job, loaded only for the detail view."""

    summary: JobSummary
    data: Blob | None = None
    options: Blob | None = None
    return_value: Blob | None = None
    progress: str | None = None
    #: newest first
    stacktrace: list[Blob] = Field(default_factory=list)
    logs: LogLines | None = None
    attempts_started: int | None = None
    max_attempts: int | None = None
    extra: dict[str, str] = Field(default_factory=dict)


#: children of one flow parent listed at most (a parent may have 100,000): the rest are counted
#: (``Flow.counts``) but not listed, and the UI says how many are not shown
FLOW_CHILDREN_CAP = 50
#: the dependency kinds of a flow parent, as the library's own count call names them (BullMQ's
#: ``Job.getDependenciesCount``): ``unprocessed`` is the pending count
DEPENDENCY_KINDS: tuple[str, ...] = ("unprocessed", "failed", "ignored", "processed")


class FlowJob(BaseModel):
    """One end of a flow link: a parent or a child job, named by its queue (which may be in
    another namespace of the same server) and id, with its state when it was read."""

    namespace: str
    queue: str
    id: str
    #: canonical state; None: the job no longer exists (removed, or cleaned after it finished)
    state: str | None = None
    native_state: str | None = None
    #: a child only: how its parent counts it (one of ``DEPENDENCY_KINDS``)
    dependency: str | None = None


class Flow(BaseModel):
    """A job's place in a flow: its parent and (at most ``cap`` of) its children."""

    parent: FlowJob | None = None
    #: children still pending on the parent, as the parent's own count says (None: no parent)
    parent_pending: int | None = None
    #: pending first, then failed, ignored, processed; at most ``cap``
    children: list[FlowJob] = Field(default_factory=list)
    #: every dependency kind -> count, equal to the library's own count call
    counts: dict[str, int] = Field(default_factory=dict)
    cap: int = FLOW_CHILDREN_CAP

    @property
    def pending(self) -> int:
        return self.counts.get("unprocessed", 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def empty(self) -> bool:
        return self.parent is None and not self.total


class Page(BaseModel):
    """One server-side page of a job list. ``next_cursor`` is None on the last page."""

    queue: QueueRef
    state: str
    jobs: list[JobSummary]
    next_cursor: str | None = None
    #: size of the whole list (what the counts say), for "x of N".
    total: int | None = None


class Discovery(BaseModel):
    """Result of looking for queues on a connection."""

    queues: list[QueueRef]
    #: what was looked for (e.g. key prefixes or schemas), for "no queues found" messages
    looked_for: list[str] = Field(default_factory=list)
    complete: bool = True
    note: str | None = None
    #: what to try when nothing was found (e.g. "pass --prefix PREFIX")
    hint: str | None = None
    #: set when ``queues`` is the list of the last complete scan kept by the console (no SCAN now):
    #: how many seconds ago that scan ended; queues created since are not in it
    cached_age_s: float | None = None


class JobOutcome(BaseModel):
    """What one mutation did to one job."""

    job_id: str
    ok: bool
    #: "retried", "removed", "promoted", or why not: "not-found", "not-in-state", "locked", ...
    status: str


class BatchOutcome(BaseModel):
    """One bounded batch of a bulk mutation. ``more`` is True while more jobs may remain."""

    done: int
    more: bool
    ids: list[str] = Field(default_factory=list)


class ConsoleStore(abc.ABC):
    """The console's own records on the same server (key prefix or schema of its own), so that
    every operator working on that backend sees them: audit records, queues paused by a global
    pause, and the ledger of manual requeues."""

    location: str  # e.g. "redis key prefix queue-console:" -- for messages and docs

    @abc.abstractmethod
    async def audit_append(self, record: dict[str, Any]) -> str: ...

    @abc.abstractmethod
    async def audit_read(self, limit: int = 100) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def paused_add(self, queue_keys: list[str], by: str) -> None: ...

    @abc.abstractmethod
    async def paused_remove(self, queue_keys: list[str]) -> None: ...

    @abc.abstractmethod
    async def paused_list(self) -> dict[str, str]: ...

    @abc.abstractmethod
    async def ledger_append(self, records: list[dict[str, Any]]) -> None: ...

    @abc.abstractmethod
    async def ledger_read(self, since_ms: int, limit: int = 100_000) -> list[dict[str, Any]]: ...


class Mutations:
    """The contract's mutations, each refused (``Unsupported``) until a backend overrides it: where
    ``capabilities`` says so; each call is one bounded batch. A ``Reader`` offers them; a backend's
    ``Writer`` does them and its ``ComposedReader`` forwards to it."""

    backend: str

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        """How many jobs of a terminal ``state`` finished at or before ``before_ms`` (exact)."""
        raise Unsupported(f"{self.backend} cannot count jobs by finish time")

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        """Retry jobs now, or (``run_at_ms``, where ``capabilities.delayed_retry``) at that time;
        ``job_timeout_s`` (where ``capabilities.job_timeout``) sets how long the new run may take."""
        raise Unsupported(f"{self.backend} cannot retry jobs")

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Retry at most ``count`` jobs of ``state`` that finished at or before ``before_ms``."""
        raise Unsupported(f"{self.backend} cannot retry jobs in bulk")

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        raise Unsupported(f"{self.backend} cannot remove jobs")

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Remove at most ``count`` jobs of ``state`` that finished at or before ``before_ms``."""
        raise Unsupported(f"{self.backend} cannot purge jobs in bulk")

    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        raise Unsupported(f"{self.backend} cannot promote jobs")

    async def cancel_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        raise Unsupported(f"{self.backend} cannot cancel jobs")

    async def set_paused(self, queue: QueueRef, paused: bool) -> str | None:
        """Pause or resume; may return a note on how (e.g. a weaker fallback mode)."""
        raise Unsupported(f"{self.backend} cannot pause queues")

    def console_store(self) -> ConsoleStore | None:
        """Where this server keeps the console's own records (None: nowhere, mutations refused)."""
        return None


class Reader(Mutations, abc.ABC):
    """A queue system on one connection. Subclasses live in ``backends.<system>``."""

    backend: str
    capabilities: Capabilities

    def retry_notes(self, queue: QueueRef, bulk: bool, reset_attempts: bool) -> list[str]:
        """What a retry of this store does that an operator should know before it runs (shown in
        the preview): priorities dropped by a bulk path, attempts not reset, ..."""
        return []

    def queue_capabilities(self, queue: QueueRef) -> Capabilities:
        """What this reader can do for one queue (no I/O): a reader may hold queues of several
        layouts, some read-only (legacy Bull, pg-boss v9, an unknown newer schema)."""
        return self.capabilities

    @abc.abstractmethod
    async def discover(self) -> Discovery:
        """Find the queues of this system on the connection (bounded in time)."""

    async def discover_step(self, budget_s: float) -> Discovery:
        """Discovery in slices, for a console that shows queues while it looks for more: go on for
        about ``budget_s`` (paced so the server hardly feels it) and return every queue found so
        far; ``complete`` once the whole server has been looked through. Readers whose discovery is
        cheap do it all at once."""
        return await self.discover()

    async def lookup(self, names: list[str]) -> list[QueueRef] | None:
        """The queues with one of these names, found without looking through the whole server
        (a few direct reads), or None when this reader can only find queues by ``discover``."""
        return None

    @abc.abstractmethod
    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        """Counts of every given queue in one round trip."""

    @abc.abstractmethod
    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        """One page of jobs in a canonical (or backend-specific) state, from a server-side window."""

    @abc.abstractmethod
    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        """One job in full, or None when it does not exist."""

    async def flow(self, queue: QueueRef, job_id: str, cap: int = FLOW_CHILDREN_CAP) -> Flow | None:
        """The job's flow parent and at most ``cap`` of its children, with their states and the
        dependency counts (pending, processed, ...); None when the job does not exist. Only where
        ``capabilities.flows``; bounded however many children a parent has."""
        raise Unsupported(f"{self.backend} has no job flows")

    async def failed_rows(self, queue: QueueRef, cursor: str | None = None, limit: int = 1000) -> FailedRows:
        """A window of failed jobs with only id, name, finish time and reason (for grouping 100,000
        failures). Readers override it with a read of just those fields; the default reads a page."""
        page = await self.page(queue, "failed", cursor, limit)
        return FailedRows([FailedRow(j.id, j.name, j.finished_ms, j.failed_reason.text if j.failed_reason else None)
                           for j in page.jobs], page.next_cursor, page.total)

    async def summaries(self, queue: QueueRef, job_ids: list[str], state: str) -> dict[str, JobSummary]:
        """Row summaries of known ids (missing ids absent), for planning a selection. Readers
        override this with one round trip; the default reads each job in full."""
        out = {}
        for job_id in job_ids:
            detail = await self.job(queue, job_id)
            if detail is not None:
                out[job_id] = detail.summary
        return out

    async def throughput(self, queues: list[QueueRef]) -> list[Throughput]:
        """Completions and failures per second since the previous call (empty when unsupported)."""
        return []

    async def latency(self, queues: list[QueueRef]) -> list[Latency]:
        """Latency over recent completed jobs (empty when unsupported)."""
        return []

    async def history(self, queues: list[QueueRef]) -> list[History]:
        """Throughput over the last hour from what the store keeps, read once per queue when the
        console first shows it (bounded per queue); a record with ``unavailable`` set where the
        store keeps nothing for that queue. Empty when this store keeps no history at all."""
        return []

    async def gauges(self, queues: list[QueueRef]) -> list[QueueGauges]:
        """Oldest waiting age and workers per queue, where the store knows them (empty: it does not)."""
        return []

    async def server_time_ms(self) -> int | None:
        """The server's clock (a bulk action's snapshot is taken on it), None when unknown."""
        return None

    async def queue_of_job(self, name: str, job_id: str) -> QueueRef | None:
        """A queue that discovery does not list but that holds this job (e.g. a pg-boss v9 queue
        whose rows have all moved to ``archive``); None if there is none."""
        return None

    async def pause_notes(self, queue: QueueRef, paused: bool) -> list[str]:
        """What an operator should know before this pause/resume runs (shown before confirming)."""
        return []

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""


class Writer(Mutations, abc.ABC):
    """The write side of a backend, composed into its reader (``reader.writer``, never a mixin).

    It overrides the mutations it supports (the rest stay refused) and asks ``_writable`` first.
    """

    @abc.abstractmethod
    async def _writable(self, queue: QueueRef, what: str) -> Any:
        """What this writer changes ``queue`` through (its keys, its schema layout, ...), once
        ``what`` (a ``Capabilities`` field: "retry", "purge", "promote", "cancel", "pause") is
        allowed on that queue; raises ``Unsupported`` naming why otherwise."""

    async def close(self) -> None:
        """Release what the writer opened itself (a writable pool); the reader's stay with it."""


class ComposedReader(Reader):
    """A reader whose mutations are its ``writer``'s: every mutation of the contract is forwarded
    unchanged, so a backend writes them once, in its writer. A state the queue does not have is
    refused here, with ``UnknownState``, the same in every backend; a state it has but a mutation
    cannot take is the writer's ``BadRequest``."""

    writer: Writer

    def _known(self, queue: QueueRef, state: str | None) -> None:
        if state is not None:
            states = self.queue_capabilities(queue).states
            if state not in states:
                raise UnknownState(self.backend, state, states)

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        self._known(queue, state)
        return await self.writer.count_finished_before(queue, state, before_ms)

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        self._known(queue, state)
        return await self.writer.retry_jobs(queue, job_ids, state, reset_attempts, run_at_ms, job_timeout_s)

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        self._known(queue, state)
        return await self.writer.retry_batch(queue, state, before_ms, count)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        self._known(queue, state)
        return await self.writer.remove_jobs(queue, job_ids, state)

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        self._known(queue, state)
        return await self.writer.purge_batch(queue, state, before_ms, count)

    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        return await self.writer.promote_jobs(queue, job_ids)

    async def cancel_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        return await self.writer.cancel_jobs(queue, job_ids)

    async def set_paused(self, queue: QueueRef, paused: bool) -> str | None:
        return await self.writer.set_paused(queue, paused)

    def console_store(self) -> ConsoleStore | None:
        return self.writer.console_store()


def json_record(status: QueueStatus) -> dict[str, Any]:
    """The ``status --json`` record of one queue (docs/architecture.md, "The command line's JSON")."""
    return {
        "connection": status.queue.connection,
        "backend": status.queue.backend,
        "queue": status.queue.name,
        "namespace": status.queue.namespace,
        "paused": status.paused,
        "counts": status.counts,
        "native": status.native,
        "estimated": status.estimated,
        "malformed": status.malformed,
        "rate_limit_ttl_ms": status.rate_limit_ttl_ms,
    }
