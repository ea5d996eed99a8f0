"""Read side of pg-boss queues in PostgreSQL, per schema version (docs/backends/pgboss.md).

Reading never writes and never runs DDL: every read session is ``default_transaction_read_only``
with a ``statement_timeout``; each statement is one short autocommit query filtered by queue name.
Only catalog identifiers (schema names) are pasted into SQL, quoted; all other values are
parameters. Changes (retry, purge, promote, cancel, parking pause) live in
``backends.pgboss.writer`` on a separate writable pool; the re-park sweep of a console-paused
queue is the one write a refresh can do, and it is off in read-only mode.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass

from backends.blob import ROW_LIMIT, to_blob
from backends.contract import (
    CANONICAL_STATES,
    Capabilities,
    ComposedReader,
    Discovery,
    JobDetail,
    JobSummary,
    History,
    Latency,
    Page,
    QueueGauges,
    QueueRef,
    QueueStatus,
    Throughput,
)
from backends.errors import BackendError, BackendTimeout, UnknownState
from backends.pgboss.declaration import DECLARATION
from backends.pgboss.layout import Layout, quote_ident
from backends.pgboss.writer import PgBossWriter
from backends.page_cursor import pack_keys, unpack_keys
from backends.postgres import close_pool, pg_errors
from backends.urls import ConnectionUrl

BACKEND = "pgboss"
#: per refresh, queue tables are counted exactly (one pass over their rows), smallest first, while
#: their sizes add up to at most this; the other queues get pg-boss's fresh cached counts or the
#: indexed live counts, and estimates for what no index covers
EXACT_MAX_BYTES = 8 * 1024 * 1024
#: queues counted live per statement (index-only counts, ~0.5 ms a queue on a 2M-row v10 schema):
#: a refresh of many uncached queues is a few short statements rather than one long one
LIVE_CHUNK = 10
#: queues per throughput statement (an index range each with 12.38's job_i16)
THROUGHPUT_CHUNK = 25
#: throughput is sampled at most this often
THROUGHPUT_MIN_S = 5.0
#: without an index on completed_on (v9-v11, v12 before job_i16) a throughput sample scans queue
#: tables: at most this many bytes of them per call, queue by queue in turn; a queue whose table is
#: bigger is not measured (labelled)
THROUGHPUT_SCAN_BYTES = 16 * 1024 * 1024
#: latency is taken over this many most recently completed jobs per queue (as for BullMQ)
LATENCY_SAMPLE = 50
#: at most this many of a queue's most recent finishes make its history (the last hour by minute)
HISTORY_ROWS = 20_000
#: cached counters older than this are stale (2 x pg-boss's default monitor interval): they are
#: labelled so and not used as the counts
STALE_COUNTERS_S = 120.0
#: the on-demand count of a list's total gives up after this long (total unknown)
STORED_COUNT_TIMEOUT_MS = 1000
#: a list total counted on demand is reused for this long (pages and reloads of the same list)
TOTAL_TTL_S = 300.0

SCHEMAS_SQL = """
SELECT n.nspname
FROM pg_catalog.pg_namespace n
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c
              WHERE c.relnamespace = n.oid AND c.relname = 'version' AND c.relkind IN ('r', 'p'))
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c
              WHERE c.relnamespace = n.oid AND c.relname = 'job' AND c.relkind IN ('r', 'p'))
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_type t
              WHERE t.typnamespace = n.oid AND t.typname = 'job_state' AND t.typtype = 'e')
  AND ($1::text IS NULL OR n.nspname = $1::text)
ORDER BY n.nspname
"""

LAYOUT_SQL = """
SELECT
  ARRAY(SELECT column_name::text FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = 'job') AS job_columns,
  ARRAY(SELECT column_name::text FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = 'queue') AS queue_columns,
  ARRAY(SELECT ic.relname::text
        FROM pg_catalog.pg_index i
        JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = tc.relnamespace
        WHERE n.nspname = $1 AND tc.relname IN ('job', 'job_common') AND i.indisvalid) AS valid_indexes,
  EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'archive') AS has_archive
"""

STATES = CANONICAL_STATES + ("blocked",)


@dataclass
class _QueueInfo:
    table_bytes: int | None = None
    #: the table the queue's rows live in, as the last refresh found it (quoted, schema-qualified)
    table: str | None = None
    #: the last refresh: counted exactly, and which of its counts were live (neither cached nor estimated)
    exact: bool = False
    live: dict | None = None
    #: list totals counted on demand: state -> (total, monotonic time)
    totals: dict | None = None
    #: seconds the longest-waiting ready job has been runnable, at the last counts read
    oldest_waiting_s: float | None = None


#: what asyncpg gives for PostgreSQL's 'infinity' / '-infinity' timestamps (naive, even for timestamptz)
_INFINITIES = (dt.datetime.max, dt.datetime.min)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """A finite timestamp with a time zone; None for none and for +-infinity (no point in time)."""
    if value is None or value.replace(tzinfo=None) in _INFINITIES:
        return None
    if value.tzinfo is None:  # v9 singletonOn etc. are without time zone
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def _ms(value: dt.datetime | None) -> int | None:
    value = _aware(value)
    return None if value is None else int(value.timestamp() * 1000)


def _json(text: str | None):
    """A jsonb column's text parsed; None when absent or too deep for Python's parser (shown raw)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():g} s"
    return str(value)


