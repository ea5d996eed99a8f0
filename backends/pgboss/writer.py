"""State changes of pg-boss queues, as pg-boss itself makes them (docs/backends/pgboss.md, "Mutations").

Mixed into PgBossReader. Every call is one bounded unit (an explicit id list, or one batch of at
most ``MAX_IDS`` jobs): one short transaction on a writable pool of its own (the read pool stays
``default_transaction_read_only``), ``statement_timeout``/``lock_timeout`` on every session, one
UPDATE/DELETE per batch filtered by ``name = $1 AND id = ANY($2)`` (partition pruning; the pk is
``(name, id)``) with a state guard, so a statement is a no-op for a job that a worker or another
console changed first. Only catalog identifiers are pasted into SQL (quoted); everything else is a
bind parameter.

Schema versions: v10 (21-24), v11 (25-26), v12 (27-46) run the statements below; v9 (20) and
unknown future versions are read-only (``Unsupported``).

pg-boss has no pause. ``set_paused`` holds a queue with a trigger of the console's own on the job
table (``hold``: a worker's claim of a queued job of a held queue is skipped, so nothing of that
queue is taken while no console runs), when the connecting role owns the job table; otherwise it
parks waiting jobs (section 8), best effort and labelled so. State lives in the console's own
schema (backends.pg_console_store).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.contract import BatchOutcome, ConsoleStore, JobOutcome, QueueRef, QueueStatus
from backends.errors import BackendError, Unsupported
from backends.pg_console_store import DEFAULT_SCHEMA, PgConsoleStore, create_store
from backends.pgboss.layout import Layout, quote_ident
from backends.limits import MAX_IDS, bulk_count
from backends.postgres import open_write_pool, pg_errors
from backends.urls import ConnectionUrl

if TYPE_CHECKING:  # pragma: no cover
    from backends.pgboss.reader import PgBossReader

#: far-future start_after of a parked job; finite on purpose (node-pg turns 'infinity' into a non-Date)
SENTINEL = dt.datetime(2999, 1, 1, tzinfo=dt.timezone.utc)
#: a statuses() refresh re-parks paused queues at most this often (per reader)
SWEEP_EVERY_S = 2.0
#: set_paused parks / unparks inline for at most this long; the sweep (pause) or a second run
#: (resume) does the rest
INLINE_BUDGET_S = 15.0
#: the hold trigger on a pg-boss job table (its function is the console store's hold_paused_job)
HOLD_TRIGGER = "queue_console_hold"
#: PostgreSQL 13 is the first with BEFORE row triggers on partitioned tables (v10+ ``job``)
HOLD_MIN_SERVER = 130000
HELD_INFO = "held by queue-console (trigger)"
HELD_NOTE = ("a trigger of queue-console's on the job table skips every worker claim of this queue's "
             "jobs; sends, retries and failures are stored as usual and run after resume")
NOT_HELD_INFO = "NOT HELD: the hold trigger is missing (pg-boss re-created its job table?); run pause again"
PAUSED_INFO = "parked by queue-console (best effort)"
PAUSED_NOTE = ("console-managed: waiting jobs are parked (start_after far in the future, retention "
               "extended); jobs sent or re-queued between sweeps may slip through; a fetch with "
               "ignoreStartAfter bypasses it")
_ZERO_UUID = uuid.UUID(int=0)

#: formats/pgboss.md section 7 "retry": the 12.38 form (npm12.38:dist/plans.js retryJobs), run on
#: every v10+ schema (a superset that avoids the completed_on data-loss bug of section 1.3)
RETRY_SET = ("state = 'retry', retry_limit = retry_limit + 1, completed_on = NULL, "
             "start_after = GREATEST(start_after, now())")
#: --reset-attempts (the console's own): the job's full budget again, as a fresh job has it
#: (retry_count 0 and started_on NULL, so the next claim does not count; retry_limit kept)
RETRY_SET_RESET = ("state = 'retry', retry_count = 0, started_on = NULL, completed_on = NULL, "
                   "start_after = GREATEST(start_after, now())")
FINISHED = {"failed": "failed", "completed": "completed", "cancelled": "cancelled"}


@dataclass
class _BulkRun:
    """A bulk retry/purge run in progress: what its batches share."""

    layout: Layout
    sql: str
    parking: bool
    after: uuid.UUID = _ZERO_UUID


class _Conflict(BackendError):
    """A statement hit a unique index (singleton / stately / strict-fifo key)."""


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = os.environ.get("USER", "unknown")
    return f"{user}@{socket.gethostname()}"


def _uuids(job_ids: list[str]) -> tuple[list[uuid.UUID], list[str]]:
    good, bad = [], []
    for j in job_ids:
        try:
            good.append(uuid.UUID(str(j)))
        except (ValueError, AttributeError, TypeError):
            bad.append(j)
    return good, bad


def _timeout_value(seconds: float) -> int:
    """Whole seconds, at least 1 (pg-boss's expireInSeconds is an integer)."""
    return max(1, int(-(-float(seconds) // 1)))


def _timeout_set(layout: Layout, param: int) -> str:
    """The job's own expiry: ``expire_seconds`` (int, v11+) or ``expire_in`` (interval, v10)."""
    if "expire_seconds" in layout.job_columns:
        return f"expire_seconds = ${param}::int"
    if "expire_in" in layout.job_columns:
        return f"expire_in = make_interval(secs => ${param}::int)"
    raise Unsupported(f"pg-boss schema version {layout.version} has no job expiry column")


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


class PgBossWriter:
    """The write side of a PgBossReader, composed into it (``reader.writer``): it reads through the
    reader (its read-only pool, layouts and state filters) and writes through a writable pool of
    its own, opened by the first mutation."""

    def __init__(self, reader: "PgBossReader") -> None:
        self.reader = reader
        #: the console's own schema (audit, ledger, pause state); ConnectOptions.store_schema sets it
        self.store_schema: str | None = None
        self.write_connect_timeout = 5.0
        self.write_op_timeout = 10.0
        #: statuses() re-parks paused queues and unparks orphans (see docs/backends/pgboss.md)
        self.sweep_parked = True
        #: application_name of the writable sessions (pg_stat_activity)
        self.write_application_name = f"queue-console write {uuid.uuid4().hex[:8]}"
        self.wpool = None
        self._wlock = asyncio.Lock()
        self.ready: set[str] = set()  # console store schemas created
        self.cursors: dict = {}  # bulk runs in progress (_BulkRun per queue and action)
        self.swept = 0.0  # time.monotonic() of the last park sweep

    @property
    def pool(self):
        return self.reader.pool

    @property
    def url(self) -> ConnectionUrl:
        return self.reader.url

    # ------------------------------------------------------------------ plumbing
    @property
    def _store_schema(self) -> str:
        return self.store_schema or DEFAULT_SCHEMA

    @property
    def _st(self) -> str:
        return quote_ident(self._store_schema)

    async def _wpool(self):
        if self.wpool is None:
            async with self._wlock:
                if self.wpool is None:
                    from backends.postgres_topology import ensure_primary

                    url = self.reader.write_url or self.url
                    pool = await open_write_pool(url, self.write_connect_timeout, self.write_op_timeout,
                                                 self.write_application_name)
                    try:
                        await ensure_primary(pool, url, self.write_op_timeout)
                    except BaseException:
                        pool.terminate()
                        raise
                    self.wpool = pool
        return self.wpool

    async def close_writes(self) -> None:
        if self.wpool is not None:
            pool, self.wpool = self.wpool, None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()

    async def _store_ready(self) -> None:
        """CREATE SCHEMA/TABLE IF NOT EXISTS in the console's own schema (never pg-boss's), once."""
        name = self._store_schema
        if name in self.ready:
            return
        await create_store(await self._wpool(), self.url, name)
        self.ready.add(name)

    async def _writable(self, queue: QueueRef) -> Layout:
        if queue.backend != "pgboss":
            raise Unsupported(f"{queue.backend} is not a pg-boss queue")
        layout = await self.reader._layout(queue.namespace, refresh=True)
        if layout.major == "v9":
            raise Unsupported("pg-boss v9 schema (version 20) is read-only in queue-console")
        if not layout.known:
            raise Unsupported(layout.read_only_reason or f"unknown pg-boss schema version {layout.version}")
        return layout

    async def _tx(self, fn):
        """``fn(conn)`` in one short transaction on the writable pool; a unique violation comes out
        as ``_Conflict`` (the caller retries job by job), every other error mapped as the reader does."""
        import asyncpg

        pool = await self._wpool()
        async with pg_errors(self.url), pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return await fn(conn)
            except asyncpg.UniqueViolationError as exc:
                raise _Conflict(f"unique violation: {exc.constraint_name or 'unique key'}") from None

    def console_store(self) -> ConsoleStore:
        return PgConsoleStore(self.pool, self._wpool, self._store_ready, self.url,
                              self._store_schema)

    # ------------------------------------------------------------------ clock and counts
    async def server_time_ms(self) -> int | None:
        async with pg_errors(self.url):
            row = await self.pool.fetchrow(
                "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms")
        return int(row["ms"])

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        """Jobs of ``state`` finished at or before the snapshot (the bulk selection), counted on the
        server. The action layer asks once per run, and again only after a batch whose reply was lost."""
        native = FINISHED.get(state)
        if native is None:
            raise BackendError(f"{state!r} is not a finished state (failed, completed or cancelled)")
        layout = await self.reader._layout(queue.namespace)
        if not layout.known:
            raise Unsupported(layout.read_only_reason or "unknown pg-boss schema")
        c = layout.col
        async with pg_errors(self.url):
            row = await self.pool.fetchrow(
                f"SELECT count(*) AS n FROM {layout.job} WHERE name = $1 AND state = '{native}' "
                f"AND {c('completed_on')} <= $2", queue.name, _at(before_ms))
        return int(row["n"])

    async def _classify(self, conn, layout: Layout, name: str, ids: list[uuid.UUID], done: set[str],
                        bad: list[str], why: str = "not-in-state") -> list[tuple[str, str]]:
        """(id, status) of the ids a statement did not change: not-found, active, or ``why``."""
        rest = [i for i in ids if str(i) not in done]
        states = {}
        if rest:
            rows = await conn.fetch(f"SELECT id::text AS id, state::text AS state FROM {layout.job} "
                                    "WHERE name = $1 AND id = ANY($2::uuid[])", name, rest)
            states = {r["id"]: r["state"] for r in rows}
        out = [(b, "not-found") for b in bad]
        for i in rest:
            s = states.get(str(i))
            out.append((str(i), "not-found" if s is None else "active" if s == "active" else why))
        return out

    async def _by_ids(self, queue: QueueRef, job_ids: list[str], sql: str, ok_status: str,
                      extra: tuple = (), after=None, layout: Layout | None = None) -> list[JobOutcome]:
        """Run ``sql`` ($1 name, $2 uuid[], then ``extra``) over a bounded id list in one transaction.
        On a unique violation (singleton/stately/strict-fifo keys), fall back to one savepoint per job
        so the others still go through and the conflicting ones are reported ``conflict``."""
        import asyncpg

        if len(job_ids) > MAX_IDS:
            raise BackendError(f"at most {MAX_IDS} job ids per call ({len(job_ids)} given)")
        layout = layout or await self._writable(queue)
        ids, bad = _uuids(job_ids)
        ids = list(dict.fromkeys(ids))

        async def batch(conn):
            rows = await conn.fetch(sql, queue.name, ids, *extra)
            done = {r["id"] for r in rows}
            if after is not None:
                await after(conn, ids)
            return done, await self._classify(conn, layout, queue.name, ids, done, bad), {}

        async def one_by_one(conn):
            done: set[str] = set()
            conflicts: dict[str, str] = {}
            for i in ids:
                try:
                    async with conn.transaction():  # a savepoint
                        rows = await conn.fetch(sql, queue.name, [i], *extra)
                        done |= {r["id"] for r in rows}
                except asyncpg.UniqueViolationError as exc:
                    conflicts[str(i)] = f"conflict ({exc.constraint_name or 'unique key'})"
            if after is not None:
                await after(conn, ids)
            rest = await self._classify(conn, layout, queue.name, [i for i in ids if str(i) not in conflicts],
                                        done, bad)
            return done, rest, conflicts

        try:
            done, rest, conflicts = await self._tx(batch) if ids else (set(), [(b, "not-found") for b in bad], {})
        except _Conflict:
            done, rest, conflicts = await self._tx(one_by_one)
        status = {i: ok_status for i in done} | dict(rest) | conflicts
        out = []
        for j in job_ids:
            key = str(uuid.UUID(str(j))) if j not in bad else j
            s = status.get(key, "not-found")
            out.append(JobOutcome(job_id=j, ok=s == ok_status, status=s))
        return out

    # ------------------------------------------------------------------ retry
    def _retry_sql(self, layout: Layout, reset: bool, delayed: bool = False, timeout_param: int | None = None) -> str:
        sets = RETRY_SET_RESET if reset else RETRY_SET
        if delayed:
            # a requeue planned for later ($3): start then, and keep the job's retention window from
            # that start (keep_until before start_after would let maintenance delete it unrun)
            sets = sets.replace("start_after = GREATEST(start_after, now())",
                                "start_after = GREATEST(start_after, now(), $3::timestamptz), "
                                "keep_until = GREATEST(keep_until, $3::timestamptz + (keep_until - created_on))")
        if timeout_param is not None:
            sets += ", " + _timeout_set(layout, timeout_param)
        return (f"UPDATE {layout.job} SET {sets} "
                "WHERE name = $1 AND id = ANY($2::uuid[]) AND state = 'failed' RETURNING id::text AS id")

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        """The retry statement; ``job_timeout_s`` (the policy's ``timeouts.job_timeout``) becomes the
        job's own expiry for its next run (v10 ``expire_in``, v11+ ``expire_seconds``), which pg-boss
        reads when it expires active jobs."""
        if state != "failed":
            raise BackendError(f"pg-boss retries failed jobs only, not {state!r}")
        layout = await self._writable(queue)
        extra: tuple = (_at(run_at_ms),) if run_at_ms is not None else ()
        timeout_param = None
        if job_timeout_s is not None:
            extra += (_timeout_value(job_timeout_s),)
            timeout_param = 2 + len(extra)
        sql = self._retry_sql(layout, reset_attempts, delayed=run_at_ms is not None, timeout_param=timeout_param)
        out = await self._by_ids(queue, job_ids, sql, "retried", extra=extra, layout=layout)
        await self._repark_if_paused(layout, queue.name)
        return out

    async def _candidates(self, conn, layout: Layout, queue: QueueRef, native: str, before_ms: int,
                          after: uuid.UUID, count: int) -> list[uuid.UUID]:
        rows = await conn.fetch(
            f"SELECT id FROM {layout.job} WHERE name = $1 AND state = '{native}' AND completed_on <= $2 "
            "AND id > $3 ORDER BY id LIMIT $4 FOR UPDATE", queue.name, _at(before_ms), after, count)
        return [r["id"] for r in rows]

    def _bulk_sql(self, layout: Layout, action: str, native: str) -> str:
        """One statement per batch: pick the next ``$4`` jobs of the run (keyset after ``$3``, finished
        at or before ``$2``), change them, and return the batch's last id, its size and the ids changed.
        A single statement is its own transaction, so the batch is atomic without BEGIN/COMMIT."""
        # no FOR UPDATE: the change below re-checks the state guard on each row it locks (a job a
        # worker or another console moved meanwhile is skipped), and locking first would write
        # every row's lock before the change writes it again
        pick = (f"SELECT id FROM {layout.job} WHERE name = $1 AND state = '{native}' AND completed_on <= $2 "
                "AND id > $3 ORDER BY id LIMIT $4")
        if action == "retry":
            # RETRY_SET's unqualified columns are the job's (c has only id)
            change = (f"UPDATE {layout.job} j SET {RETRY_SET} FROM c WHERE j.name = $1 AND j.id = c.id "
                      f"AND j.state = '{native}' RETURNING j.id")
        else:
            change = (f"DELETE FROM {layout.job} j USING c WHERE j.name = $1 AND j.id = c.id "
                      f"AND j.state = '{native}' RETURNING j.id, j.completed_on")
        counted = ""
        if action == "purge" and native in ("completed", "cancelled") and \
                {"retained_count", "retained_on", "total_count"} <= layout.queue_columns:
            # as 12.38's deleteJob (reduceRetainedCount): deleted completed/cancelled jobs that the
            # monitor already counted (completed_on <= retained_on) leave retained_count and
            # total_count, in the same statement here
            q = f"{layout.q}.queue"
            counted = (f", r AS (UPDATE {q} SET retained_count = CASE WHEN retained_count IS NULL THEN NULL "
                       "ELSE GREATEST(retained_count - x.n, 0) END, total_count = GREATEST(total_count - x.n, 0) "
                       f"FROM (SELECT count(*) AS n FROM u WHERE u.completed_on <= (SELECT retained_on FROM {q} "
                       f"WHERE name = $1)) x WHERE {q}.name = $1 AND x.n > 0)")
        return (f"WITH c AS ({pick}), u AS ({change}){counted} "
                "SELECT (SELECT id FROM c ORDER BY id DESC LIMIT 1) AS last, (SELECT count(*) FROM c) AS n, "
                "ARRAY(SELECT id::text FROM u) AS ids")

    async def _bulk(self, queue: QueueRef, action: str, state: str, before_ms: int, count: int) -> BatchOutcome:
        """One batch of a bulk run. The run (queue, action, state, snapshot) keeps its keyset cursor,
        its layout (read once, when the run starts: not per batch) and whether the queue was parked
        (console-paused) when it started; each batch is ONE statement on the writable pool (no BEGIN/COMMIT round trips,
        no layout re-read, no per-batch store check)."""
        import asyncpg

        native = FINISHED.get(state)
        if native is None or (action == "retry" and native != "failed"):
            raise BackendError(f"cannot {action} {state!r} jobs in bulk "
                               f"({'failed' if action == 'retry' else 'failed, completed or cancelled'})")
        key = (queue.namespace, queue.name, action, native, before_ms)
        runs = self.cursors
        run = runs.get(key)
        if run is None:
            layout = await self._writable(queue)
            run = runs[key] = _BulkRun(layout=layout, sql=self._bulk_sql(layout, action, native),
                                       parking=action == "retry" and await self._parked_queue(layout, queue.name))
        layout = run.layout
        count = bulk_count(count)
        pool = await self._wpool()
        try:
            async with pg_errors(self.url):
                row = await pool.fetchrow(run.sql, queue.name, _at(before_ms), run.after, count)
            last, n, done = row["last"], int(row["n"]), list(row["ids"])
        except asyncpg.UniqueViolationError:
            # a retry conflicting with a waiting job's singleton key: this batch job by job
            async def run_ids(conn):
                return await self._candidates(conn, layout, queue, native, before_ms, run.after, count)

            ids = await self._tx(run_ids)
            stmt = self._retry_sql(layout, False)
            outs = await self._by_ids(queue, [str(i) for i in ids], stmt, "retried", layout=layout)
            last, n, done = (max(ids) if ids else None), len(ids), [o.job_id for o in outs if o.ok]
        if last is not None:
            run.after = last
        more = n == count
        if run.parking and done:
            await self._repark_if_paused(layout, queue.name)
        if not more:
            runs.pop(key, None)
        return BatchOutcome(done=len(done), more=more, ids=done)

    async def _parked_queue(self, layout: Layout, name: str) -> bool:
        """Whether the console has this queue paused by parking now (a held queue needs nothing: its
        trigger holds what a retry releases): a bulk retry into it re-parks
        what it retried, batch by batch."""
        if not await self._store_exists():
            return False
        async with pg_errors(self.url):
            return bool(await self.pool.fetchval(
                # a store from before the `mode` column (added on the next write) only parks
                f"SELECT EXISTS (SELECT 1 FROM {self._st}.paused_queue q WHERE q.schema = $1 AND q.name = $2 "
                "AND COALESCE(to_jsonb(q) ->> 'mode', 'park') = 'park')",
                layout.schema, name))

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Retry at most ``count`` failed jobs with ``completed_on`` at or before the snapshot, in id
        order after the last batch of this run (keyset), in one transaction."""
        return await self._bulk(queue, "retry", state, before_ms, count)

    # ------------------------------------------------------------------ purge
    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        """DELETE by name + ids (pg-boss deleteJob) -- never an active job (its worker would settle
        nothing); with ``state``, only jobs in that canonical state."""
        layout = await self._writable(queue)
        if state is None:
            pred = "state <> 'active'"
        elif state == "active":
            raise BackendError("active jobs are not purged (cancel them first)")
        else:
            pred = self.reader._state_filter(layout, state)[0]
        sql = f"DELETE FROM {layout.job} WHERE name = $1 AND id = ANY($2::uuid[]) AND {pred} RETURNING id::text AS id"
        return await self._by_ids(queue, job_ids, sql, "removed", layout=layout)

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Delete at most ``count`` jobs of a finished state with ``completed_on`` at or before the
        snapshot (formats/pgboss.md section 7 "purge stored": batched, by (name, id))."""
        return await self._bulk(queue, "purge", state, before_ms, count)

    # ------------------------------------------------------------------ promote / cancel
    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        """A deferred created/retry job runs now: ``start_after = now()``. Parked jobs are left alone."""
        layout = await self._writable(queue)
        nb = " AND NOT blocked" if layout.has_blocked else ""
        sql = (f"UPDATE {layout.job} SET start_after = now() WHERE name = $1 AND id = ANY($2::uuid[]) "
               f"AND state < 'active'{nb} AND start_after > now() AND start_after < $3 RETURNING id::text AS id")
        return await self._by_ids(queue, job_ids, sql, "promoted", extra=(SENTINEL,), layout=layout)

    async def cancel_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        """pg-boss cancel (section 7): ``state < 'completed'`` (active too) -> cancelled,
        ``completed_on = now()``. A parked job gets its original start_after/keep_until back."""
        layout = await self._writable(queue)
        sql = (f"UPDATE {layout.job} SET state = 'cancelled', completed_on = now() WHERE name = $1 "
               "AND id = ANY($2::uuid[]) AND state < 'completed' RETURNING id::text AS id")
        store_exists = await self._store_exists()

        async def unpark(conn, ids):
            if store_exists:
                await self._unpark(conn, layout, queue.name, len(ids) or 1, ids)

        return await self._by_ids(queue, job_ids, sql, "cancelled", after=unpark, layout=layout)

    # ------------------------------------------------------------------ pause (parking, section 8)
    async def _store_exists(self) -> bool:
        async with pg_errors(self.url):
            row = await self.pool.fetchrow("SELECT to_regclass($1) IS NOT NULL AS ok",
                                           f"{self._st}.parked_job")
        return bool(row["ok"])

    async def _park(self, conn, layout: Layout, name: str, count: int = MAX_IDS) -> int | None:
        """Park one batch of waiting jobs of a queue that is still paused (None: not paused)."""
        st = self._st
        held = await conn.fetchrow(f"SELECT 1 FROM {st}.paused_queue WHERE schema = $1 AND name = $2 "
                                   "AND mode = 'park' FOR SHARE", layout.schema, name)
        if held is None:
            return None
        rows = await conn.fetch(
            f"""WITH p AS (
                  SELECT id, start_after, keep_until FROM {layout.job}
                  WHERE name = $2 AND state < 'active' AND start_after < $3
                  LIMIT $4 FOR UPDATE SKIP LOCKED
                ), u AS (
                  UPDATE {layout.job} j SET start_after = $3, keep_until = GREATEST(j.keep_until, $3)
                  FROM p WHERE j.name = $2 AND j.id = p.id
                  RETURNING j.id, p.start_after AS orig_start_after, p.keep_until AS orig_keep_until
                )
                INSERT INTO {st}.parked_job (schema, name, id, orig_start_after, orig_keep_until)
                SELECT $1, $2, id, orig_start_after, orig_keep_until FROM u
                ON CONFLICT (schema, name, id) DO UPDATE SET orig_start_after = EXCLUDED.orig_start_after,
                  orig_keep_until = EXCLUDED.orig_keep_until, parked_at = now()
                RETURNING id""", layout.schema, name, SENTINEL, count)
        return len(rows)

    async def _unpark(self, conn, layout: Layout, name: str, count: int = MAX_IDS,
                      ids: list[uuid.UUID] | None = None) -> int:
        """Give one batch of parked jobs back their start_after (not before now) and their
        keep_until shifted by the time they were parked; drop their side rows. Returns side rows taken."""
        st = self._st
        row = await conn.fetchrow(
            f"""WITH pj AS (
                  DELETE FROM {st}.parked_job p
                  WHERE p.schema = $1 AND p.name = $2 AND p.id IN (
                    SELECT id FROM {st}.parked_job WHERE schema = $1 AND name = $2
                      AND ($5::uuid[] IS NULL OR id = ANY($5::uuid[]))
                    ORDER BY id LIMIT $3 FOR UPDATE)
                  RETURNING p.id, p.orig_start_after, p.orig_keep_until, p.parked_at
                ), u AS (
                  UPDATE {layout.job} j SET start_after = GREATEST(pj.orig_start_after, now()),
                    keep_until = pj.orig_keep_until + GREATEST(now() - pj.parked_at, interval '0')
                  FROM pj WHERE j.name = $2 AND j.id = pj.id AND j.start_after >= $4
                  RETURNING j.id
                )
                SELECT (SELECT count(*) FROM pj) AS taken, (SELECT count(*) FROM u) AS restored""",
            layout.schema, name, count, SENTINEL, ids)
        return int(row["taken"])

    async def hold_refusal(self, layout: Layout) -> str | None:
        """Why this connection cannot install the hold trigger on ``layout``'s job table (None: it
        can). CREATE TRIGGER needs the TRIGGER privilege and DROP TRIGGER ownership of the table,
        so the role must be (a member of) the table's owner; partitioned tables need PostgreSQL 13+."""
        async with pg_errors(self.url):
            row = await self.pool.fetchrow(
                """SELECT c.relkind::text AS kind, pg_get_userbyid(c.relowner) AS owner, current_user AS me,
                          pg_has_role(current_user, c.relowner, 'USAGE') AS owns,
                          current_setting('server_version_num')::int AS server
                   FROM pg_class c WHERE c.oid = to_regclass($1)""", layout.job)
        if row is None:
            return f"{layout.job} not found"
        if row["kind"] == "p" and row["server"] < HOLD_MIN_SERVER:
            return f"PostgreSQL {row['server']} has no row triggers on partitioned tables (13+ needed)"
        if not row["owns"]:
            return (f"role {row['me']} does not own {layout.schema}.job (owner {row['owner']}), which the "
                    "pause trigger needs")
        return None

    async def pause_notes(self, queue: QueueRef, paused: bool) -> list[str]:
        """Said before a pause runs: whether it will hold (trigger) or only park (best effort)."""
        if not paused:
            return []
        layout = await self._writable(queue)
        why = await self.hold_refusal(layout)
        if why is None:
            return []
        return [f"{queue.qualified}: {why}: falling back to best-effort parking (jobs sent or re-queued "
                "while no queue-console runs may be processed)"]

    def _lock_pause(self, conn, layout: Layout):
        """Serialises pause/resume of one pg-boss schema (trigger install/drop decisions)."""
        return conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"queue-console pause {layout.schema}")

    async def _trigger_present(self, conn, layout: Layout) -> bool:
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2)",
            layout.job, HOLD_TRIGGER))

    async def set_paused(self, queue: QueueRef, paused: bool) -> str | None:
        """Pause: hold the queue (row ``mode = 'hold'`` in ``paused_queue`` and, if missing, the hold
        trigger on the job table, in one transaction) when this role may; otherwise park (best
        effort, returns a note saying so). Resume: in one transaction, extend the retention of the
        queue's queued jobs by the time held, delete the row and drop the trigger when no queue of
        the schema stays held; then unpark whatever parking left. Idempotent: a resume after a crash
        anywhere releases everything."""
        layout = await self._writable(queue)
        deadline = time.monotonic() + INLINE_BUDGET_S
        if paused:
            await self._store_ready()
            who = _who()
            refusal = await self.hold_refusal(layout)
            mode = "park" if refusal else "hold"

            async def add(conn):
                await self._lock_pause(conn, layout)
                await conn.execute(f"INSERT INTO {self._st}.paused_queue (schema, name, by, mode) VALUES ($1, $2, $3, $4) "
                                   "ON CONFLICT (schema, name) DO UPDATE SET mode = EXCLUDED.mode "
                                   "WHERE paused_queue.mode = 'park'", layout.schema, queue.name, who, mode)
                if mode == "hold" and not await self._trigger_present(conn, layout):
                    await conn.execute(
                        f"CREATE TRIGGER {quote_ident(HOLD_TRIGGER)} BEFORE UPDATE OR DELETE ON {layout.job} "
                        f"FOR EACH ROW EXECUTE FUNCTION {self._st}.hold_paused_job({_sql_literal(layout.schema)})")

            await self._tx(add)
            if mode == "hold":
                return None
            while time.monotonic() < deadline:
                n = await self._tx(lambda conn: self._park(conn, layout, queue.name))
                if not n or n < MAX_IDS:
                    break
            return f"not held: {refusal}; parked (best effort)"
        if not await self._store_exists():
            return None
        import asyncpg

        drop_errors: list[str] = []

        async def remove(conn):
            await self._lock_pause(conn, layout)
            row = await conn.fetchrow(f"DELETE FROM {self._st}.paused_queue WHERE schema = $1 AND name = $2 "
                                      "RETURNING mode, paused_at", layout.schema, queue.name)
            if row is not None and row["mode"] == "hold":
                # the retention clock stood still while held: never-started jobs whose keep_until
                # passed (or would pass within the hold's length) get the hold's length back
                await conn.execute(
                    f"UPDATE {layout.job} SET keep_until = keep_until + (now() - $2::timestamptz) "
                    "WHERE name = $1 AND state < 'active' AND keep_until < now() + (now() - $2::timestamptz)",
                    queue.name, row["paused_at"])
            others = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {self._st}.paused_queue "
                                         "WHERE schema = $1 AND mode = 'hold')", layout.schema)
            if not others and await self._trigger_present(conn, layout):
                try:
                    async with conn.transaction():  # a savepoint: a lock timeout leaves it, inert
                        await conn.execute(f"DROP TRIGGER IF EXISTS {quote_ident(HOLD_TRIGGER)} ON {layout.job}")
                except asyncpg.PostgresError as exc:  # lock timeout, no ownership: resume anyway
                    drop_errors.append(str(exc))

        await self._tx(remove)
        note = None
        if drop_errors:
            note = f"resumed; the hold trigger (inert now) was not dropped ({drop_errors[0]}); the next resume drops it"
        total = 0
        while True:
            n = await self._tx(lambda conn: self._unpark(conn, layout, queue.name))
            total += n
            if n < MAX_IDS:
                return note
            if time.monotonic() > deadline:
                raise BackendError(f"resume of {queue.qualified}: {total} parked jobs released so far, more remain; "
                                   "run resume again to release the rest")

    async def _repark_if_paused(self, layout: Layout, name: str) -> None:
        """A retry into a parked queue is parked at once (best effort; the sweep would do it later)."""
        if not await self._store_exists():
            return
        await self._tx(lambda conn: self._park(conn, layout, name))

    async def mark_parked(self, statuses: list[QueueStatus]) -> list[QueueStatus]:
        """Called by PgBossReader.statuses: ``paused`` and the honest label for paused queues (held by
        the trigger, or -- if the trigger is gone -- NOT HELD; or parked, best effort), and, at most
        every SWEEP_EVERY_S, one re-park batch per parked queue and one unpark batch per queue whose
        pause is gone but whose jobs are still parked (an interrupted resume)."""
        if not statuses:
            return statuses
        try:
            if not await self._store_exists():
                return statuses
            schemas = sorted({s.queue.namespace for s in statuses})
            async with pg_errors(self.url):
                rows = await self.pool.fetch(
                    f"""SELECT q.schema, q.name, q.by, q.paused_at, q.mode, true AS paused,
                          (SELECT count(*) FROM {self._st}.parked_job p WHERE p.schema = q.schema AND p.name = q.name) AS parked,
                          EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = to_regclass(quote_ident(q.schema) || '.job')
                                  AND t.tgname = $2) AS trigger
                        FROM {self._st}.paused_queue q WHERE q.schema = ANY($1::text[])
                        UNION ALL
                        SELECT DISTINCT p.schema, p.name, NULL::text, NULL::timestamptz, NULL::text, false, NULL::bigint,
                          NULL::boolean FROM {self._st}.parked_job p
                        WHERE p.schema = ANY($1::text[]) AND NOT EXISTS (
                          SELECT 1 FROM {self._st}.paused_queue q WHERE q.schema = p.schema AND q.name = p.name)""",
                    schemas, HOLD_TRIGGER)
        except BackendError as exc:
            for s in statuses:
                s.info["pause state"] = f"unreadable: {exc}"
            return statuses
        paused = {(r["schema"], r["name"]): r for r in rows if r["paused"]}
        orphans = {(r["schema"], r["name"]) for r in rows if not r["paused"]}
        for s in statuses:
            r = paused.get((s.queue.namespace, s.queue.name))
            if r is None:
                continue
            s.paused = True
            since = f"by {r['by']} at {r['paused_at'].isoformat(timespec='seconds')}"
            if r["mode"] == "hold":
                s.info["paused"] = HELD_INFO if r["trigger"] else NOT_HELD_INFO
                s.info["pause"] = f"{HELD_NOTE} ({since})"
                if r["parked"]:
                    s.info["parked jobs"] = f"{r['parked']} (from an earlier best-effort pause)"
            else:
                s.info["paused"] = PAUSED_INFO
                s.info["pause"] = PAUSED_NOTE
                s.info["parked jobs"] = f"{r['parked']} ({since})"
        parking = {k for k, r in paused.items() if r["mode"] == "park"}
        if self.sweep_parked and (parking or orphans) and time.monotonic() - self.swept >= SWEEP_EVERY_S:
            self.swept = time.monotonic()
            wanted = {(s.queue.namespace, s.queue.name) for s in statuses}
            for schema, name in sorted((parking | orphans) & wanted):
                try:
                    layout = await self.reader._layout(schema)
                    if layout.major not in ("v10", "v11", "v12"):
                        continue
                    if (schema, name) in parking:
                        await self._tx(lambda conn: self._park(conn, layout, name))
                    else:
                        await self._tx(lambda conn: self._unpark(conn, layout, name))
                except BackendError as exc:
                    for s in statuses:
                        if (s.queue.namespace, s.queue.name) == (schema, name):
                            s.info["park sweep"] = f"failed: {exc}"
        return statuses
