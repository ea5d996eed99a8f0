"""Gello queues in PostgreSQL (shared/formats/gello.md, "PostgreSQL"): the ``jobs`` and
``failed_jobs`` tables of one schema (``public`` unless configured).

Reads are single statements filtered by queue, paged by keyset (never OFFSET, never a whole
table). Retry and purge of failed jobs are single statements (data-modifying CTEs), so each one is
its own transaction: a retry inserts the new ``jobs`` row and deletes the ``failed_jobs`` row
together or not at all. Rows are picked ``FOR UPDATE SKIP LOCKED`` so two consoles never retry the
same row twice. Only the schema name (from the options, quoted) is pasted into SQL; every value is
a bind parameter.

The layout is checked before anything is read: a table with a missing column, a column of another
type, or an extra column is named in ``Discovery.note``. Missing or mistyped columns: the tables
are not read. An extra NOT NULL column without a default on ``jobs``: read-only (a retry's INSERT
would fail).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os

from backends.blob import ROW_LIMIT, to_blob
from backends.contract import (
    BatchOutcome,
    Capabilities,
    ConsoleStore,
    Discovery,
    JobDetail,
    JobOutcome,
    JobSummary,
    Page,
    QueueRef,
    QueueStatus,
    Reader,
)
from backends.errors import BackendError, BadCursor, BadRequest, Unsupported
from backends.gello.record import BACKEND, PRIORITIES
from backends.postgres import open_write_pool, pg_errors, quote_ident
from backends.urls import ConnectionUrl

DEFAULT_SCHEMA = "public"
STATES = ("waiting", "delayed", "active", "failed")
MAX_BATCH = 1000
MAX_QUEUES = 10_000

EXPECTED: dict[str, dict[str, str]] = {
    "jobs": {
        "id": "text", "queue": "text", "job_type": "text", "priority": "text", "payload": "jsonb",
        "attempts": "integer", "max_attempts": "integer", "created_at": "timestamp with time zone",
        "scheduled_at": "timestamp with time zone", "started_at": "timestamp with time zone",
        "idempotency_key": "text", "last_error": "text",
    },
    "failed_jobs": {
        "id": "bigint", "job_id": "text", "queue": "text", "job_type": "text", "payload": "jsonb",
        "exception": "text", "attempts": "integer", "failed_at": "timestamp with time zone",
    },
}

COLUMNS_SQL = """
SELECT table_name::text AS table_name, column_name::text AS column_name, data_type::text AS data_type,
       is_nullable = 'YES' AS nullable, column_default IS NOT NULL OR is_identity = 'YES' AS has_default
FROM information_schema.columns
WHERE table_schema = $1 AND table_name IN ('jobs', 'failed_jobs')
ORDER BY table_name, ordinal_position
"""


async def detect(pool, schema: str) -> bool:
    """Does ``schema`` look like it holds Gello tables? (``failed_jobs``, or ``jobs`` with a
    ``job_type`` column -- so that an application's unrelated ``jobs`` table is left alone)."""
    rows = await pool.fetch(COLUMNS_SQL, schema)
    tables = {r["table_name"] for r in rows}
    return "failed_jobs" in tables or any(r["table_name"] == "jobs" and r["column_name"] == "job_type" for r in rows)


async def open_pool(url: ConnectionUrl, connect_timeout: float, op_timeout: float, application_name: str):
    """A small read-write pool (retry and purge write); every statement has a timeout."""
    return await open_write_pool(url, connect_timeout, op_timeout, application_name, max_size=3)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """With a time zone; asyncpg gives PostgreSQL's +-infinity as naive datetime.max/min: kept as
    the latest/earliest time there is, so that they still compare with now()."""
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def _ms(value: dt.datetime | None) -> int | None:
    value = _aware(value)
    if value is None or value.replace(tzinfo=None) in (dt.datetime.max, dt.datetime.min):
        return None  # +-infinity: no point in time
    return int(value.timestamp() * 1000)


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


# ---------------------------------------------------------------------- page orders (keysets)
#: state -> (table, WHERE filter, ORDER BY columns, direction)
ORDERS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "waiting": ("jobs", "started_at IS NULL AND scheduled_at <= now()", ("priority", "scheduled_at", "id"), "asc"),
    "delayed": ("jobs", "started_at IS NULL AND scheduled_at > now()", ("scheduled_at", "id"), "asc"),
    "active": ("jobs", "started_at IS NOT NULL", ("started_at", "id"), "asc"),
    "failed": ("failed_jobs", "true", ("failed_at", "id"), "desc"),
}


