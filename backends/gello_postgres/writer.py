"""State changes of Gello's PostgreSQL queues: retry and purge of failed jobs.

Composed into GelloPgReader (``reader.writer``). Retry and purge are single statements
(data-modifying CTEs) on a writable pool of the writer's own (the read pool stays read-only), so
each one is its own transaction: a retry inserts the new ``jobs`` row and deletes the
``failed_jobs`` row together or not at all. Rows are picked ``FOR UPDATE SKIP LOCKED`` so two
consoles never retry the same row twice. Only the schema name (quoted) is pasted into SQL; every
value is a bind parameter. The console's own records go to the shared PostgreSQL console store
(backends/pg_console_store.py, schema ``queue_console`` unless configured).
"""
from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from backends.contract import BatchOutcome, ConsoleStore, JobOutcome, QueueRef, Writer
from backends.errors import BadRequest, Unsupported
from backends.gello.record import BACKEND
from backends.gello_postgres.layout import ts
from backends.limits import bulk_count
from backends.pg_console_store import DEFAULT_SCHEMA as STORE_DEFAULT
from backends.pg_console_store import PgConsoleStore, create_store
from backends.postgres import close_pool, open_write_pool, pg_errors

if TYPE_CHECKING:  # pragma: no cover
    from backends.gello_postgres.reader import GelloPgReader


def check_failed(state: str | None, what: str) -> None:
    """Gello changes failed jobs only."""
    if state not in (None, "failed"):
        raise BadRequest(f"gello can {what} failed jobs only, not {state!r}")


