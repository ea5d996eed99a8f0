"""The console's own records in PostgreSQL, in a schema of its own (default ``queue_console``).

Created on first write (``CREATE SCHEMA/TABLE IF NOT EXISTS``, serialised by a transaction-level
advisory lock so two consoles starting at once do not trip over each other). Never any DDL in a
pg-boss schema. Reads go through the reader's read-only pool and return nothing while the schema
does not exist yet, so a console that never mutated never creates anything.

Tables (all in the console's schema):

- ``audit``        one row per mutation: ``seq``, ``at_ms``, ``record jsonb``
- ``ledger``       one row per manual requeue (shared retry budgets): ``seq``, ``at_ms``, ``record``
- ``paused``       queues paused by a global pause (``queue_key``, ``by``, ``at_ms``), so that a
  global resume resumes exactly those
- ``paused_queue`` pg-boss queues paused by queue-console: ``(schema, name, paused_at, by, mode)``;
  ``mode`` is ``hold`` (the hold trigger keeps their jobs from being claimed) or ``park``
  (best-effort parking, docs/backends/pgboss.md "Fallback: parking")
- ``parked_job``   the original ``start_after``/``keep_until`` of every parked job:
  ``(schema, name, id, orig_start_after, orig_keep_until, parked_at)``

Function ``hold_paused_job()``: the hold trigger's body (see backends.pgboss.writer and
docs/backends/pgboss.md "Pause"). The trigger itself is on a pg-boss ``job`` table, installed by a
pause and dropped by the last resume; this function is the console's own and stays.
"""
from __future__ import annotations

import json
import time
from typing import Any, Awaitable, Callable

from backends.contract import ConsoleStore
from backends.postgres import pg_errors, quote_ident
from backends.urls import ConnectionUrl

DEFAULT_SCHEMA = "queue_console"
AUDIT_KEEP = 100_000
LEDGER_KEEP = 1_000_000


