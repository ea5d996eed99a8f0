"""Read side of BullMQ queues stored in PostgreSQL (docs/backends/bullmq-postgres.md).

Counts, logs and flow children come from BullMQ's own command files (``get_counts``,
``get_job_logs_*``, ``get_dependency_counts``, ``get_dependencies_page``) run in a read-only
transaction whose ``search_path`` is pinned to the queue's schema, so the numbers are the ones
``Queue.getJobCounts`` reports. Pages are keyset walks of the state-scoped partial indexes of
BullMQ's ``job`` table. Every session is ``default_transaction_read_only`` with a
``statement_timeout`` (backends.postgres). Changes live in ``backends.bullmq_postgres.writer``,
on a writable pool of its own.
"""
from __future__ import annotations

import json
import time

import asyncpg

from backends.blob import ROW_LIMIT, to_blob
from backends.bullmq_postgres import cursor as cur
from backends.bullmq_postgres.layout import (
    BACKEND,
    SCHEMAS_SQL,
    command,
    queues_sql,
    read_only_reason,
    search_path_sql,
    version_sql,
)
from backends.bullmq_postgres.writer import BullMQPgWriter
from backends.contract import (
    CANONICAL_STATES,
    DEPENDENCY_KINDS,
    FLOW_CHILDREN_CAP,
    Capabilities,
    Discovery,
    Flow,
    FlowJob,
    JobDetail,
    JobSummary,
    History,
    Latency,
    LogLines,
    Page,
    QueueGauges,
    QueueRef,
    QueueStatus,
    ComposedReader,
    Throughput,
)
from backends.errors import BadRequest, UnknownState
from backends.minute_metrics import HISTORY_MINUTES, history_of, minute_counts
from backends.postgres import close_pool, pg_errors, quote_ident
from backends.urls import ConnectionUrl

STATES = CANONICAL_STATES[:5] + ("waiting_children",)
#: BullMQ's native states (the keys of getJobCounts) -> canonical
CANONICAL = {"waiting": "waiting", "prioritized": "waiting", "paused": "waiting", "delayed": "delayed",
             "active": "active", "completed": "completed", "failed": "failed",
             "waiting-children": "waiting_children"}
LOG_TAIL = 200
#: children listed per category in a parent's detail view
CHILDREN_SHOWN = 20
#: latency is taken over this many most recently completed jobs per queue (as for BullMQ on Redis)
LATENCY_SAMPLE = 50
SUMMARY_COLUMNS = ("id, name, state::text AS state, priority, delay_ms, attempts_made, added_at_ms, "
                   "processed_at_ms, finished_at_ms, failed_reason, seq, process_at_ms")


#: job_dependency.status -> BullMQ's name for it (getDependenciesCount)
DEP_KIND = {"pending": "unprocessed", "failed": "failed", "ignored": "ignored", "processed": "processed"}
FLOW_PARENT_SQL = """
SELECT j.parent_queue, j.parent_id, p.state::text AS parent_state, p.priority AS parent_priority,
       (SELECT count(*) FROM job_dependency d WHERE d.parent_queue = j.parent_queue
          AND d.parent_id = j.parent_id AND d.status = 'pending')::int AS parent_pending
FROM job j LEFT JOIN job p ON p.queue = j.parent_queue AND p.id = j.parent_id
WHERE j.queue = $1 AND j.id = $2"""
#: at most $3 children per status (pending first), each from the (parent, status) index
FLOW_CHILDREN_SQL = """
SELECT d.child_queue, d.child_id, d.status::text AS status, c.state::text AS state, c.priority
FROM unnest(ARRAY['pending', 'failed', 'ignored', 'processed']::dep_status[]) WITH ORDINALITY AS s(status, rank)
CROSS JOIN LATERAL (SELECT child_queue, child_id, status FROM job_dependency
                    WHERE parent_queue = $1 AND parent_id = $2 AND status = s.status
                    ORDER BY child_id LIMIT $3) d
LEFT JOIN job c ON c.queue = d.child_queue AND c.id = d.child_id
ORDER BY s.rank, d.child_id"""


