"""Where BullMQ-on-PostgreSQL keeps its queues, and BullMQ's own SQL commands.

One namespace is one PostgreSQL schema (``bullmq`` unless the connection names another) holding
the tables ``job``, ``job_log``, ``job_dependency``, ``event``, ``metrics``, ``meta`` and the
migration ledger ``migration`` (version = number of applied migrations). The queue is the
``queue`` column; there is no per-queue key prefix.

The command files (``SELECT fn(...)`` or plain queries, no schema names: the session's
``search_path`` picks the schema) are read from the pinned BullMQ for Python package
(``bullmq/postgres/commands/*.sql``), the same files BullMQ for Node 6.7.0 inlines
(tests/test_reader_bullmq_postgres.py checks they are byte-for-byte equal).
"""
from __future__ import annotations

import functools
import importlib.util
import os

from backends.postgres import quote_ident

BACKEND = "bullmq-postgres"
DEFAULT_SCHEMA = "bullmq"
#: the newest schema version (migration count) whose commands queue-console has checked: BullMQ for
#: Node 6.7.0 ships migrations 1-11, BullMQ for Python 3.4.4 ships 1-4
KNOWN_MAX_VERSION = 11

#: schemas that hold BullMQ's tables (pg-boss's schema also has ``job`` and ``job_state`` but no
#: ``job_dependency``/``meta``/``migration``)
SCHEMAS_SQL = """
SELECT n.nspname AS schema
FROM pg_catalog.pg_namespace n
WHERE ($1::text IS NULL OR n.nspname = $1::text)
  AND (SELECT count(*) FROM pg_catalog.pg_class c
       WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
         AND c.relname IN ('job', 'job_log', 'job_dependency', 'event', 'meta', 'migration')) = 6
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_type t
              WHERE t.typnamespace = n.oid AND t.typname = 'dep_status' AND t.typtype = 'e')
ORDER BY n.nspname
"""


def version_sql(schema: str) -> str:
    return f"SELECT COALESCE(max(version), 0)::int AS version FROM {quote_ident(schema)}.migration"


def queues_sql(schema: str) -> str:
    """Every queue name of a schema: a loose index scan over ``job``'s primary key (one index
    probe per queue, not one row per job), plus queues that only have ``meta`` rows (paused)."""
    s = quote_ident(schema)
    return f"""
WITH RECURSIVE q(name) AS (
  SELECT (SELECT min(queue) FROM {s}.job)
  UNION ALL
  SELECT (SELECT min(queue) FROM {s}.job WHERE queue > q.name) FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL
UNION
SELECT DISTINCT queue FROM {s}.meta
ORDER BY 1"""


def search_path_sql() -> str:
    """Pins the transaction's search_path to one schema (``$1`` = the quoted schema)."""
    return "SELECT set_config('search_path', $1, true)"


def commands_dir() -> str:
    spec = importlib.util.find_spec("bullmq")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("BullMQ for Python (bullmq==3.4.4) is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "postgres", "commands")


@functools.cache
def command(name: str) -> str:
    """BullMQ's own SQL for one command (``retry_jobs``, ``clean``, ...)."""
    with open(os.path.join(commands_dir(), f"{name}.sql"), encoding="utf-8") as fh:
        return fh.read()


def read_only_reason(version: int) -> str | None:
    if version > KNOWN_MAX_VERSION:
        return (f"BullMQ PostgreSQL schema version {version} is newer than queue-console knows "
                f"({KNOWN_MAX_VERSION}): read-only")
    if version < 4:
        return f"BullMQ PostgreSQL schema version {version} is incomplete (migrations still running?): read-only"
    return None