class PgBossReader(ComposedReader):
    """Every pg-boss schema in one PostgreSQL database (or the one ``schema`` pins)."""

    backend = BACKEND
    capabilities = Capabilities(states=STATES, throughput=True, latency=True, retry=True, purge=True, promote=True,
                                cancel=True, pause=True, delayed_retry=True, job_timeout=True,
                                namespace_label="schema")

    def __init__(self, pool, url: ConnectionUrl, schema: str | None = None, include_internal: bool = False,
                 exact_max_bytes: int = EXACT_MAX_BYTES) -> None:
        self.pool = pool
        self.url = url
        self.schema = schema
        self.include_internal = include_internal
        self.exact_max_bytes = exact_max_bytes
        #: the write side (mutations, pause, the console store), composed
        self.writer = PgBossWriter(self)
        #: the primary mutations go to when ``url`` is a hot standby (ConnectOptions.write_url)
        self.write_url: ConnectionUrl | None = None
        self._layouts: dict[str, Layout] = {}
        self._queues: dict[tuple[str, str], _QueueInfo] = {}
        self._tp_since: dict[str, dt.datetime] = {}
        self._tp_at: dict[str, float] = {}
        self._tp_q_since: dict[tuple[str, str], dt.datetime] = {}
        self._tp_turn: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    async def _fetch(self, sql: str, *args):
        async with pg_errors(self.url):
            return await self.pool.fetch(sql, *args)

    async def _fetchrow(self, sql: str, *args):
        async with pg_errors(self.url):
            return await self.pool.fetchrow(sql, *args)

    async def _version(self, schema: str) -> int | None:
        from backends.pgboss.layout import quote_ident

        row = await self._fetchrow(f"SELECT version FROM {quote_ident(schema)}.version LIMIT 1")
        return None if row is None else int(row["version"])

    def retry_notes(self, queue: QueueRef, bulk: bool, reset_attempts: bool) -> list[str]:
        if reset_attempts:
            return []
        return ["attempts are not reset: retry_limit + 1, so each job gets one more attempt (use "
                "--reset-attempts for its full retry budget)"]

    def queue_capabilities(self, queue: QueueRef) -> Capabilities:
        layout = self._layouts.get(queue.namespace)
        if layout is not None and layout.major == "v9":
            return self.capabilities.read_only("pg-boss v9 schema (version 20) is read-only in queue-console")
        if layout is not None and not layout.known:
            return self.capabilities.read_only(layout.read_only_reason or f"unknown pg-boss schema version {layout.version}")
        return self.capabilities

    async def _layout(self, schema: str, refresh: bool = False) -> Layout:
        layout = self._layouts.get(schema)
        if layout is not None and not refresh:
            return layout
        version = await self._version(schema)
        row = await self._fetchrow(LAYOUT_SQL, schema)
        layout = Layout(schema=schema, version=version if version is not None else -1,
                        job_columns=frozenset(row["job_columns"]), queue_columns=frozenset(row["queue_columns"]),
                        valid_indexes=frozenset(row["valid_indexes"]), has_archive=bool(row["has_archive"]))
        self._layouts[schema] = layout
        return layout

    def _ref(self, schema: str, name: str) -> QueueRef:
        return QueueRef(connection=self.url.redacted, backend=BACKEND, namespace=schema, name=name)

    # ------------------------------------------------------------------ discovery
    async def discover(self) -> Discovery:
        schemas = [r["nspname"] for r in await self._fetch(SCHEMAS_SQL, self.schema)]
        looked_for = [f"pg-boss schema {self.schema!r}" if self.schema else
                      "pg-boss schemas (a `version` table, a `job` table and a `job_state` enum)"]
        if not schemas:
            hint = (f"no pg-boss schema named {self.schema!r} in this database" if self.schema
                    else "no pg-boss schema in this database")
            return Discovery(queues=[], looked_for=looked_for, note=hint,
                             hint=DECLARATION.discovery_hint)
        queues: list[QueueRef] = []
        notes = []
        for schema in schemas:
            layout = await self._layout(schema, refresh=True)
            if layout.read_only_reason:
                notes.append(f"schema {schema}: {layout.read_only_reason}")
            for name, table_bytes in await self._queue_names(layout):
                if layout.internal(name) and not self.include_internal:
                    continue
                self._queues[(schema, name)] = _QueueInfo(table_bytes)
                queues.append(self._ref(schema, name))
        return Discovery(queues=queues, looked_for=looked_for, note="; ".join(notes) or None)

    async def _queue_names(self, layout: Layout) -> list[tuple[str, int | None]]:
        s = layout.q
        if layout.major == "v9":
            rows = await self._fetch(
                f"""WITH RECURSIVE t(n) AS (
                      (SELECT name FROM {s}.job ORDER BY name USING ~<~ LIMIT 1)
                      UNION ALL
                      SELECT (SELECT name FROM {s}.job WHERE name ~>~ t.n ORDER BY name USING ~<~ LIMIT 1)
                      FROM t WHERE t.n IS NOT NULL)
                    SELECT n AS name, pg_relation_size(to_regclass(quote_ident($1) || '.job')) AS bytes
                    FROM t WHERE n IS NOT NULL""", layout.schema)
            return [(r["name"], r["bytes"]) for r in rows]
        if "name" not in layout.queue_columns:
            return []
        table_col = ("partition_name" if "partition_name" in layout.queue_columns
                     else "table_name" if "table_name" in layout.queue_columns else None)
        size = (f"pg_relation_size(to_regclass(quote_ident($1) || '.' || quote_ident(q.{table_col})))"
                if table_col and layout.known else "NULL::bigint")
        rows = await self._fetch(f"SELECT q.name, {size} AS bytes FROM {layout.q}.queue q WHERE $1::text IS NOT NULL "
                                 "ORDER BY q.name", layout.schema)
        return [(r["name"], r["bytes"]) for r in rows]

    # ------------------------------------------------------------------ counts
    def _count_branch(self, layout: Layout, p: int, exact: bool, table: str) -> str:
        """One SELECT counting one queue (``$p`` = its name) in ``table`` (its own partition, or the
        shared table). ``split``: created and retry are counted apart (needs the rows' state); a big
        table without 12.38's job_i14 and without flows counts waiting/delayed from the fetch index
        alone (`_i5`: name, start_after WHERE state < 'active'), index-only, without the split."""
        c = layout.col
        nb = " AND NOT blocked" if layout.has_blocked else ""
        ready = f"{c('start_after')} {layout.ready_op} now()"
        live_only = not exact
        with_i14 = live_only and layout.i14
        split = exact or with_i14 or layout.has_blocked
        cols = [f"${p}::text AS qname", f"{'true' if exact else 'false'} AS exact", f"{'true' if split else 'false'} AS split"]
        if split:
            for st, short in (("created", "c"), ("retry", "r")):
                cols.append(f"count(*) FILTER (WHERE state = '{st}'{nb} AND {ready}) AS {short}_ready")
                cols.append(f"count(*) FILTER (WHERE state = '{st}'{nb} AND NOT ({ready})) AS {short}_later")
                cols.append(f"count(*) FILTER (WHERE state = '{st}' AND blocked) AS {short}_blocked"
                            if layout.has_blocked else f"0::bigint AS {short}_blocked")
        else:
            cols += [f"count(*) FILTER (WHERE {ready}) AS c_ready", f"count(*) FILTER (WHERE NOT ({ready})) AS c_later",
                     "0::bigint AS c_blocked", "0::bigint AS r_ready", "0::bigint AS r_later", "0::bigint AS r_blocked"]
        # the oldest moment a ready job became runnable: the exporter's oldest-waiting age, read by
        # the same statement (no extra round trip; the rows are filtered here anyway)
        cols.append(f"min({c('start_after')}) FILTER (WHERE state IN ('created', 'retry'){nb} AND {ready}) "
                    "AS ready_since" if split else f"min({c('start_after')}) FILTER (WHERE {ready}) AS ready_since")
        for st in ("active", "failed"):
            cols.append(f"NULL::bigint AS {st}" if live_only and not with_i14 else
                        f"count(*) FILTER (WHERE state = '{st}') AS {st}")
        for st in ("completed", "cancelled"):
            cols.append(f"NULL::bigint AS {st}" if live_only else f"count(*) FILTER (WHERE state = '{st}') AS {st}")
        if layout.major == "v9":
            cols.append("NULL::bigint AS expired" if live_only else "count(*) FILTER (WHERE state = 'expired') AS expired")
        else:
            cols.append("0::bigint AS expired")
        where = f"name = ${p}"
        if with_i14:
            where += " AND state IN ('created', 'retry', 'active', 'failed')"
        elif live_only:
            where += " AND state < 'active'"
        return f"SELECT {', '.join(cols)} FROM {table} WHERE {where}"

    def _table(self, layout: Layout, r) -> str:
        """The table to read one queue from: its own partition (v10, or `partition: true`) or the
        shared one, named directly so the planner needs no partition pruning (100 queues x 100
        partitions took 44 ms to plan); the parent when the queue row names no existing table."""
        name = r["table_name"] if r is not None else None
        if name and r["table_bytes"] is not None and layout.major != "v9":
            return f"{layout.q}.{quote_ident(name)}"
        return layout.job

    def _live_sql(self, layout: Layout, names: list[str], exact: set[str], meta: dict) -> str:
        """The live counts of ``names`` ($1..$n): one branch per queue."""
        return " UNION ALL ".join(
            f"({self._count_branch(layout, i + 1, n in exact, self._table(layout, meta.get(n)))})"
            for i, n in enumerate(names))

    #: the queue table's cached counters (pg-boss's monitor writes them), where the schema has them
    COUNTER_COLUMNS = ("queued_count", "ready_count", "deferred_count", "blocked_count", "active_count",
                       "failed_count", "total_count", "retained_count", "completed_delta", "failed_delta",
                       "delta_seconds", "ready_oldest_seconds")

    def _meta_sql(self, layout: Layout) -> str:
        """Per queue ($1 = names, $2 = schema), without reading a job row: the queue table's settings
        and cached counters, the size of the table holding the queue, the schema version, now()."""
        s = layout.q
        qc = layout.queue_columns
        extra = []
        join = ""
        if layout.has_queue_table:
            join = f" LEFT JOIN {s}.queue qq ON qq.name = n.qname"
            table_col = "partition_name" if "partition_name" in qc else "table_name" if "table_name" in qc else None
            rel = f"to_regclass(quote_ident($2::text) || '.' || quote_ident(qq.{table_col}))" if table_col else "NULL::regclass"
            extra.append("qq.dead_letter" if "dead_letter" in qc else "NULL::text AS dead_letter")
            extra.append(f"(SELECT string_agg(d.name, ', ' ORDER BY d.name) FROM {s}.queue d "
                         "WHERE d.dead_letter = n.qname) AS dlq_sources" if "dead_letter" in qc else "NULL::text AS dlq_sources")
            extra.append(f"qq.{table_col} AS table_name" if table_col else "NULL::text AS table_name")
            for col in self.COUNTER_COLUMNS:
                extra.append(f"qq.{col}::bigint AS {col}" if col in qc else f"NULL::bigint AS {col}")
            for col in ("monitor_on", "delta_on"):
                extra.append(f"qq.{col}" if col in qc else f"NULL::timestamptz AS {col}")
            extra.append("qq.policy::text AS policy" if "policy" in qc else "NULL::text AS policy")
        else:
            rel = "to_regclass(quote_ident($2::text) || '.job')"
            extra += ["NULL::text AS dead_letter", "NULL::text AS dlq_sources", "'job'::text AS table_name"]
            extra += [f"NULL::bigint AS {col}" for col in self.COUNTER_COLUMNS]
            extra += ["NULL::timestamptz AS monitor_on", "NULL::timestamptz AS delta_on", "NULL::text AS policy"]
        extra.append(f"pg_relation_size({rel}) AS table_bytes")
        extra.append(f"(SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = {rel}) AS reltuples")
        return (f"SELECT n.qname, {', '.join(extra)}, (SELECT version FROM {s}.version LIMIT 1) AS schema_version, "
                f"now() AS db_now FROM unnest($1::text[]) AS n(qname){join}")

    def _cache_fresh(self, layout: Layout, r) -> bool:
        """pg-boss (11+) keeps counts in its queue table; usable as the counts while its monitor keeps
        them fresh."""
        need = {"queued_count", "deferred_count", "active_count", "monitor_on"}
        return (need <= layout.queue_columns and r["monitor_on"] is not None
                and (r["db_now"] - r["monitor_on"]).total_seconds() <= STALE_COUNTERS_S)

    def _plan_counts(self, layout: Layout, meta: list) -> tuple[set[str], set[str]]:
        """(queues counted exactly, queues served from fresh cached counters); the rest are counted
        live through the partial indexes. Exact counting goes smallest table first while the sizes
        add up to at most ``exact_max_bytes``: one refresh never scans more than that."""
        exact: set[str] = set()
        budget = self.exact_max_bytes
        for r in sorted(meta, key=lambda r: (r["table_bytes"] is None, r["table_bytes"] or 0)):
            size = r["table_bytes"]
            if size is not None and size <= budget:
                exact.add(r["qname"])
                budget -= size
        cached = {r["qname"] for r in meta if r["qname"] not in exact and self._cache_fresh(layout, r)}
        return exact, cached

    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        by_schema: dict[str, list[QueueRef]] = {}
        for q in queues:
            by_schema.setdefault(q.namespace, []).append(q)
        out: dict[tuple, QueueStatus] = {}
        for schema, qs in by_schema.items():
            for status in await self._schema_statuses(schema, qs):
                out[status.queue.key] = status
        return await self.writer.mark_parked([out[q.key] for q in queues if q.key in out])

    async def _schema_statuses(self, schema: str, qs: list[QueueRef]) -> list[QueueStatus]:
        """The queue table (cached counters, table sizes) in one statement, then the live counts of
        the queues that the fresh cache does not cover (none when it covers all), LIVE_CHUNK queues
        per statement."""
        layout = await self._layout(schema)
        for _attempt in range(2):
            if not layout.known:
                version = await self._version(schema)
                if version != layout.version:
                    layout = await self._layout(schema, refresh=True)
                    continue
                return [QueueStatus(queue=q, counts={}, native={}, estimated=[],
                                    info={"read-only": layout.read_only_reason or "", "schema version": str(version)})
                        for q in qs]
            names = list(dict.fromkeys(q.name for q in qs))
            meta = await self._fetch(self._meta_sql(layout), names, schema)
            if meta and meta[0]["schema_version"] != layout.version:
                layout = await self._layout(schema, refresh=True)  # migrated under us: re-detect, re-read
                continue
            exact, cached = self._plan_counts(layout, meta)
            to_count = [n for n in names if n not in cached]
            by_name = {r["qname"]: r for r in meta}
            live = {}
            for i in range(0, len(to_count), LIVE_CHUNK):
                chunk = to_count[i:i + LIVE_CHUNK]
                live.update({r["qname"]: r for r in await self._fetch(self._live_sql(layout, chunk, exact, by_name),
                                                                     *chunk)})
            return [self._status(layout, q, by_name[q.name], live.get(q.name)) for q in qs if q.name in by_name]
        raise BackendError(f"pg-boss schema {schema} changed version twice during one refresh")

    def _status(self, layout: Layout, q: QueueRef, r, lv) -> QueueStatus:
        """One queue's status from its queue-table row ``r`` and its live counts ``lv`` (None: the
        fresh cached counters are the counts)."""
        info_state = self._queues.setdefault((layout.schema, q.name), _QueueInfo())
        info_state.table_bytes = r["table_bytes"]
        info_state.table = self._table(layout, r)
        now: dt.datetime = r["db_now"]
        info: dict[str, str] = {"schema": layout.schema, "schema version": f"{layout.version} ({layout.major})"}
        if layout.read_only_reason:
            info["read-only"] = layout.read_only_reason
        if r["policy"]:
            info["policy"] = r["policy"]
        if r["dead_letter"]:
            info["dead letter queue"] = r["dead_letter"]
        if r["dlq_sources"]:
            info["dead letter of"] = r["dlq_sources"]
        counters_age = None
        if r["monitor_on"] is not None:
            counters_age = (now - r["monitor_on"]).total_seconds()
            stale = " (stale)" if counters_age > STALE_COUNTERS_S else ""
            info["cached counters"] = f"{counters_age:.0f} s old{stale}"
        elif layout.has_counters:
            info["cached counters"] = "never refreshed by a pg-boss monitor"
        if r["delta_on"] is not None and r["delta_seconds"]:
            info["completed/failed per monitor window"] = (
                f"{r['completed_delta']}/{r['failed_delta']} in {r['delta_seconds']} s ending "
                f"{(now - r['delta_on']).total_seconds():.0f} s ago")
        if not self._tp_indexed(layout):
            size = r["table_bytes"]
            info["throughput"] = ("not measured: no index on completed_on in this pg-boss version and a "
                                  f"queue table of {_size(size)}" if size is None or size > THROUGHPUT_SCAN_BYTES
                                  else "sampled queue by queue (no index on completed_on in this pg-boss version)")
        if lv is None:
            status = self._cached_status(layout, q, r, info, counters_age or 0.0)
            info_state.exact, info_state.live = False, {}
            # 12.38 caches the oldest ready job's age at monitor time (still waiting: older by now)
            oldest = r["ready_oldest_seconds"]
            info_state.oldest_waiting_s = None if oldest is None else float(oldest) + (counters_age or 0.0)
            return status
        r = {**dict(r), **dict(lv)}
        since_ms = _ms(r["ready_since"])
        info_state.oldest_waiting_s = max(_ms(now) - since_ms, 0) / 1000.0 if since_ms is not None else 0.0
        created = r["c_ready"] + r["c_later"] + r["c_blocked"]
        retry = r["r_ready"] + r["r_later"] + r["r_blocked"]
        # without the split, created + retry are counted together (c_*): not pg-boss's own states
        native: dict[str, int] = {"created": created, "retry": retry} if r["split"] else {}
        for st in ("active", "completed", "cancelled", "failed") + (("expired",) if layout.major == "v9" else ()):
            if r[st] is not None:
                native[st] = int(r[st])
        counts: dict[str, int | None] = {
            "waiting": r["c_ready"] + r["r_ready"],
            "delayed": r["c_later"] + r["r_later"],
            "active": native.get("active"),
            "completed": native.get("completed"),
            "failed": (native["failed"] + native.get("expired", 0)) if "failed" in native else None,
            "cancelled": native.get("cancelled"),
        }
        if layout.has_blocked:
            counts["blocked"] = r["c_blocked"] + r["r_blocked"]
        estimated: list[str] = []
        if not r["exact"]:
            info["counting"] = (f"queue table {_size(r['table_bytes'])}: live states counted through the "
                                "partial indexes; the rest estimated")
            queued = created + retry
            if counts["active"] is None and r["active_count"] is not None:
                counts["active"] = int(r["active_count"])
                estimated.append("active")
            failed_est = None
            if counts["failed"] is None and r["failed_count"] is not None:
                failed_est = int(r["failed_count"])
                counts["failed"] = failed_est
                estimated.append("failed")
            elif counts["failed"] is None:
                estimated.append("failed")
            known_live = queued + (counts["active"] or 0) + (counts["failed"] or 0)
            stored = None
            what = "completed + cancelled"
            if r["retained_count"] is not None and r["monitor_on"] is not None:
                stored = int(r["retained_count"])
            elif r["total_count"] is not None and r["monitor_on"] is not None:
                live_cached = (r["queued_count"] or 0) + (r["active_count"] or 0) + (r["failed_count"] or 0)
                stored = max(int(r["total_count"]) - live_cached, 0)
                if r["failed_count"] is None:
                    what = "completed + cancelled + failed"
            elif r["reltuples"] is not None and r["reltuples"] >= 0 and r["table_name"] not in (None, "job_common", "job"):
                stored = max(int(r["reltuples"]) - known_live, 0)
                if counts["failed"] is None:
                    what = "completed + cancelled + failed"
            counts["completed"] = stored
            counts["cancelled"] = None
            estimated += ["completed", "cancelled"]
            info["completed estimate"] = (f"{what} (from cached counters / planner statistics)" if stored is not None
                                          else "not counted (large table, no counters); open the list to count")
        info_state.exact = bool(r["exact"])
        info_state.live = {k: v for k, v in counts.items() if v is not None and k not in estimated}
        return QueueStatus(queue=q, paused=False, counts=counts, native=native, estimated=estimated, info=info,
                           server_time_ms=_ms(now))

    def _cached_status(self, layout: Layout, q: QueueRef, r, info: dict[str, str], age: float) -> QueueStatus:
        """Counts from pg-boss's own cached counters (what getQueueStats serves), every one of them
        labelled: ``estimated`` lists them all and ``info["counts"]`` says how old they are."""
        qc = layout.queue_columns
        deferred = int(r["deferred_count"] or 0)
        blocked = int(r["blocked_count"] or 0) if "blocked_count" in qc else 0
        ready = (int(r["ready_count"]) if "ready_count" in qc and r["ready_count"] is not None
                 else max(int(r["queued_count"] or 0) - deferred - blocked, 0))
        failed = int(r["failed_count"]) if "failed_count" in qc and r["failed_count"] is not None else None
        active = int(r["active_count"] or 0)
        if r["retained_count"] is not None:
            stored, what = int(r["retained_count"]), "completed + cancelled"
        elif r["total_count"] is not None:
            stored = max(int(r["total_count"]) - int(r["queued_count"] or 0) - active - (failed or 0), 0)
            what = "completed + cancelled" + (" + failed" if failed is None else "")
        else:
            stored, what = None, ""
        counts: dict[str, int | None] = {"waiting": ready, "delayed": deferred, "active": active,
                                         "completed": stored, "failed": failed, "cancelled": None}
        if layout.has_blocked:
            counts["blocked"] = blocked
        info.pop("cached counters", None)
        info["counts"] = f"cached, {age:.0f} s old"
        info["counting"] = ("pg-boss's cached counts (its monitor refreshes them); a list's total is counted "
                            "exactly when it is opened")
        if stored is not None:
            info["completed estimate"] = f"{what} (cached retained count)" if r["retained_count"] is not None else \
                f"{what} (cached total minus queued, active{', failed' if failed is not None else ''})"
        return QueueStatus(queue=q, paused=False, counts=counts, native={}, estimated=list(counts), info=info,
                           server_time_ms=_ms(r["db_now"]))

    # ------------------------------------------------------------------ pages
    def _state_filter(self, layout: Layout, state: str) -> tuple[str, list[str], list[str]]:
        """(WHERE fragment, ORDER BY columns, directions) for a canonical state."""
        c = layout.col
        nb = " AND NOT blocked" if layout.has_blocked else ""
        ready = f"{c('start_after')} {layout.ready_op} now()"
        if state == "waiting":
            return f"state < 'active'{nb} AND {ready}", ["priority", c("created_on"), "id"], ["desc", "asc", "asc"]
        if state == "delayed":
            return f"state < 'active'{nb} AND NOT ({ready})", [c("start_after"), "id"], ["asc", "asc"]
        if state == "blocked":
            if not layout.has_blocked:
                return "false", [c("created_on"), "id"], ["asc", "asc"]
            return "state < 'active' AND blocked", [c("created_on"), "id"], ["asc", "asc"]
        if state == "active":
            return "state = 'active'", [c("started_on"), "id"], ["asc", "asc"]
        if state in ("completed", "cancelled", "failed"):
            pred = "state IN ('failed', 'expired')" if (state == "failed" and layout.major == "v9") else f"state = '{state}'"
            # completed_on is always set in these states; saying so lets 12.38's job_i16 serve the order
            return f"{pred} AND {c('completed_on')} IS NOT NULL", [c("completed_on"), "id"], ["desc", "desc"]
        raise UnknownState("pgboss", state, STATES)

    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        if state not in STATES:
            raise UnknownState("pgboss", state, STATES)
        limit = max(1, min(limit, 1000))
        layout = await self._layout(queue.namespace)
        if not layout.known:
            raise BackendError(layout.read_only_reason or "unknown pg-boss schema")
        pred, order, dirs = self._state_filter(layout, state)
        kinds = tuple("uuid" if col == "id" else ("int" if col == "priority" else "time") for col in order)
        key = unpack_keys(cursor, state, kinds) if cursor else None
        args: list = [queue.name]
        where = f"name = $1 AND {pred}"
        if key is not None:
            vals = []
            for col, v in zip(order, key):
                args.append(v)
                cast = "::uuid" if col == "id" else ("::int" if col == "priority" else "::timestamptz")
                vals.append(f"${len(args)}{cast}")
            where += " AND " + _keyset(order, dirs, vals)
        order_sql = ", ".join(f"{col} {d.upper()}" for col, d in zip(order, dirs))
        c = layout.col
        blocked = "blocked" if layout.has_blocked else "false"
        reason = ("CASE WHEN state IN ('failed'" + (", 'expired'" if layout.major == "v9" else "") +
                  f") THEN left({REASON_SQL}, 2000) END")
        sql = (f"SELECT id::text AS id, state::text AS native_state, priority, {c('created_on')} AS created_on, "
               f"{c('started_on')} AS started_on, {c('completed_on')} AS completed_on, {c('start_after')} AS start_after, "
               f"{c('retry_count')} AS retry_count, {blocked} AS blocked, {reason} AS reason, now() AS db_now "
               f"FROM {layout.job} WHERE {where} ORDER BY {order_sql} LIMIT {limit + 1}")
        rows = await self._fetch(sql, *args)
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = [self._summary(layout, r) for r in rows]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            src = {"priority": last["priority"], c("created_on"): last["created_on"], "id": last["id"],
                   c("start_after"): last["start_after"], c("started_on"): last["started_on"],
                   c("completed_on"): last["completed_on"]}
            next_cursor = pack_keys(state, [src[col] for col in order])
        total = await self._list_total(layout, queue.name, state, pred, first=cursor is None)
        return Page(queue=queue, state=state, jobs=jobs, next_cursor=next_cursor, total=total)

    async def _list_total(self, layout: Layout, name: str, state: str, pred: str, first: bool) -> int | None:
        """The list's total without a count(*) per page: the last refresh's live count of that state
        when it had one (the number on the state's tab), else counted once on demand (bounded by
        STORED_COUNT_TIMEOUT_MS) and reused by the next pages and reloads for TOTAL_TTL_S."""
        info = self._queues.setdefault((layout.schema, name), _QueueInfo())
        if info.live and state in info.live:
            return info.live[state]
        totals = info.totals if info.totals is not None else {}
        info.totals = totals
        hit = totals.get(state)
        if hit is not None and (not first or time.monotonic() - hit[1] < TOTAL_TTL_S):
            return hit[0]
        total = await self._total(layout, name, pred, timeout_ms=STORED_COUNT_TIMEOUT_MS)
        if total is not None:
            totals[state] = (total, time.monotonic())
        return total

    async def _total(self, layout: Layout, name: str, pred: str, timeout_ms: int) -> int | None:
        """The size of the list, counted on demand: one statement, given up (None) after ``timeout_ms``
        (asyncpg cancels it on the server)."""
        sql = f"SELECT count(*) AS n FROM {layout.job} WHERE name = $1 AND {pred}"
        try:
            async with pg_errors(self.url):
                try:
                    row = await self.pool.fetchrow(sql, name, timeout=timeout_ms / 1000)
                except asyncio.TimeoutError:
                    return None
        except BackendTimeout:
            return None
        return int(row["n"])

    def _summary(self, layout: Layout, r, reason_limit: int = ROW_LIMIT) -> JobSummary:
        native = r["native_state"]
        created, start_after = _aware(r["created_on"]), _aware(r["start_after"])
        # a far-future start_after ('infinity') is still "later": only the comparison needs a point in time
        raw_after = r["start_after"]
        if start_after is None and raw_after is not None:
            start_after = (dt.datetime.max if raw_after.replace(tzinfo=None) == dt.datetime.max
                           else dt.datetime.min).replace(tzinfo=dt.timezone.utc)
        state = _canonical(layout, native, start_after, _aware(r["db_now"]), r["blocked"])
        delay = None
        if created is not None and start_after is not None and start_after > created and _aware(r["start_after"]):
            delay = int((start_after - created).total_seconds() * 1000)
        infinite = [c for c in ("created_on", "start_after", "started_on", "completed_on")
                    if r[c] is not None and _aware(r[c]) is None]
        return JobSummary(
            id=r["id"], state=state, native_state=native, name=None,
            created_ms=_ms(created), processed_ms=_ms(r["started_on"]), finished_ms=_ms(r["completed_on"]),
            attempts_made=r["retry_count"], priority=r["priority"], delay_ms=delay,
            failed_reason=to_blob(r["reason"], reason_limit) if r["reason"] is not None else None,
            malformed=(f"job {r['id']}: {', '.join(infinite)} {'is' if len(infinite) == 1 else 'are'} "
                       "infinity (no point in time)") if infinite else None,
        )

    # ------------------------------------------------------------------ detail
    async def queue_of_job(self, name: str, job_id: str) -> QueueRef | None:
        """A queue whose rows are all in ``archive`` (discovery reads ``job`` only, so it does not list
        it) still opens its archived jobs, as ``getJobById`` finds them: looked up by id (indexed)."""
        try:
            uid = uuid.UUID(job_id)
        except (ValueError, AttributeError, TypeError):
            return None
        for r in await self._fetch(SCHEMAS_SQL, self.schema):
            layout = await self._layout(r["nspname"])
            if layout.known and layout.has_archive and await self._fetchrow(
                    f"SELECT 1 FROM {layout.archive} WHERE id = $1 AND name = $2", uid, name):
                return self._ref(layout.schema, name)
        return None

    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        try:
            uid = uuid.UUID(job_id)
        except (ValueError, AttributeError, TypeError):
            return None
        layout = await self._layout(queue.namespace)
        if not layout.known:
            raise BackendError(layout.read_only_reason or "unknown pg-boss schema")
        c = layout.col
        blocked = "j.blocked" if layout.has_blocked else "false"
        select = (f"SELECT to_jsonb(j) - 'data' - 'output' - 'source_output' AS fields, j.id::text AS id, "
                  f"j.state::text AS native_state, j.priority, j.{c('created_on')} AS created_on, "
                  f"j.{c('started_on')} AS started_on, j.{c('completed_on')} AS completed_on, "
                  f"j.{c('start_after')} AS start_after, j.{c('retry_count')} AS retry_count, "
                  f"j.{c('retry_limit')} AS retry_limit, {blocked} AS blocked, j.data::text AS data, "
                  f"j.output::text AS output, now() AS db_now")
        row = await self._fetchrow(f"{select}, false AS archived FROM {layout.job} j WHERE j.name = $1 AND j.id = $2",
                                   queue.name, uid)
        if row is None and layout.has_archive:
            row = await self._fetchrow(f"{select}, true AS archived FROM {layout.archive} j "
                                       "WHERE j.name = $1 AND j.id = $2", queue.name, uid)
        if row is None:
            return None
        fields = _json(row["fields"])
        if not isinstance(fields, dict):
            fields = {}
        output = _json(row["output"])
        native = row["native_state"]
        failed = native in ("failed", "expired")
        reason = None
        stack: list = []
        if failed and output is not None:
            error = _error_of(output)
            reason = error["message"] if isinstance(error.get("message"), str) else row["output"]
            if isinstance(error.get("stack"), str):
                stack = [to_blob(error["stack"])]
        summary_row = dict(row)
        summary_row["reason"] = reason
        summary = self._summary(layout, summary_row, reason_limit=ROW_LIMIT * 20)
        if row["archived"]:
            summary.state = {"created": "waiting", "retry": "waiting"}.get(native, summary.state)
        retry_count, retry_limit = row["retry_count"], row["retry_limit"]
        # a claim counts an attempt: v10+ bump retry_count on every claim after the first, v9 on a
        # claim of a `retry` job (docs/backends/pgboss.md, B2), so either way the runs so far are
        # retry_count + 1 once the job was started (9.0.3: failed after one retry = rc 1, 2 runs)
        started = retry_count + (1 if row["started_on"] is not None else 0)
        policy_keys = ["policy", c("retry_limit"), c("retry_delay"), c("retry_backoff"), "retry_delay_max",
                       c("expire_in"), "expire_seconds", "deletion_seconds", "heartbeat_seconds", c("keep_until"),
                       c("singleton_key"), c("singleton_on"), "dead_letter", "group_id", "group_tier"]
        options = {k: fields[k] for k in policy_keys if k in fields and fields[k] is not None}
        extra: dict[str, str] = {}
        show = ["retry_count", "retry_limit", "retry_delay", "retry_backoff", "retry_delay_max", "policy",
                "singleton_key", "singleton_on", "start_after", "started_on", "created_on", "completed_on",
                "keep_until", "expire_in", "expire_seconds", "deletion_seconds", "dead_letter", "heartbeat_on",
                "heartbeat_seconds", "group_id", "group_tier", "blocked", "pending_dependencies", "source_name",
                "source_id", "source_created_on", "source_retry_count", "archivedon", "archived_on"]
        for k in show:
            v = fields.get(c(k), fields.get(k))
            if v is not None:
                extra[k] = str(v)[:ROW_LIMIT]
        if row["archived"]:
            extra["archived"] = "yes (row is in the archive table)"
        return JobDetail(
            summary=summary,
            data=to_blob(row["data"]),
            options=to_blob(json.dumps(options, sort_keys=True)),
            return_value=to_blob(row["output"]) if native == "completed" else None,
            stacktrace=[s for s in stack if s is not None] if stack else
            ([to_blob(row["output"])] if failed and row["output"] is not None else []),
            attempts_started=started,
            max_attempts=retry_limit + 1 if retry_limit is not None else None,
            extra=extra,
        )

    # ------------------------------------------------------------------ monitoring gauges
    async def gauges(self, queues: list[QueueRef]) -> list[QueueGauges]:
        """Oldest waiting age from the last counts read (``ready_since`` in the counts statement:
        the earliest ``start_after`` of a ready created/retry job, on the database clock); no I/O.
        pg-boss keeps no record of its workers."""
        out = []
        for q in queues:
            info = self._queues.get((q.namespace, q.name))
            if info is not None and info.oldest_waiting_s is not None:
                out.append(QueueGauges(queue=q, oldest_waiting_s=info.oldest_waiting_s))
        return out

    # ------------------------------------------------------------------ throughput
    def _tp_indexed(self, layout: Layout) -> bool:
        """12.38's job_i16 (name, completed_on) bounds a throughput window by an index range."""
        return layout.major == "v12" and any(n.endswith("_i16") for n in layout.valid_indexes)

    async def throughput(self, queues: list[QueueRef]) -> list[Throughput]:
        by_schema: dict[str, list[QueueRef]] = {}
        for q in queues:
            by_schema.setdefault(q.namespace, []).append(q)
        out: list[Throughput] = []
        for schema, qs in by_schema.items():
            last = self._tp_at.get(schema)
            if last is not None and time.monotonic() - last < THROUGHPUT_MIN_S:
                continue
            layout = await self._layout(schema)
            if not layout.known:
                continue
            since = self._tp_since.get(schema)
            if since is None:
                row = await self._fetchrow("SELECT now() AS t")
                self._tp_since[schema] = row["t"]
                self._tp_at[schema] = time.monotonic()
                continue
            qs = qs if self._tp_indexed(layout) else self._tp_turn_of(layout, qs)
            for i in range(0, len(qs), THROUGHPUT_CHUNK):
                out.extend(await self._throughput_schema(layout, qs[i:i + THROUGHPUT_CHUNK], since))
            self._tp_at[schema] = time.monotonic()
        return out

    def _tp_turn_of(self, layout: Layout, qs: list[QueueRef]) -> list[QueueRef]:
        """Without an index on completed_on a window scans the queue's table: this call's queues,
        in turn from where the last call stopped, while their table sizes add up to at most
        THROUGHPUT_SCAN_BYTES. A queue whose table is bigger than that (or of unknown size) is never
        scanned; its status says so."""
        def size(q: QueueRef) -> int | None:
            info = self._queues.get((layout.schema, q.name))
            return None if info is None else info.table_bytes

        fits = [q for q in qs if (size(q) is not None and size(q) <= THROUGHPUT_SCAN_BYTES)]
        if not fits:
            return []
        start = self._tp_turn.get(layout.schema, 0) % len(fits)
        budget = THROUGHPUT_SCAN_BYTES
        chosen = []
        for i in range(len(fits)):
            q = fits[(start + i) % len(fits)]
            if size(q) > budget:  # type: ignore[operator]
                break
            budget -= size(q)  # type: ignore[operator]
            chosen.append(q)
        self._tp_turn[layout.schema] = start + len(chosen)
        return chosen

    async def _throughput_schema(self, layout: Layout, qs: list[QueueRef], since: dt.datetime) -> list[Throughput]:
        """Completed/failed per queue since that queue's previous sample (the schema's baseline for a
        queue sampled for the first time), one statement."""
        c = layout.col
        names = [q.name for q in qs]
        sinces = [self._tp_q_since.get((layout.schema, n), since) for n in names]
        n = len(names)
        failed = "state IN ('failed', 'expired')" if layout.major == "v9" else "state = 'failed'"
        branches = []
        for i in range(n):
            p, sp = i + 1, n + i + 1
            win = f"{c('completed_on')} > ${sp} AND {c('completed_on')} <= now()"
            table = self._table_of(layout, names[i])
            live = (f"SELECT count(*) FILTER (WHERE state = 'completed') AS done, count(*) FILTER (WHERE {failed}) AS fail "
                    f"FROM {table} WHERE name = ${p} AND {win}")
            if layout.has_archive:
                arch_on = "archivedon" if layout.major == "v9" else "archived_on"
                arch = (f"SELECT count(*) FILTER (WHERE state = 'completed') AS done, count(*) FILTER (WHERE {failed}) AS fail "
                        f"FROM {layout.archive} WHERE name = ${p} AND {arch_on} >= ${sp} AND {win}")
                branches.append(f"SELECT ${p}::text AS qname, ${sp}::timestamptz AS since, sum(done)::bigint AS done, "
                                f"sum(fail)::bigint AS fail FROM ({live} UNION ALL {arch}) x")
            else:
                branches.append(f"SELECT ${p}::text AS qname, ${sp}::timestamptz AS since, done, fail FROM ({live}) x")
        sql = f"SELECT b.*, now() AS db_now FROM ({' UNION ALL '.join(branches)}) b"
        rows = await self._fetch(sql, *names, *sinces)
        self._tp_at[layout.schema] = time.monotonic()
        out = []
        by_name = {r["qname"]: r for r in rows}
        for q in qs:
            r = by_name.get(q.name)
            if r is None:
                continue
            now = r["db_now"]
            interval = max((now - r["since"]).total_seconds(), 0.001)
            out.append(Throughput(queue=q, at_ms=_ms(now) or 0, interval_s=interval,
                                  completed_per_s=(r["done"] or 0) / interval, failed_per_s=(r["fail"] or 0) / interval,
                                  source="finished"))
            self._tp_q_since[(layout.schema, q.name)] = now
        return out

    def _table_of(self, layout: Layout, name: str) -> str:
        """The table a queue's rows live in (its partition, as the last refresh found it)."""
        info = self._queues.get((layout.schema, name))
        return (info.table if info is not None and info.table else None) or layout.job

    def _finish_bounded(self, layout: Layout, name: str) -> bool:
        """A read of the queue's most recent finishes is bounded: by 12.38's index on
        (name, completed_on), or by a queue table of at most THROUGHPUT_SCAN_BYTES."""
        if self._tp_indexed(layout):
            return True
        info = self._queues.get((layout.schema, name))
        return info is not None and info.table_bytes is not None and info.table_bytes <= THROUGHPUT_SCAN_BYTES

    # ------------------------------------------------------------------ latency
    async def latency(self, queues: list[QueueRef]) -> list[Latency]:
        """Wait (started_on minus the later of created_on and start_after: a retry waits from its
        start_after) and run time (completed_on - started_on) of the LATENCY_SAMPLE most recently
        completed jobs of each queue, percentiles interpolated as on Redis (percentile_cont): one
        statement per queue, walking 12.38's (name, completed_on) index backwards, or sorting a
        queue table of at most THROUGHPUT_SCAN_BYTES. Other queues get no numbers (sample 0)."""
        out = []
        for q in queues:
            layout = await self._layout(q.namespace)
            if not layout.known or not self._finish_bounded(layout, q.name):
                out.append(Latency(queue=q, sample_size=0))
                continue
            c = layout.col
            r = await self._fetchrow(
                "SELECT count(r) AS n, "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY w) AS w50, percentile_cont(0.95) WITHIN GROUP (ORDER BY w) AS w95, "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY r) AS r50, percentile_cont(0.95) WITHIN GROUP (ORDER BY r) AS r95 "
                f"FROM (SELECT GREATEST(extract(epoch FROM {c('started_on')} - GREATEST({c('created_on')}, "
                f"{c('start_after')})) * 1000, 0)::float8 AS w, "
                f"GREATEST(extract(epoch FROM {c('completed_on')} - {c('started_on')}) * 1000, 0)::float8 AS r "
                f"FROM {self._table_of(layout, q.name)} WHERE name = $1 AND state = 'completed' "
                # (infinite timestamps cannot be subtracted: such a row is left out of the sample)
                f"AND isfinite({c('completed_on')}) AND isfinite({c('started_on')}) "
                f"AND isfinite({c('created_on')}) AND isfinite({c('start_after')}) "
                f"ORDER BY {c('completed_on')} DESC LIMIT $2) t", q.name, LATENCY_SAMPLE)
            out.append(Latency(queue=q, sample_size=int(r["n"]), wait_p50_ms=r["w50"],
                               wait_p95_ms=r["w95"], run_p50_ms=r["r50"], run_p95_ms=r["r95"]))
        return out

    # ------------------------------------------------------------------ history
    async def history(self, queues: list[QueueRef]) -> list[History]:
        """The last hour by minute from finish times (completed_on) in the job table: at most
        HISTORY_ROWS of a queue's most recent finishes, walking 12.38's (name, completed_on) index
        backwards (a queue busier than that shows the last HISTORY_ROWS finishes, labelled). Where
        no index covers completed_on the read would scan the table: no history, said so."""
        out = []
        for q in queues:
            layout = await self._layout(q.namespace)
            if not layout.known or not self._tp_indexed(layout):
                out.append(History(queue=q, unavailable=(
                    "no history: no index on completed_on in this pg-boss version (12.38 adds it)")))
                continue
            c = layout.col
            rows = await self._fetch(
                "SELECT floor(extract(epoch FROM t.f) / 60)::bigint AS m, count(*) FILTER (WHERE t.state = 'completed') AS done, "
                "count(*) FILTER (WHERE t.state = 'failed') AS fail, count(*) AS n "
                f"FROM (SELECT {c('completed_on')} AS f, state FROM {self._table_of(layout, q.name)} "
                f"WHERE name = $1 AND {c('completed_on')} > date_trunc('minute', now()) - interval '1 hour' "
                f"AND {c('completed_on')} < date_trunc('minute', now()) "
                f"ORDER BY {c('completed_on')} DESC LIMIT $2) t GROUP BY 1 ORDER BY 1", q.name, HISTORY_ROWS)
            capped = sum(int(r["n"]) for r in rows) >= HISTORY_ROWS
            if capped:
                rows = rows[1:]  # the oldest minute read only in part
            note = f"last {HISTORY_ROWS:,} finishes" if capped else None
            if layout.has_archive:
                note = "; ".join(filter(None, (note, "jobs archived since are not counted")))
            out.append(History(queue=q, at_ms=[(int(r["m"]) + 1) * 60_000 for r in rows],
                               completed_per_s=[int(r["done"]) / 60.0 for r in rows],
                               failed_per_s=[int(r["fail"]) / 60.0 for r in rows], source="finished", note=note))
        return out

    # ------------------------------------------------------------------ the writer's settings
    @property
    def store_schema(self) -> str | None:
        return self.writer.store_schema

    @store_schema.setter
    def store_schema(self, value: str | None) -> None:
        self.writer.store_schema = value

    @property
    def sweep_parked(self) -> bool:
        return self.writer.sweep_parked

    @sweep_parked.setter
    def sweep_parked(self, value: bool) -> None:
        self.writer.sweep_parked = value

    @property
    def write_application_name(self) -> str:
        return self.writer.write_application_name

    # ------------------------------------------------------------------ mutations: ComposedReader forwards them to self.writer
    async def server_time_ms(self) -> int | None:
        return await self.writer.server_time_ms()

    async def pause_notes(self, queue: QueueRef, paused: bool) -> list[str]:
        return await self.writer.pause_notes(queue, paused)

    async def hold_refusal(self, layout: Layout) -> str | None:
        return await self.writer.hold_refusal(layout)

    async def close(self) -> None:
        await self.writer.close()
        await close_pool(self.pool)


