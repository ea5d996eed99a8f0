"""Gello queues in PostgreSQL (docs/backends/gello.md, "PostgreSQL layout"): the read side. The
layout and its check are in layout.py, page orders in cursor.py, retry and purge in writer.py
(composed in as ``self.writer``).

Reads are single statements filtered by queue, paged by keyset (never OFFSET, never a whole
table), through read-only sessions. The layout is checked before anything is read: a table with a
missing column, a column of another type, or an extra column is named in ``Discovery.note``.
"""

from __future__ import annotations

import json

from backends.blob import ROW_LIMIT, to_blob
from backends.contract import ComposedReader, Discovery, JobDetail, JobSummary, Page, QueueRef, QueueStatus
from backends.errors import BackendError, UnknownState
from backends.gello.record import BACKEND, PRIORITIES
from backends.gello_postgres import cursor as cursors
from backends.gello_postgres.layout import COLUMNS_SQL, DEFAULT_SCHEMA, FULL, STATES, aware, check, ms
from backends.gello_postgres.writer import GelloPgWriter
from backends.postgres import close_pool, pg_errors, quote_ident
from backends.urls import ConnectionUrl

MAX_QUEUES = 10_000


class GelloPgReader(ComposedReader):
    """Gello's two tables in one schema of one PostgreSQL database."""

    backend = BACKEND

    def __init__(self, pool, url: ConnectionUrl, schema: str | None = None, store_schema: str | None = None,
                 connect_timeout: float = 5.0, op_timeout: float = 10.0,
                 application_name: str = "queue-console") -> None:
        self.pool = pool  # read-only sessions
        self.url = url
        self.schema = schema or DEFAULT_SCHEMA
        self.capabilities = FULL
        self._usable: bool | None = None  # None: layout not checked yet
        self.writer = GelloPgWriter(self, connect_timeout, op_timeout, application_name, store_schema)

    @property
    def write_application_name(self) -> str:
        """application_name of this reader's writable sessions (pg_stat_activity)."""
        return self.writer.write_application_name

    @property
    def _s(self) -> str:
        return quote_ident(self.schema)

    def table(self, table: str) -> str:
        return f"{self._s}.{table}"

    def _ref(self, name: str) -> QueueRef:
        return QueueRef(connection=self.url.redacted, backend=BACKEND, namespace=self.schema, name=name)

    async def _fetch(self, sql: str, *args):
        async with pg_errors(self.url):
            return await self.pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args):
        async with pg_errors(self.url):
            return await self.pool.fetchrow(sql, *args)

    # ------------------------------------------------------------------ layout + discovery
    async def check_layout(self) -> list[str]:
        """Problems with the two tables, each naming the table and column; sets capabilities."""
        problems, self._usable, self.capabilities = check(self.schema, await self._fetch(COLUMNS_SQL, self.schema))
        return problems

    async def discover(self) -> Discovery:
        looked_for = [f"Gello tables {self.schema}.jobs and {self.schema}.failed_jobs"]
        problems = await self.check_layout()
        if not self._usable:
            return Discovery(queues=[], looked_for=looked_for, note="Gello: " + "; ".join(problems))
        rows = await self._fetch(
            f"SELECT queue FROM (SELECT DISTINCT queue FROM {self.table('jobs')} UNION "
            f"SELECT DISTINCT queue FROM {self.table('failed_jobs')}) q ORDER BY queue LIMIT {MAX_QUEUES + 1}")
        names = [r["queue"] for r in rows]
        notes = list(problems)
        complete = len(names) <= MAX_QUEUES
        if not complete:
            names = names[:MAX_QUEUES]
            notes.append(f"more than {MAX_QUEUES} Gello queues: only the first {MAX_QUEUES} are shown")
        return Discovery(queues=[self._ref(n) for n in names], looked_for=looked_for, complete=complete,
                         note=("Gello: " + "; ".join(notes)) if notes else None)

    async def require(self) -> None:
        if self._usable is None:
            await self.check_layout()
        if not self._usable:
            raise BackendError(self.capabilities.read_only_reason or f"no Gello tables in schema {self.schema}")

    # ------------------------------------------------------------------ counts
    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        if not queues:
            return []
        await self.require()
        names = [q.name for q in queues]
        rows = await self._fetch(
            f"""SELECT n.queue, j.waiting, j.delayed, j.active, f.failed, now() AS db_now
                FROM unnest($1::text[]) AS n(queue)
                CROSS JOIN LATERAL (
                  SELECT count(*) FILTER (WHERE started_at IS NULL AND scheduled_at <= now()) AS waiting,
                         count(*) FILTER (WHERE started_at IS NULL AND scheduled_at > now()) AS delayed,
                         count(*) FILTER (WHERE started_at IS NOT NULL) AS active
                  FROM {self.table('jobs')} WHERE queue = n.queue) j
                CROSS JOIN LATERAL (SELECT count(*) AS failed FROM {self.table('failed_jobs')} WHERE queue = n.queue) f""",
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
                native=native, info={"pause": "Gello has no pause"}, server_time_ms=ms(r["db_now"])))
        return out

    # ------------------------------------------------------------------ pages
    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        if state not in cursors.ORDERS:
            raise UnknownState("gello", state, STATES)
        await self.require()
        table, where, order, direction = cursors.ORDERS[state]
        limit = max(1, min(limit, 1000))
        args: list = [queue.name]
        cond = f"queue = $1 AND {where}"
        if cursor:
            values = cursors.decode(cursor, state)
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
            f"SELECT {cols} FROM {self.table(table)} WHERE {cond} ORDER BY {order_sql} LIMIT {limit + 1}", *args)
        total_row = await self.fetchrow(f"SELECT count(*) AS n FROM {self.table(table)} WHERE queue = $1 AND {where}",
                                         queue.name)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = cursors.encode(state, [rows[-1][c] for c in order]) if more else None
        jobs = [self._summary(state, r) for r in rows]
        return Page(queue=queue, state=state, jobs=jobs, next_cursor=next_cursor, total=total_row["n"])

    @staticmethod
    def _summary(state: str, r, reason_limit: int = ROW_LIMIT) -> JobSummary:
        reason = to_blob(r["reason"], reason_limit) if r["reason"] is not None else None
        if state == "failed":
            return JobSummary(id=r["job_id"], state="failed", native_state="failed", name=r["job_type"],
                              finished_ms=ms(r["failed_at"]), attempts_made=r["attempts"], failed_reason=reason)
        created, scheduled = ms(r["created_at"]), ms(r["scheduled_at"])
        delay = scheduled - created if created is not None and scheduled is not None and scheduled > created else None
        return JobSummary(id=r["id"], state=state, native_state=state, name=r["job_type"], created_ms=created,
                          processed_ms=ms(r["started_at"]), attempts_made=r["attempts"], delay_ms=delay,
                          failed_reason=reason)

    # ------------------------------------------------------------------ detail
    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        await self.require()
        row = await self.fetchrow(
            f"""SELECT id, job_type, priority, payload::text AS payload, attempts, max_attempts, created_at,
                       scheduled_at, started_at, idempotency_key, last_error AS reason, now() AS db_now
                FROM {self.table('jobs')} WHERE queue = $1 AND id = $2""", queue.name, job_id)
        if row is not None:
            if row["started_at"] is not None:
                state = "active"
            else:
                state = "waiting" if aware(row["scheduled_at"]) <= aware(row["db_now"]) else "delayed"
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
        row = await self.fetchrow(
            f"""SELECT id, job_id, job_type, payload::text AS payload, exception AS reason, attempts, failed_at,
                       (SELECT count(*) FROM {self.table('failed_jobs')} WHERE queue = $1 AND job_id = $2) AS copies
                FROM {self.table('failed_jobs')} WHERE queue = $1 AND job_id = $2 ORDER BY id DESC LIMIT 1""",
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

    # ------------------------------------------------------------------ clock (bulk snapshots)
    async def server_time_ms(self) -> int | None:
        return await self.writer.server_time_ms()

    async def close(self) -> None:
        await close_pool(self.pool)
        await self.writer.close()