def _native(row) -> str:
    state = row["state"]
    if state == "waiting" and (row["priority"] or 0) > 0:
        return "prioritized"
    return state


def _summary(row, reason_limit: int = ROW_LIMIT) -> JobSummary:
    native = _native(row)
    return JobSummary(id=row["id"], state=CANONICAL[native], native_state=native, name=row["name"],
                      created_ms=row["added_at_ms"], processed_ms=row["processed_at_ms"],
                      finished_ms=row["finished_at_ms"], attempts_made=row["attempts_made"],
                      priority=row["priority"], delay_ms=row["delay_ms"],
                      failed_reason=to_blob(row["failed_reason"], reason_limit))


def _json_text(value) -> str | None:
    """asyncpg returns jsonb as its JSON text already; keep it as stored."""
    return None if value is None else str(value)


class BullMQPgReader(ComposedReader):
    """Every BullMQ schema in one PostgreSQL database (or the one ``schema`` pins)."""

    backend = BACKEND
    capabilities = Capabilities(states=STATES, job_logs=True, throughput=True, latency=True, retry=True, purge=True,
                                promote=True, pause=True, flows=True, namespace_label="schema")

    def __init__(self, pool, url: ConnectionUrl, schema: str | None = None) -> None:
        self.pool = pool
        self.url = url
        self.schema = schema
        self._versions: dict[str, int] = {}
        #: the last refresh's canonical counts per queue: a page's "of N" (the number on the state's tab)
        self._last_counts: dict[tuple[str, str, str, str], dict[str, int | None]] = {}
        self._events_seen: dict[tuple[str, str, str, str], tuple[int, float]] = {}
        self.writer = BullMQPgWriter(pool, url, self._checked_version)

    # ------------------------------------------------------------------ plumbing
    async def _in_schema(self, schema: str, fn):
        """``fn(conn)`` in one read-only transaction whose search_path is ``schema``."""
        async with pg_errors(self.url), self.pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(search_path_sql(), quote_ident(schema))
            return await fn(conn)

    async def _version(self, schema: str, refresh: bool = False) -> int:
        if refresh or schema not in self._versions:
            async with pg_errors(self.url):
                row = await self.pool.fetchrow(version_sql(schema))
            self._versions[schema] = int(row["version"])
        return self._versions[schema]

    async def _checked_version(self, queue: QueueRef) -> int:
        if queue.backend != BACKEND:
            raise BadRequest(f"{queue.backend} is not a BullMQ-on-PostgreSQL queue")
        version = await self._version(queue.namespace, refresh=True)
        reason = read_only_reason(version)
        if reason:
            from backends.errors import Unsupported

            raise Unsupported(reason)
        return version

    def retry_notes(self, queue: QueueRef, bulk: bool, reset_attempts: bool) -> list[str]:
        if bulk:
            return ["bulk retry runs BullMQ's retry_jobs (Queue.retryJobs): it resets attemptsMade and "
                    "attemptsStarted of every job it moves, so each gets its full retry budget again"]
        if not reset_attempts:
            return ["attempts are not reset: each job gets one more attempt (use --reset-attempts for its "
                    "full retry budget)"]
        return []

    def queue_capabilities(self, queue: QueueRef) -> Capabilities:
        version = self._versions.get(queue.namespace)
        reason = read_only_reason(version) if version is not None else None
        return self.capabilities.read_only(reason) if reason else self.capabilities

    def _ref(self, schema: str, name: str) -> QueueRef:
        return QueueRef(connection=self.url.redacted, backend=BACKEND, namespace=schema, name=name)

    # ------------------------------------------------------------------ discovery and counts
    async def schemas(self) -> list[str]:
        async with pg_errors(self.url):
            return [r["schema"] for r in await self.pool.fetch(SCHEMAS_SQL, self.schema)]

    async def discover(self) -> Discovery:
        schemas = await self.schemas()
        queues = []
        for schema in schemas:
            await self._version(schema, refresh=True)
            async with pg_errors(self.url):
                rows = await self.pool.fetch(queues_sql(schema))
            queues += [self._ref(schema, r["name"]) for r in rows]
        looked = [f"BullMQ schema {self.schema}" if self.schema else "BullMQ schemas (tables job, job_dependency, meta, migration)"]
        hint = None if schemas else "pass --schema SCHEMA for a BullMQ schema of another name"
        return Discovery(queues=queues, looked_for=looked, hint=hint)

    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        by_schema: dict[str, list[QueueRef]] = {}
        for q in queues:
            by_schema.setdefault(q.namespace, []).append(q)
        out: dict[QueueRef, QueueStatus] = {}
        for schema, qs in by_schema.items():
            async def counts(conn, qs=qs):
                now = await conn.fetchval("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
                return now, [await conn.fetchrow(command("get_counts"), q.name) for q in qs]
            now_ms, rows = await self._in_schema(schema, counts)
            for q, r in zip(qs, rows):
                out[q] = self._status(q, r, now_ms)
        return [out[q] for q in queues]

    def _status(self, q: QueueRef, r, now_ms: int) -> QueueStatus:
        # as PostgresQueueBackend.getCounts: a paused queue reports its waiting jobs as "paused"
        paused = r["paused"] == "1"
        waiting = int(r["waiting"])
        native = {"active": int(r["active"]), "completed": int(r["completed"]), "delayed": int(r["delayed"]),
                  "failed": int(r["failed"]), "prioritized": int(r["prioritized"]),
                  "waiting": 0 if paused else waiting, "waiting-children": int(r["waiting-children"]),
                  "paused": waiting if paused else 0}
        counts = {"waiting": waiting + native["prioritized"], "delayed": native["delayed"],
                  "active": native["active"], "completed": native["completed"], "failed": native["failed"],
                  "cancelled": None, "waiting_children": native["waiting-children"]}
        self._last_counts[q.key] = counts
        info = {"schema version": str(self._versions.get(q.namespace, "?"))}
        return QueueStatus(queue=q, paused=paused, counts=counts, native=native, info=info, server_time_ms=now_ms)

    # ------------------------------------------------------------------ pages and jobs
    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        if state not in cur.ORDERS:
            raise UnknownState(BACKEND, state, STATES)
        where, cols, _ = cur.ORDERS[state]
        limit = max(1, min(int(limit), 1000))
        s = quote_ident(queue.namespace)
        args: list = [queue.name]
        sql = f"SELECT {SUMMARY_COLUMNS} FROM {s}.job WHERE queue = $1 AND {where}"
        if cursor:
            values = cur.decode(cursor, state)
            sql += cur.after(state, 2)
            args += values
        sql += f" ORDER BY {cur.order_by(state)} LIMIT {limit + 1}"
        total = self._last_counts.get(queue.key, {}).get(state)
        async with pg_errors(self.url):
            rows = await self.pool.fetch(sql, *args)
            if total is None:  # no refresh counted this queue yet: count the state once
                total = await self.pool.fetchval(f"SELECT count(*) FROM {s}.job WHERE queue = $1 AND {where}",
                                                 queue.name)
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = cur.encode(state, [rows[-1][c] for c in cols]) if more and rows else None
        return Page(queue=queue, state=state, jobs=[_summary(r) for r in rows], next_cursor=nxt, total=int(total))

    async def summaries(self, queue: QueueRef, job_ids: list[str], state: str) -> dict[str, JobSummary]:
        async with pg_errors(self.url):
            rows = await self.pool.fetch(
                f"SELECT {SUMMARY_COLUMNS} FROM {quote_ident(queue.namespace)}.job WHERE queue = $1 AND id = ANY($2::text[])",
                queue.name, [str(j) for j in job_ids])
        return {r["id"]: _summary(r) for r in rows}

    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        async def read(conn):
            row = await conn.fetchrow(f"SELECT {SUMMARY_COLUMNS}, data::text AS data, opts::text AS opts, "
                                      "return_value::text AS return_value, progress::text AS progress, "
                                      "stacktrace::text AS stacktrace, max_attempts, attempts_started, "
                                      "parent_key, dedup_id, scheduler_id, processed_by, stalled_count "
                                      "FROM job WHERE queue = $1 AND id = $2", queue.name, str(job_id))
            if row is None:
                return None
            total = await conn.fetchval(command("get_job_logs_count"), queue.name, str(job_id))
            logs = await conn.fetch(command("get_job_logs_desc"), queue.name, str(job_id), 0, LOG_TAIL)
            deps = await conn.fetchrow(command("get_dependency_counts"), queue.name, str(job_id))
            children = {}
            for status, label in (("pending", "unprocessed"), ("failed", "failed")):
                if deps[label]:
                    page = await conn.fetch(command("get_dependencies_page"), queue.name, str(job_id), status, 0,
                                            CHILDREN_SHOWN)
                    children[label] = [r["child_key"] for r in page]
            return row, int(total), [r["row"] for r in reversed(logs)], deps, children

        got = await self._in_schema(queue.namespace, read)
        if got is None:
            return None
        row, log_total, lines, deps, children = got
        stack = []
        if row["stacktrace"]:
            try:
                parsed = json.loads(row["stacktrace"])
                frames = parsed if isinstance(parsed, list) else [parsed]
            except ValueError:
                frames = [row["stacktrace"]]
            stack = [to_blob(str(f)) for f in reversed(frames)]
        extra = {}
        for name in ("parent_key", "dedup_id", "scheduler_id", "processed_by"):
            if row[name] is not None:
                extra[name] = str(row[name])[:ROW_LIMIT]
        if any(deps[k] for k in ("processed", "unprocessed", "ignored", "failed")):
            extra["children"] = ", ".join(f"{k} {deps[k]}" for k in ("processed", "unprocessed", "ignored", "failed"))
            for label, keys in children.items():
                extra[f"children {label}"] = ", ".join(keys)[:ROW_LIMIT * 4]
        return JobDetail(summary=_summary(row, reason_limit=ROW_LIMIT * 20), data=to_blob(row["data"]),
                         options=to_blob(row["opts"]), return_value=to_blob(row["return_value"]),
                         progress=row["progress"][:ROW_LIMIT] if row["progress"] else None,
                         stacktrace=[s for s in stack if s is not None],
                         logs=LogLines(lines=lines, total=log_total), attempts_started=row["attempts_started"],
                         max_attempts=row["max_attempts"], extra=extra)

    # ------------------------------------------------------------------ flows
    async def flow(self, queue: QueueRef, job_id: str, cap: int = FLOW_CHILDREN_CAP) -> Flow | None:
        """From ``job_dependency`` (one row per parent/child link, ``status`` pending / failed /
        ignored / processed): the counts by BullMQ's own ``get_dependency_counts``, at most ``cap``
        children (pending first, each status read by the ``(parent_queue, parent_id, status)``
        index), and the child's ``parent_queue``/``parent_id``."""
        async def read(conn):
            me = await conn.fetchrow(FLOW_PARENT_SQL, queue.name, str(job_id))
            if me is None:
                return None
            deps = await conn.fetchrow(command("get_dependency_counts"), queue.name, str(job_id))
            kids = await conn.fetch(FLOW_CHILDREN_SQL, queue.name, str(job_id), cap) if any(deps.values()) else []
            return me, deps, kids

        got = await self._in_schema(queue.namespace, read)
        if got is None:
            return None
        me, deps, kids = got

        def node(name, ident, state, priority, dependency=None) -> FlowJob:
            native = _native({"state": state, "priority": priority}) if state else None
            return FlowJob(namespace=queue.namespace, queue=name, id=ident, native_state=native,
                           state=CANONICAL.get(native, native) if native else None, dependency=dependency)

        parent = None
        if me["parent_id"] is not None:
            parent = node(me["parent_queue"], me["parent_id"], me["parent_state"], me["parent_priority"])
        children = [node(r["child_queue"], r["child_id"], r["state"], r["priority"], DEP_KIND[r["status"]])
                    for r in kids][:cap]
        counts = {kind: int(deps[kind]) for kind in DEPENDENCY_KINDS}
        return Flow(parent=parent, parent_pending=me["parent_pending"] if parent else None, children=children,
                    counts=counts, cap=cap)

    # ------------------------------------------------------------------ gauges
    async def gauges(self, queues: list[QueueRef]) -> list[QueueGauges]:
        """Oldest waiting: the jobs next in line (the head of ``(priority, seq)``, what a worker
        claims next, and the oldest FIFO job of priority 0, which LIFO jobs may sit ahead of); a
        job entered the line at the latest of ``added_at_ms + delay_ms``, ``processed_at_ms`` and
        ``finished_at_ms`` (BullMQ keeps no enqueue time). Two index probes per queue.
        Workers: BullMQ's ``get_client_list`` (pg_stat_activity of this database), matched as
        ``getWorkers`` matches it: BullMQ for Node names a worker's LISTEN connection ``<queue>``
        or ``<queue>:w:<name>``, BullMQ for Python ``<schema>:<queue>`` or ``<schema>:<queue>:w:<name>``."""
        if not queues:
            return []
        since = "GREATEST(added_at_ms + delay_ms, processed_at_ms, finished_at_ms)"
        out = []
        async with pg_errors(self.url):
            names = [r["application_name"] for r in await self.pool.fetch(command("get_client_list"))]
            now_ms = await self.server_time_ms()
            for q in queues:
                s = quote_ident(q.namespace)
                oldest = await self.pool.fetchval(
                    f"SELECT min(since) FROM ("
                    f"(SELECT {since} AS since FROM {s}.job WHERE queue = $1 AND state = 'waiting' "
                    f"ORDER BY priority, seq LIMIT 1) UNION ALL "
                    f"(SELECT {since} FROM {s}.job WHERE queue = $1 AND state = 'waiting' AND priority = 0 AND seq > 0 "
                    f"ORDER BY priority, seq LIMIT 1)) t", q.name)
                prefixes = (q.name, f"{q.namespace}:{q.name}")
                workers = sum(1 for n in names if n in prefixes or n.startswith(tuple(p + ":w:" for p in prefixes)))
                age = 0.0 if oldest is None else max((now_ms - int(oldest)) / 1000, 0.0)
                out.append(QueueGauges(queue=q, oldest_waiting_s=age, workers=workers))
        return out

    # ------------------------------------------------------------------ throughput
    async def throughput(self, queues: list[QueueRef]) -> list[Throughput]:
        """From BullMQ's event table: ``completed``/``failed`` events with an id past the previous
        sample (the table is trimmed by BullMQ to its max length, so a burst longer than that
        between two samples is under-counted; the first sample only sets the mark)."""
        out = []
        for q in queues:
            s = quote_ident(q.namespace)
            async with pg_errors(self.url):
                mark = self._events_seen.get(q.key)
                if mark is None:
                    top = await self.pool.fetchval(f"SELECT COALESCE(max(id), 0) FROM {s}.event WHERE queue = $1", q.name)
                    self._events_seen[q.key] = (int(top), time.monotonic())
                    continue
                row = await self.pool.fetchrow(
                    f"SELECT COALESCE(max(id), $2) AS top, count(*) FILTER (WHERE event = 'completed') AS c, "
                    f"count(*) FILTER (WHERE event = 'failed') AS f FROM {s}.event WHERE queue = $1 AND id > $2",
                    q.name, mark[0])
            now = time.monotonic()
            interval = max(now - mark[1], 1e-3)
            self._events_seen[q.key] = (int(row["top"]), now)
            out.append(Throughput(queue=q, at_ms=int(time.time() * 1000), interval_s=interval,
                                  completed_per_s=int(row["c"]) / interval, failed_per_s=int(row["f"]) / interval,
                                  source="events"))
        return out

    # ------------------------------------------------------------------ history
    async def history(self, queues: list[QueueRef]) -> list[History]:
        """The last hour from the ``metrics`` table, which BullMQ's ``collect_metrics`` keeps as
        its Redis adapter keeps ``metrics:<kind>`` (count, prev_ts, prev_count, per-minute points
        newest first; backends/minute_metrics.py): one statement per schema for its queues, the
        first 60 points of each row. No row (workers without ``metrics``): said so."""
        by_schema: dict[str, list[QueueRef]] = {}
        for q in queues:
            by_schema.setdefault(q.namespace, []).append(q)
        out = []
        for schema, qs in by_schema.items():
            async with pg_errors(self.url):
                try:
                    rows = await self._metrics_rows(schema, qs)
                except asyncpg.UndefinedTableError:  # a schema BullMQ has not migrated yet
                    rows = []
            kept = {(r["queue"], r["kind"]): r for r in rows}
            for q in qs:
                kinds = []
                for kind in ("completed", "failed"):
                    r = kept.get((q.name, kind))
                    kinds.append(None if r is None else minute_counts(
                        r["count"], r["prev_ts"], r["prev_count"], list(r["data"] or []), r["now_ms"]))
                out.append(history_of(q, *kinds))
        return out

    async def _metrics_rows(self, schema: str, qs: list[QueueRef]) -> list:
        """Each queue's two metrics rows (at most HISTORY_MINUTES points each), on the DB clock."""
        return await self.pool.fetch(
            "SELECT queue, kind, count, prev_ts, prev_count, data[1:$2] AS data, "
            "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms "
            f"FROM {quote_ident(schema)}.metrics WHERE queue = ANY($1::text[]) "
            "AND kind IN ('completed', 'failed')", [q.name for q in qs], HISTORY_MINUTES)

    # ------------------------------------------------------------------ latency
    async def latency(self, queues: list[QueueRef]) -> list[Latency]:
        """Wait (processed_at - added_at - delay) and run time (finished_at - processed_at) of the
        LATENCY_SAMPLE most recently completed jobs of each queue (a backward walk of
        job_finished_idx), percentiles interpolated as on Redis."""
        out = []
        for q in queues:
            s = quote_ident(q.namespace)
            async with pg_errors(self.url):
                r = await self.pool.fetchrow(
                    "SELECT count(r) AS n, "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS w50, percentile_cont(0.95) WITHIN GROUP (ORDER BY w) AS w95, "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY r) AS r50, percentile_cont(0.95) WITHIN GROUP (ORDER BY r) AS r95 "
                    "FROM (SELECT GREATEST(processed_at_ms - added_at_ms - delay_ms, 0) AS w, "
                    "GREATEST(finished_at_ms - processed_at_ms, 0) AS r "
                    f"FROM {s}.job WHERE queue = $1 AND state = 'completed' "
                    "ORDER BY finished_at_ms DESC LIMIT $2) t", q.name, LATENCY_SAMPLE)
            out.append(Latency(queue=q, sample_size=int(r["n"]), wait_p50_ms=r["w50"], wait_p95_ms=r["w95"],
                               run_p50_ms=r["r50"], run_p95_ms=r["r95"]))
        return out

    # ------------------------------------------------------------------ mutations: ComposedReader forwards them to self.writer
    async def server_time_ms(self) -> int | None:
        async with pg_errors(self.url):
            return int(await self.pool.fetchval("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"))

    async def close(self) -> None:
        await self.writer.close()
        await close_pool(self.pool)