def _size(n: int | None) -> str:
    if n is None:
        return "of unknown size"
    return f"{n / 1024 / 1024:.0f} MiB"


#: the failure message of a failed job's ``output``: serialize-error's ``{message, stack}``, or
#: pg-boss's wrapper ``{"value": ...}`` of a non-object (its expiry and heartbeat failures are
#: ``{"value": {"message": "job timed out"}}``; ``fail(id, 'text')`` stores ``{"value": "text"}``)
REASON_SQL = ("COALESCE(output->>'message', output->'value'->>'message', "
              "CASE WHEN jsonb_typeof(output->'value') = 'string' THEN output->>'value' END, output::text)")


def _error_of(output) -> dict:
    """The error object in a failed job's output, unwrapped as REASON_SQL does."""
    if not isinstance(output, dict):
        return {}
    if isinstance(output.get("message"), str):
        return output
    value = output.get("value")
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return value
    if isinstance(value, str):
        return {"message": value}
    return {}


def _canonical(layout: Layout, native: str, start_after, now, blocked) -> str:
    if native in ("created", "retry"):
        if blocked:
            return "blocked"
        if start_after is None or now is None:
            return "waiting"
        ready = start_after <= now if layout.ready_op == "<=" else start_after < now
        return "waiting" if ready else "delayed"
    if native == "expired":
        return "failed"
    return native


def _keyset(order: list[str], dirs: list[str], vals: list[str]) -> str:
    """Rows after the cursor in ORDER BY order (mixed directions spelled out term by term)."""
    if len(set(dirs)) == 1:
        op = ">" if dirs[0] == "asc" else "<"
        return f"({', '.join(order)}) {op} ({', '.join(vals)})"
    terms = []
    for i, (col, d, v) in enumerate(zip(order, dirs, vals)):
        eqs = [f"{order[j]} = {vals[j]}" for j in range(i)]
        op = ">" if d == "asc" else "<"
        terms.append("(" + " AND ".join(eqs + [f"{col} {op} {v}"]) + ")")
    return "(" + " OR ".join(terms) + ")"


