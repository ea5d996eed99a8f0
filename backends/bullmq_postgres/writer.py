"""State changes of BullMQ-on-PostgreSQL queues, through BullMQ's own SQL commands.

Composed into BullMQPgReader (``reader.writer``). Each call is one bounded unit (an id list or one
batch) in one short transaction on a writable pool of its own (the read pool stays read-only),
with the session's ``search_path`` pinned to the queue's schema and ``statement_timeout`` /
``lock_timeout`` set (backends.postgres.create_pool). The statements are BullMQ's command files:

- retry one job: ``reprocess_job`` (what ``Job.retry(state, {resetAttemptsMade,
  resetAttemptsStarted})`` runs; ``lifo`` from the job's opts, as the library passes it)
- retry all / older than: ``retry_jobs`` (``Queue.retryJobs({state, count, timestamp})``: it
  resets attemptsMade and attemptsStarted, as the library does)
- remove one job: ``remove`` with removeChildren = true (``Job.remove()``'s default); a job whose
  lock is held is not removed (``locked``); a scheduler's job raises BM001 (``scheduler-job``)
- purge older than: ``clean`` (``Queue.clean(grace, limit, state)``)
- promote: ``promote``; pause / resume: ``pause`` (BullMQ's meta flag, workers honour it)

The console's own records (audit, ledger, global-pause memory) go to the pg-boss console store's
schema (``queue_console``), shared by every PostgreSQL backend.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Awaitable, Callable

from backends.bullmq_postgres.layout import command, search_path_sql
from backends.contract import BatchOutcome, ConsoleStore, JobOutcome, QueueRef, Writer
from backends.errors import BadRequest, Unsupported
from backends.limits import bulk_count
from backends.pg_console_store import DEFAULT_SCHEMA, PgConsoleStore, create_store
from backends.postgres import close_pool, open_write_pool, pg_errors, quote_ident
from backends.urls import ConnectionUrl

FINISHED = ("completed", "failed")
#: reprocess_job / promote return codes (BullMQ's finishedErrors)
CODES = {-1: "not-found", -3: "not-in-state"}


def _finished(state: str) -> str:
    if state not in FINISHED:
        raise BadRequest(f"{state!r} is not a finished state (completed or failed)")
    return state


class BullMQPgWriter(Writer):
    """``check(queue)`` verifies the queue's schema version is one whose commands are known."""

    backend = "bullmq-postgres"

    connect_timeout: float = 5.0
    op_timeout: float = 10.0

    def __init__(self, read_pool, url: ConnectionUrl, check: Callable[[QueueRef], Awaitable[int]]) -> None:
        self.read_pool = read_pool
        self.url = url
        self.check = check
        self._pool = None
        self._lock = asyncio.Lock()
        self._store_done: set[str] = set()
        #: the console store's schema (ConnectOptions.store_schema); None: queue_console
        self.configured_store_schema: str | None = None
        self.application_name = f"queue-console write {uuid.uuid4().hex[:8]}"

    @property
    def store_schema(self) -> str:
        return self.configured_store_schema or DEFAULT_SCHEMA

    async def _wpool(self):
        async with self._lock:
            if self._pool is None:
                self._pool = await open_write_pool(self.url, self.connect_timeout, self.op_timeout,
                                                   self.application_name)
        return self._pool

    async def _store_ready(self) -> None:
        name = self.store_schema
        if name in self._store_done:
            return
        await create_store(await self._wpool(), self.url, name)
        self._store_done.add(name)

    def console_store(self) -> ConsoleStore:
        return PgConsoleStore(self.read_pool, self._wpool, self._store_ready, self.url, self.store_schema)

    async def _writable(self, queue: QueueRef, what: str):
        """The writable pool, once the queue's schema version is one whose commands are known
        (``check`` raises Unsupported otherwise); every capability this writer has needs only that."""
        await self.check(queue)
        return await self._wpool()

    async def _tx(self, queue: QueueRef, what: str, fn):
        pool = await self._writable(queue, what)
        async with pg_errors(self.url), pool.acquire() as conn, conn.transaction():
            await conn.execute(search_path_sql(), quote_ident(queue.namespace))
            return await fn(conn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        await close_pool(pool)

    # ------------------------------------------------------------------ counts
    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        """Exactly the rows ``retry_jobs`` / ``clean`` select: ``finished_at_ms <= before_ms``."""
        async with pg_errors(self.url):
            return int(await self.read_pool.fetchval(
                f"SELECT count(*) FROM {quote_ident(queue.namespace)}.job "
                "WHERE queue = $1 AND state = $2 AND finished_at_ms <= $3", queue.name, _finished(state),
                int(before_ms)))

    # ------------------------------------------------------------------ by id
    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        if run_at_ms is not None or job_timeout_s is not None:
            raise Unsupported("BullMQ's reprocess_job retries now, with no per-run timeout")
        state = _finished(state)

        async def run(conn):
            out = []
            for job_id in job_ids:
                lifo = await conn.fetchval("SELECT COALESCE((opts->>'lifo')::boolean, false) FROM job "
                                           "WHERE queue = $1 AND id = $2", queue.name, str(job_id))
                if lifo is None:
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-found"))
                    continue
                code = await conn.fetchval(command("reprocess_job"), queue.name, str(job_id), state, lifo,
                                           reset_attempts, reset_attempts)
                out.append(JobOutcome(job_id=job_id, ok=code == 1, status="retried" if code == 1 else CODES.get(code, f"code {code}")))
            return out
        return await self._tx(queue, "retry", run)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        import asyncpg

        async def run(conn):
            out = []
            for job_id in job_ids:
                now = await conn.fetchval("SELECT state::text FROM job WHERE queue = $1 AND id = $2 FOR UPDATE",
                                          queue.name, str(job_id))
                if now is None or (state is not None and now != state and not (state == "waiting_children" and now == "waiting-children")):
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-found" if now is None else "not-in-state"))
                    continue
                try:
                    async with conn.transaction():  # a savepoint: BM001 leaves the batch usable
                        n = await conn.fetchval(command("remove"), queue.name, str(job_id), True)
                except asyncpg.RaiseError as exc:
                    if exc.sqlstate != "BM001":
                        raise
                    out.append(JobOutcome(job_id=job_id, ok=False, status="scheduler-job"))
                    continue
                out.append(JobOutcome(job_id=job_id, ok=n == 1, status="removed" if n == 1 else "locked"))
            return out
        return await self._tx(queue, "purge", run)

    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        async def run(conn):
            out = []
            for job_id in job_ids:
                code = await conn.fetchval(command("promote"), queue.name, str(job_id))
                out.append(JobOutcome(job_id=job_id, ok=code == 0, status="promoted" if code == 0 else CODES.get(code, f"code {code}")))
            return out
        return await self._tx(queue, "promote", run)

    # ------------------------------------------------------------------ bulk
    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        state, count = _finished(state), bulk_count(count)

        async def run(conn):
            return int(await conn.fetchval(command("retry_jobs"), queue.name, state, count, int(before_ms)))
        n = await self._tx(queue, "retry", run)
        return BatchOutcome(done=n, more=n >= count)

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        state, count = _finished(state), bulk_count(count)

        async def run(conn):
            return [r["id"] for r in await conn.fetch(command("clean"), queue.name, state, int(before_ms), count)]
        ids = await self._tx(queue, "purge", run)
        return BatchOutcome(done=len(ids), more=len(ids) >= count, ids=ids)

    async def set_paused(self, queue: QueueRef, paused: bool) -> str | None:
        async def run(conn):
            await conn.execute(command("pause"), queue.name, bool(paused))
        await self._tx(queue, "pause", run)
        return None