def ddl(schema: str) -> list[str]:
    s = quote_ident(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.audit (
              seq bigserial PRIMARY KEY,
              at_ms bigint NOT NULL,
              record jsonb NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.ledger (
              seq bigserial PRIMARY KEY,
              at_ms bigint NOT NULL,
              record jsonb NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS ledger_at_ms ON {s}.ledger (at_ms)",
        f"""CREATE TABLE IF NOT EXISTS {s}.paused (
              queue_key text PRIMARY KEY,
              by text NOT NULL,
              at_ms bigint NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.paused_queue (
              schema text NOT NULL,
              name text NOT NULL,
              paused_at timestamptz NOT NULL DEFAULT now(),
              by text NOT NULL,
              PRIMARY KEY (schema, name))""",
        f"ALTER TABLE {s}.paused_queue ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'park'",
        f"""CREATE TABLE IF NOT EXISTS {s}.parked_job (
              schema text NOT NULL,
              name text NOT NULL,
              id uuid NOT NULL,
              orig_start_after timestamptz NOT NULL,
              orig_keep_until timestamptz NOT NULL,
              parked_at timestamptz NOT NULL DEFAULT now(),
              PRIMARY KEY (schema, name, id))""",
        hold_function(schema),
    ]


async def create_store(pool, url: ConnectionUrl, schema: str) -> None:
    """CREATE SCHEMA/TABLE IF NOT EXISTS of the console's schema through ``pool`` (writable), under
    a transaction-level advisory lock so two consoles starting at once do not trip over each other."""
    async with pg_errors(url), pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"queue-console store {schema}")
        for stmt in ddl(schema):
            await conn.execute(stmt)


def hold_function(schema: str) -> str:
    """The hold trigger's function. On a pg-boss job table (any version: it reads only ``name``,
    ``state``, ``keep_until``, late-bound, so pg-boss can alter those columns' types while it is
    installed), for a queue held in ``paused_queue`` (``TG_ARGV[0]`` = the pg-boss schema):

    * an UPDATE that would move a queued job (``created``/``retry``) to ``active`` -- a worker's
      fetch, every version -- is skipped (``RETURN NULL``): the row stays exactly as it was;
    * a DELETE of a queued job whose retention has ended (``keep_until`` passed: pg-boss's
      maintenance drops never-started jobs then) is skipped, so a long pause loses nothing.

    Everything else (sends, completes, fails into ``retry``, cancels, other queues) passes.
    SECURITY DEFINER so that pg-boss's own role needs no rights on the console's schema."""
    s = quote_ident(schema)
    literal = "'" + f"{s}.hold_paused_job()".replace("'", "''") + "'"
    # created once, never replaced: another console's role may own it (and only the owner may replace)
    return f"""DO $do$ BEGIN IF to_regprocedure({literal}) IS NULL THEN EXECUTE $create$
        CREATE FUNCTION {s}.hold_paused_job() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
        BEGIN
          IF TG_OP = 'UPDATE' THEN
            IF NEW.state::text = 'active' AND OLD.state::text IN ('created', 'retry') AND EXISTS (
                 SELECT 1 FROM {s}.paused_queue q
                 WHERE q.schema = TG_ARGV[0] AND q.name = OLD.name AND q.mode = 'hold') THEN
              RETURN NULL;
            END IF;
            RETURN NEW;
          END IF;
          IF OLD.state::text IN ('created', 'retry') AND OLD.keep_until < now() AND EXISTS (
               SELECT 1 FROM {s}.paused_queue q
               WHERE q.schema = TG_ARGV[0] AND q.name = OLD.name AND q.mode = 'hold') THEN
            RETURN NULL;
          END IF;
          RETURN OLD;
        END $fn$ $create$; END IF; END $do$"""


class PgConsoleStore(ConsoleStore):
    """``write_pool`` is a coroutine function returning the writable pool (opened lazily);
    ``ensure`` creates the schema once per store owner (see PgBossWriter._store_ready)."""

    def __init__(self, read_pool, write_pool: Callable[[], Awaitable[Any]], ensure: Callable[[], Awaitable[None]],
                 url: ConnectionUrl, schema: str = DEFAULT_SCHEMA) -> None:
        self.read_pool = read_pool
        self.write_pool = write_pool
        self.ensure = ensure
        self.url = url
        self.schema = schema
        self.s = quote_ident(schema)
        self.location = (f"PostgreSQL schema {schema} (tables audit, ledger, paused, paused_queue, parked_job) "
                         f"at {url.host_label}")

    async def _exists(self, table: str) -> bool:
        row = await self.read_pool.fetchrow("SELECT to_regclass($1) IS NOT NULL AS ok", f"{self.s}.{quote_ident(table)}")
        return bool(row["ok"])

    async def _write(self, sql: str, *args, many: bool = False):
        await self.ensure()
        pool = await self.write_pool()
        async with pg_errors(self.url), pool.acquire() as conn, conn.transaction():
            if many:
                await conn.executemany(sql, args[0])
                return None
            return await conn.fetch(sql, *args)

    # ---------------------------------------------------------------- audit
    async def audit_append(self, record: dict[str, Any]) -> str:
        at = record.get("at")
        at_ms = int(at) if isinstance(at, (int, float)) else int(time.time() * 1000)
        rows = await self._write(f"INSERT INTO {self.s}.audit (at_ms, record) VALUES ($1, $2::jsonb) RETURNING seq",
                                 at_ms, json.dumps(record, default=str))
        seq = rows[0]["seq"]
        if seq % 1000 == 0:  # keep ~AUDIT_KEEP rows, as the Redis stream's MAXLEN does
            await self._write(f"DELETE FROM {self.s}.audit WHERE seq <= $1", seq - AUDIT_KEEP)
        return f"{at_ms}-{seq}"

    async def audit_read(self, limit: int = 100) -> list[dict[str, Any]]:
        async with pg_errors(self.url):
            if not await self._exists("audit"):
                return []
            rows = await self.read_pool.fetch(
                f"SELECT seq, at_ms, record::text AS record FROM {self.s}.audit ORDER BY seq DESC LIMIT $1",
                max(1, int(limit)))
        return [_decode(r) for r in rows]

    # ---------------------------------------------------------------- global pause memory
    async def paused_add(self, queue_keys: list[str], by: str) -> None:
        if queue_keys:
            now = int(time.time() * 1000)
            await self._write(f"INSERT INTO {self.s}.paused (queue_key, by, at_ms) SELECT k, $2, $3 FROM unnest($1::text[]) k "
                              "ON CONFLICT (queue_key) DO UPDATE SET by = EXCLUDED.by, at_ms = EXCLUDED.at_ms",
                              list(queue_keys), by, now)

    async def paused_remove(self, queue_keys: list[str]) -> None:
        if queue_keys:
            await self._write(f"DELETE FROM {self.s}.paused WHERE queue_key = ANY($1::text[])", list(queue_keys))

    async def paused_list(self) -> dict[str, str]:
        async with pg_errors(self.url):
            if not await self._exists("paused"):
                return {}
            rows = await self.read_pool.fetch(f"SELECT queue_key, by, at_ms FROM {self.s}.paused")
        return {r["queue_key"]: json.dumps({"by": r["by"], "at": r["at_ms"]}) for r in rows}

    # ---------------------------------------------------------------- ledger
    async def ledger_append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        await self._write(
            f"INSERT INTO {self.s}.ledger (at_ms, record) "
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, r::jsonb FROM unnest($1::text[]) r",
            [json.dumps(r, default=str) for r in records])

    async def ledger_read(self, since_ms: int, limit: int = 100_000) -> list[dict[str, Any]]:
        async with pg_errors(self.url):
            if not await self._exists("ledger"):
                return []
            rows = await self.read_pool.fetch(
                f"SELECT seq, at_ms, record::text AS record FROM {self.s}.ledger WHERE at_ms >= $1 ORDER BY seq LIMIT $2",
                max(int(since_ms), 0), max(1, int(limit)))
        return [_decode(r) for r in rows]


def _decode(row) -> dict[str, Any]:
    try:
        record = json.loads(row["record"])
    except ValueError:
        record = {"unreadable": row["record"]}
    if not isinstance(record, dict):
        record = {"value": record}
    record["_id"] = f"{row['at_ms']}-{row['seq']}"
    return record