def _encode_cursor(state: str, values: list) -> str:
    keys = [{"t": v.isoformat()} if isinstance(v, dt.datetime) else v for v in values]
    raw = json.dumps({"s": state, "k": keys}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, state: str) -> list:
    width = len(ORDERS[state][2])
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(doc, dict) or doc.get("s") != state or not isinstance(doc.get("k"), list):
            raise ValueError("not a cursor of this state")
        keys = doc["k"]
        if len(keys) != width:
            raise ValueError("wrong width")
        out = []
        for col, v in zip(ORDERS[state][2], keys):
            if col.endswith("_at"):
                if not isinstance(v, dict) or not isinstance(v.get("t"), str):
                    raise ValueError("bad time")
                t = dt.datetime.fromisoformat(v["t"])
                if t.tzinfo is None:
                    raise ValueError("naive time")
                out.append(t)
            elif state == "failed" and col == "id":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError("bad id")
                out.append(v)
            else:
                if not isinstance(v, str):
                    raise ValueError("bad key")
                out.append(v)
        return out
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise BadCursor(f"bad page cursor {cursor!r} for {state} jobs") from None


class GelloPgReader(Reader):
    """Gello's two tables in one schema of one PostgreSQL database."""

    backend = BACKEND

    def __init__(self, pool, url: ConnectionUrl, schema: str | None = None, store_schema: str | None = None) -> None:
        self.pool = pool
        self.store_schema = store_schema
        self._store_done: set[str] = set()
        self.url = url
        self.schema = schema or DEFAULT_SCHEMA
        self.capabilities = Capabilities(states=STATES, pause=False, retry=True, purge=True, delayed_retry=True, namespace_label="schema")
        self._usable: bool | None = None  # None: layout not checked yet

    @property
    def _s(self) -> str:
        return quote_ident(self.schema)

    def _t(self, table: str) -> str:
        return f"{self._s}.{table}"

    def _ref(self, name: str) -> QueueRef:
        return QueueRef(connection=self.url.redacted, backend=BACKEND, namespace=self.schema, name=name)

    async def _fetch(self, sql: str, *args):
        async with pg_errors(self.url):
            return await self.pool.fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args):
        async with pg_errors(self.url):
            return await self.pool.fetchrow(sql, *args)

    # ------------------------------------------------------------------ layout + discovery
    async def check_layout(self) -> list[str]:
        """Problems with the two tables, each naming the table and column; sets capabilities."""
        rows = await self._fetch(COLUMNS_SQL, self.schema)
        have: dict[str, dict[str, tuple[str, bool, bool]]] = {}
        for r in rows:
            have.setdefault(r["table_name"], {})[r["column_name"]] = (r["data_type"], r["nullable"], r["has_default"])
        problems: list[str] = []
        fatal = False
        read_only: list[str] = []
        for table, expected in EXPECTED.items():
            cols = have.get(table)
            where = f"table {self.schema}.{table}"
            if cols is None:
                problems.append(f"{where} does not exist")
                fatal = True
                continue
            for col, typ in expected.items():
                if col not in cols:
                    problems.append(f"{where} is missing column {col!r} ({typ})")
                    fatal = True
                elif cols[col][0] != typ:
                    problems.append(f"{where} column {col!r} is {cols[col][0]}, expected {typ}")
                    fatal = True
            for col, (typ, nullable, has_default) in cols.items():
                if col in expected:
                    continue
                if not nullable and not has_default:
                    problems.append(f"{where} has an extra column {col!r} ({typ}, NOT NULL, no default)")
                    read_only.append(col)
                else:
                    problems.append(f"{where} has an extra column {col!r} ({typ}), not part of Gello's layout; ignored")
        self._usable = not fatal
        if fatal:
            reason = "not a Gello layout: " + "; ".join(problems)
            self.capabilities = Capabilities(states=STATES, read_only_reason=reason, namespace_label="schema")
        elif read_only:
            reason = (f"read-only: extra NOT NULL column(s) {', '.join(repr(c) for c in read_only)} without a default "
                      "would make a retry's INSERT fail")
            self.capabilities = Capabilities(states=STATES, purge=True, read_only_reason=reason, namespace_label="schema")
        else:
            self.capabilities = Capabilities(states=STATES, pause=False, retry=True, purge=True, delayed_retry=True, namespace_label="schema")
        return problems

    async def discover(self) -> Discovery:
        looked_for = [f"Gello tables {self.schema}.jobs and {self.schema}.failed_jobs"]
        problems = await self.check_layout()
        if not self._usable:
            return Discovery(queues=[], looked_for=looked_for, note="Gello: " + "; ".join(problems))
        rows = await self._fetch(
            f"SELECT queue FROM (SELECT DISTINCT queue FROM {self._t('jobs')} UNION "
            f"SELECT DISTINCT queue FROM {self._t('failed_jobs')}) q ORDER BY queue LIMIT {MAX_QUEUES + 1}")
        names = [r["queue"] for r in rows]
        notes = list(problems)
        complete = len(names) <= MAX_QUEUES
        if not complete:
            names = names[:MAX_QUEUES]
            notes.append(f"more than {MAX_QUEUES} Gello queues: only the first {MAX_QUEUES} are shown")
        return Discovery(queues=[self._ref(n) for n in names], looked_for=looked_for, complete=complete,
                         note=("Gello: " + "; ".join(notes)) if notes else None)

    async def _require(self) -> None:
        if self._usable is None:
            await self.check_layout()
        if not self._usable:
            raise BackendError(self.capabilities.read_only_reason or f"no Gello tables in schema {self.schema}")

    # ------------------------------------------------------------------ counts
    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        if not queues:
            return []
        await self._require()
        names = [q.name for q in queues]
        rows = await self._fetch(
            f"""SELECT n.queue, j.waiting, j.delayed, j.active, f.failed, now() AS db_now
                FROM unnest($1::text[]) AS n(queue)
                CROSS JOIN LATERAL (
                  SELECT count(*) FILTER (WHERE started_at IS NULL AND scheduled_at <= now()) AS waiting,
                         count(*) FILTER (WHERE started_at IS NULL AND scheduled_at > now()) AS delayed,
                         count(*) FILTER (WHERE started_at IS NOT NULL) AS active
                  FROM {self._t('jobs')} WHERE queue = n.queue) j
                CROSS JOIN LATERAL (SELECT count(*) AS failed FROM {self._t('failed_jobs')} WHERE queue = n.queue) f""",
            names)
        by_name = {r["queue"]: r for r in rows}
        out = []
        for q in queues:
            r = by_name[q.name]
            native = {"waiting": r["waiting"], "delayed": r["delayed"], "active": r["active"], "failed": r["failed"]}
            out.append(QueueStatus(
                queue=q, paused=False,
                counts={"waiting": r["waiting"], "delayed": r["delayed"], "active": r["active"], "completed": None,
                        "failed": r["failed"], "cancelled": None},
                native=native, info={"pause": "Gello has no pause"}, server_time_ms=_ms(r["db_now"])))
        return out

    # ------------------------------------------------------------------ pages
    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        if state not in ORDERS:
            raise BadRequest(f"gello has no state {state!r} (it has {', '.join(STATES)})")
        await self._require()
        table, where, order, direction = ORDERS[state]
        limit = max(1, min(limit, 1000))
        args: list = [queue.name]
        cond = f"queue = $1 AND {where}"
        if cursor:
            values = _decode_cursor(cursor, state)
            ph = [f"${i + 2}" for i in range(len(values))]
            op = ">" if direction == "asc" else "<"
            cond += f" AND ({', '.join(order)}) {op} ({', '.join(ph)})"
            args += values
        dir_sql = "ASC" if direction == "asc" else "DESC"
        order_sql = ", ".join(f"{c} {dir_sql}" for c in order)
        if table == "jobs":
            cols = ("id, job_type, priority, attempts, max_attempts, created_at, scheduled_at, started_at, "
                    "idempotency_key, left(last_error, 2000) AS reason")
        else:
            cols = "id, job_id, job_type, attempts, failed_at, left(exception, 2000) AS reason"
        rows = await self._fetch(
            f"SELECT {cols} FROM {self._t(table)} WHERE {cond} ORDER BY {order_sql} LIMIT {limit + 1}", *args)
        total_row = await self._fetchrow(f"SELECT count(*) AS n FROM {self._t(table)} WHERE queue = $1 AND {where}",
                                         queue.name)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(state, [rows[-1][c] for c in order]) if more else None
        jobs = [self._summary(state, r) for r in rows]
        return Page(queue=queue, state=state, jobs=jobs, next_cursor=next_cursor, total=total_row["n"])

    @staticmethod
    def _summary(state: str, r, reason_limit: int = ROW_LIMIT) -> JobSummary:
        reason = to_blob(r["reason"], reason_limit) if r["reason"] is not None else None
        if state == "failed":
            return JobSummary(id=r["job_id"], state="failed", native_state="failed", name=r["job_type"],
                              finished_ms=_ms(r["failed_at"]), attempts_made=r["attempts"], failed_reason=reason)
        created, scheduled = _ms(r["created_at"]), _ms(r["scheduled_at"])
        delay = scheduled - created if created is not None and scheduled is not None and scheduled > created else None
        return JobSummary(id=r["id"], state=state, native_state=state, name=r["job_type"], created_ms=created,
                          processed_ms=_ms(r["started_at"]), attempts_made=r["attempts"], delay_ms=delay,
                          failed_reason=reason)

    # ------------------------------------------------------------------ detail
    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        await self._require()
        row = await self._fetchrow(
            f"""SELECT id, job_type, priority, payload::text AS payload, attempts, max_attempts, created_at,
                       scheduled_at, started_at, idempotency_key, last_error AS reason, now() AS db_now
                FROM {self._t('jobs')} WHERE queue = $1 AND id = $2""", queue.name, job_id)
        if row is not None:
            if row["started_at"] is not None:
                state = "active"
            else:
                state = "waiting" if _aware(row["scheduled_at"]) <= _aware(row["db_now"]) else "delayed"
            summary = self._summary(state, row, reason_limit=ROW_LIMIT * 20)
            priority = row["priority"]
            extra = {
                "priority": priority + ("" if priority in PRIORITIES else " (not one of low, normal, high, critical)"),
                "idempotency key": row["idempotency_key"] if row["idempotency_key"] is not None else "(none)",
                "job_type": row["job_type"], "attempts": str(row["attempts"]),
                "max_attempts": str(row["max_attempts"]), "created_at": row["created_at"].isoformat(),
                "scheduled_at": row["scheduled_at"].isoformat(),
            }
            if row["started_at"] is not None:
                extra["started_at"] = row["started_at"].isoformat()
            options = {"priority": priority, "max_attempts": row["max_attempts"],
                       "idempotency_key": row["idempotency_key"], "scheduled_at": row["scheduled_at"].isoformat()}
            return JobDetail(summary=summary, data=to_blob(row["payload"]),
                             options=to_blob(json.dumps(options, sort_keys=True)),
                             stacktrace=[to_blob(row["reason"])] if row["reason"] else [],
                             attempts_started=row["attempts"], max_attempts=row["max_attempts"], extra=extra)
        row = await self._fetchrow(
            f"""SELECT id, job_id, job_type, payload::text AS payload, exception AS reason, attempts, failed_at,
                       (SELECT count(*) FROM {self._t('failed_jobs')} WHERE queue = $1 AND job_id = $2) AS copies
                FROM {self._t('failed_jobs')} WHERE queue = $1 AND job_id = $2 ORDER BY id DESC LIMIT 1""",
            queue.name, job_id)
        if row is None:
            return None
        extra = {
            "priority": "(not kept in failed_jobs; a retry runs at 'normal')",
            "idempotency key": "(not kept in failed_jobs)",
            "job_type": row["job_type"], "attempts": str(row["attempts"]),
            "failed_at": row["failed_at"].isoformat(), "failed_jobs.id": str(row["id"]),
        }
        if row["copies"] > 1:
            extra["failed rows"] = f"{row['copies']} rows of failed_jobs have this job id (newest shown)"
        return JobDetail(summary=self._summary("failed", row, reason_limit=ROW_LIMIT * 20),
                         data=to_blob(row["payload"]), stacktrace=[to_blob(row["reason"])] if row["reason"] else [],
                         attempts_started=row["attempts"], extra=extra)

    # ------------------------------------------------------------------ mutations
    async def server_time_ms(self) -> int | None:
        row = await self._fetchrow("SELECT extract(epoch FROM now())::float8 AS t")
        # rounded up, so that a row that failed in the current millisecond is in the snapshot
        return int(math.ceil(row["t"] * 1000))

    @staticmethod
    def _check_failed(state: str | None, what: str) -> None:
        if state not in (None, "failed"):
            raise BackendError(f"gello can {what} failed jobs only, not {state!r}")

    async def _writable(self, what: str) -> None:
        await self._require()
        if not getattr(self.capabilities, what):
            raise Unsupported(self.capabilities.read_only_reason or f"gello cannot {what} here")

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        self._check_failed(state, "count finished")
        await self._require()
        row = await self._fetchrow(
            f"SELECT count(*) AS n FROM {self._t('failed_jobs')} WHERE queue = $1 AND failed_at <= $2",
            queue.name, _ts(before_ms))
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
                    SELECT job_id, queue, job_type, payload, 0, coalesce($RUN_AT::timestamptz, now()) FROM chosen
                    ON CONFLICT (id) DO NOTHING RETURNING id),
            del AS (DELETE FROM {failed} f USING chosen c
                    WHERE f.id = c.id AND c.job_id IN (SELECT id FROM ins) RETURNING f.job_id)
            SELECT (SELECT array_agg(job_id) FROM picked) AS picked, (SELECT array_agg(job_id) FROM del) AS done"""

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None) -> list[JobOutcome]:
        """Retry failed jobs by job id (newest failed row of that id), each in its own statement.
        Attempts always restart at 0: that is Gello's retry."""
        self._check_failed(state, "retry")
        await self._writable("retry")
        failed = self._t("failed_jobs")
        picked = (f"SELECT id, job_id, queue, job_type, payload FROM {failed} WHERE queue = $1 AND job_id = $2 "
                  "ORDER BY id DESC LIMIT 1 FOR UPDATE SKIP LOCKED")
        sql = self._retry_sql(picked).replace("$RUN_AT", "$3")
        run_at = _ts(run_at_ms) if run_at_ms is not None else None
        out = []
        async with pg_errors(self.url):
            for job_id in job_ids:
                row = await self.pool.fetchrow(sql, queue.name, job_id, run_at)
                if row["done"]:
                    out.append(JobOutcome(job_id=job_id, ok=True, status="retried"))
                elif row["picked"]:
                    out.append(JobOutcome(job_id=job_id, ok=False, status="exists"))  # a jobs row has this id
                else:
                    live = await self.pool.fetchval(
                        f"SELECT count(*) FROM {self._t('jobs')} WHERE queue = $1 AND id = $2", queue.name, job_id)
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-in-state" if live else "not-found"))
        return out

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Retry the oldest failed rows that failed at or before ``before_ms`` (one statement).
        Rows whose job id is already in ``jobs`` are left alone (they would conflict)."""
        self._check_failed(state, "retry")
        await self._writable("retry")
        count = max(1, min(count, MAX_BATCH))
        failed, jobs = self._t("failed_jobs"), self._t("jobs")
        picked = (f"SELECT f.id, f.job_id, f.queue, f.job_type, f.payload FROM {failed} f "
                  f"WHERE f.queue = $1 AND f.failed_at <= $2 AND NOT EXISTS (SELECT 1 FROM {jobs} j WHERE j.id = f.job_id) "
                  f"ORDER BY f.failed_at, f.id LIMIT {count} FOR UPDATE OF f SKIP LOCKED")
        sql = self._retry_sql(picked).replace("$RUN_AT", "$3")
        async with pg_errors(self.url):
            row = await self.pool.fetchrow(sql, queue.name, _ts(before_ms), None)
            done = list(row["done"] or [])
            more = bool(done) and bool(await self.pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {failed} f WHERE f.queue = $1 AND f.failed_at <= $2 "
                f"AND NOT EXISTS (SELECT 1 FROM {jobs} j WHERE j.id = f.job_id))", queue.name, _ts(before_ms)))
        return BatchOutcome(done=len(done), more=more, ids=done)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        """Purge failed jobs by job id (every failed row of that id), one statement per id."""
        self._check_failed(state, "purge")
        await self._writable("purge")
        out = []
        async with pg_errors(self.url):
            for job_id in job_ids:
                n = await self.pool.fetchval(
                    f"WITH d AS (DELETE FROM {self._t('failed_jobs')} WHERE queue = $1 AND job_id = $2 RETURNING 1) "
                    "SELECT count(*) FROM d", queue.name, job_id)
                if n:
                    out.append(JobOutcome(job_id=job_id, ok=True, status="removed"))
                else:
                    live = await self.pool.fetchval(
                        f"SELECT count(*) FROM {self._t('jobs')} WHERE queue = $1 AND id = $2", queue.name, job_id)
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-in-state" if live else "not-found"))
        return out

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        self._check_failed(state, "purge")
        await self._writable("purge")
        count = max(1, min(count, MAX_BATCH))
        failed = self._t("failed_jobs")
        async with pg_errors(self.url):
            rows = await self.pool.fetch(
                f"""DELETE FROM {failed} WHERE id IN (
                      SELECT id FROM {failed} WHERE queue = $1 AND failed_at <= $2
                      ORDER BY failed_at, id LIMIT {count} FOR UPDATE SKIP LOCKED)
                    RETURNING job_id""", queue.name, _ts(before_ms))
            more = bool(rows) and bool(await self.pool.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {failed} WHERE queue = $1 AND failed_at <= $2)",
                queue.name, _ts(before_ms)))
        return BatchOutcome(done=len(rows), more=more, ids=[r["job_id"] for r in rows])

    def console_store(self) -> ConsoleStore | None:
        """The PostgreSQL console store of backends.pgboss (schema ``queue_console`` unless
        configured), shared with pg-boss queues on the same database; None if it is unavailable."""
        try:
            from backends.pgboss.console_store import PgConsoleStore
        except ImportError:
            return None

        async def write_pool():
            return self.pool

        return PgConsoleStore(self.pool, write_pool, self._store_ready, self.url, self._store_schema)

    @property
    def _store_schema(self) -> str:
        from backends.pgboss.console_store import DEFAULT_SCHEMA as STORE_DEFAULT

        return self.store_schema or os.environ.get("QUEUE_CONSOLE_STORE_SCHEMA") or STORE_DEFAULT

    async def _store_ready(self) -> None:
        """CREATE SCHEMA/TABLE IF NOT EXISTS in the console's own schema, once (as pg-boss's does)."""
        from backends.pgboss.console_store import ddl

        name = self._store_schema
        if name in self._store_done:
            return
        async with pg_errors(self.url), self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"queue-console store {name}")
            for stmt in ddl(name):
                await conn.execute(stmt)
        self._store_done.add(name)

    async def close(self) -> None:
        try:
            await self.pool.close()
        except Exception:
            self.pool.terminate()