class GelloPgWriter(Writer):
    backend = BACKEND

    def __init__(self, reader: "GelloPgReader", connect_timeout: float, op_timeout: float,
                 application_name: str, store_schema: str | None) -> None:
        self.reader = reader
        self.url = reader.url
        self._wpool = None  # writable, opened by the first mutation
        self._wlock = asyncio.Lock()
        self._write_args = (connect_timeout, op_timeout, f"{application_name} write")
        self.store_schema = store_schema
        self._store_done: set[str] = set()

    @property
    def write_application_name(self) -> str:
        """application_name of the writable sessions (pg_stat_activity)."""
        return self._write_args[2]

    async def _write_pool(self):
        async with self._wlock:
            if self._wpool is None:
                self._wpool = await open_write_pool(self.url, *self._write_args)
        return self._wpool

    async def _writable(self, queue: QueueRef, what: str):
        """The writable pool, once the layout allows ``what`` (Unsupported otherwise)."""
        await self.reader.require()
        caps = self.reader.queue_capabilities(queue)
        if not getattr(caps, what):
            raise Unsupported(caps.read_only_reason or f"gello cannot {what} here")
        return await self._write_pool()

    def _t(self, table: str) -> str:
        return self.reader.table(table)

    async def server_time_ms(self) -> int:
        row = await self.reader.fetchrow("SELECT extract(epoch FROM now())::float8 AS t")
        # rounded up, so that a row that failed in the current millisecond is in the snapshot
        return int(math.ceil(row["t"] * 1000))

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        check_failed(state, "count finished")
        await self.reader.require()
        row = await self.reader.fetchrow(
            f"SELECT count(*) AS n FROM {self._t('failed_jobs')} WHERE queue = $1 AND failed_at <= $2",
            queue.name, ts(before_ms))
        return int(row["n"])

    def _retry_sql(self, picked: str) -> str:
        """One statement: insert a new ``jobs`` row per picked failed row (attempts 0, same id,
        type and payload) and delete exactly the failed rows whose insert happened."""
        jobs, failed = self._t("jobs"), self._t("failed_jobs")
        return f"""
            WITH picked AS ({picked}),
            chosen AS (SELECT DISTINCT ON (job_id) id, job_id, queue, job_type, payload FROM picked
                       ORDER BY job_id, id DESC),
            ins AS (INSERT INTO {jobs} (id, queue, job_type, payload, attempts, scheduled_at)
                    SELECT job_id, queue, job_type, payload, 0, coalesce($3::timestamptz, now()) FROM chosen
                    ON CONFLICT (id) DO NOTHING RETURNING id),
            del AS (DELETE FROM {failed} f USING chosen c
                    WHERE f.id = c.id AND c.job_id IN (SELECT id FROM ins) RETURNING f.job_id)
            SELECT (SELECT array_agg(job_id) FROM picked) AS picked, (SELECT array_agg(job_id) FROM del) AS done"""

    async def _absent(self, pool, queue: QueueRef, job_id: str) -> JobOutcome:
        live = await pool.fetchval(f"SELECT count(*) FROM {self._t('jobs')} WHERE queue = $1 AND id = $2",
                                   queue.name, job_id)
        return JobOutcome(job_id=job_id, ok=False, status="not-in-state" if live else "not-found")

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        """Retry failed jobs by job id (newest failed row of that id), each in its own statement.
        Attempts always restart at 0: that is Gello's retry."""
        check_failed(state, "retry")
        pool = await self._writable(queue, "retry")
        failed = self._t("failed_jobs")
        picked = (f"SELECT id, job_id, queue, job_type, payload FROM {failed} WHERE queue = $1 AND job_id = $2 "
                  "ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED")
        sql = self._retry_sql(picked)
        run_at = ts(run_at_ms) if run_at_ms is not None else None
        out = []
        async with pg_errors(self.url):
            for job_id in job_ids:
                row = await pool.fetchrow(sql, queue.name, job_id, run_at)
                if row["done"]:
                    out.append(JobOutcome(job_id=job_id, ok=True, status="retried"))
                elif row["picked"]:
                    out.append(JobOutcome(job_id=job_id, ok=False, status="exists"))  # a jobs row has this id
                else:
                    out.append(await self._absent(pool, queue, job_id))
        return out

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Retry the oldest failed rows that failed at or before ``before_ms`` (one statement).
        Rows whose job id is already in ``jobs`` are left alone (they would conflict)."""
        check_failed(state, "retry")
        pool = await self._writable(queue, "retry")
        count = bulk_count(count)
        failed, jobs = self._t("failed_jobs"), self._t("jobs")
        picked = (f"SELECT f.id, f.job_id, f.queue, f.job_type, f.payload FROM {failed} f "
                  f"WHERE f.queue = $1 AND f.failed_at <= $2 AND NOT EXISTS (SELECT 1 FROM {jobs} j WHERE j.id = f.job_id) "
                  f"ORDER BY f.failed_at, f.id LIMIT {count} FOR UPDATE OF f SKIP LOCKED")
        async with pg_errors(self.url):
            row = await pool.fetchrow(self._retry_sql(picked), queue.name, ts(before_ms), None)
            done = list(row["done"] or [])
            more = bool(done) and bool(await pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {failed} f WHERE f.queue = $1 AND f.failed_at <= $2 "
                f"AND NOT EXISTS (SELECT 1 FROM {jobs} j WHERE j.id = f.job_id))", queue.name, ts(before_ms)))
        return BatchOutcome(done=len(done), more=more, ids=done)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        """Purge failed jobs by job id (every failed row of that id), one statement per id."""
        check_failed(state, "purge")
        pool = await self._writable(queue, "purge")
        out = []
        async with pg_errors(self.url):
            for job_id in job_ids:
                n = await pool.fetchval(
                    f"WITH d AS (DELETE FROM {self._t('failed_jobs')} WHERE queue = $1 AND job_id = $2 RETURNING 1) "
                    "SELECT count(*) FROM d", queue.name, job_id)
                if n:
                    out.append(JobOutcome(job_id=job_id, ok=True, status="removed"))
                else:
                    out.append(await self._absent(pool, queue, job_id))
        return out

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        check_failed(state, "purge")
        pool = await self._writable(queue, "purge")
        count = bulk_count(count)
        failed = self._t("failed_jobs")
        async with pg_errors(self.url):
            rows = await pool.fetch(
                f"""DELETE FROM {failed} WHERE id IN (
                      SELECT id FROM {failed} WHERE queue = $1 AND failed_at <= $2
                      ORDER BY failed_at, id LIMIT {count} FOR UPDATE SKIP LOCKED)
                    RETURNING job_id""", queue.name, ts(before_ms))
            more = bool(rows) and bool(await pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {failed} WHERE queue = $1 AND failed_at <= $2)",
                queue.name, ts(before_ms)))
        return BatchOutcome(done=len(rows), more=more, ids=[r["job_id"] for r in rows])

    # ------------------------------------------------------------------ the console store
    def console_store(self) -> ConsoleStore:
        """The PostgreSQL console store (schema ``queue_console`` unless configured), shared with
        the other PostgreSQL backends on the same database."""
        return PgConsoleStore(self.reader.pool, self._write_pool, self._store_ready, self.url,
                              self.store_schema or STORE_DEFAULT)

    async def _store_ready(self) -> None:
        """CREATE SCHEMA/TABLE IF NOT EXISTS in the console's own schema, once."""
        name = self.store_schema or STORE_DEFAULT
        if name in self._store_done:
            return
        await create_store(await self._write_pool(), self.url, name)
        self._store_done.add(name)

    async def close(self) -> None:
        pool, self._wpool = self._wpool, None
        await close_pool(pool)
