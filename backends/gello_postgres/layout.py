"""Gello's PostgreSQL layout (docs/backends/gello.md, "PostgreSQL layout"): the ``jobs`` and
``failed_jobs`` tables of one schema (``public`` unless configured), the columns they must have,
and the check that names every difference before anything is read.

A table with a missing column or a column of another type is not read; an extra NOT NULL column
without a default on ``jobs`` makes the backend read-only (a retry's INSERT would fail).
"""
from __future__ import annotations

import datetime as dt

from backends.contract import Capabilities

DEFAULT_SCHEMA = "public"
STATES = ("waiting", "delayed", "active", "failed")

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

FULL = Capabilities(states=STATES, pause=False, retry=True, purge=True, delayed_retry=True, namespace_label="schema")


def looks_like_gello(rows) -> bool:
    """Do these COLUMNS_SQL rows hold Gello tables? (``failed_jobs``, or ``jobs`` with a
    ``job_type`` column -- so that an application's unrelated ``jobs`` table is left alone)."""
    tables = {r["table_name"] for r in rows}
    return "failed_jobs" in tables or any(r["table_name"] == "jobs" and r["column_name"] == "job_type" for r in rows)


def check(schema: str, rows) -> tuple[list[str], bool, Capabilities]:
    """The problems with the two tables (each naming table and column), whether they can be read
    at all, and the capabilities they leave."""
    have: dict[str, dict[str, tuple[str, bool, bool]]] = {}
    for r in rows:
        have.setdefault(r["table_name"], {})[r["column_name"]] = (r["data_type"], r["nullable"], r["has_default"])
    problems: list[str] = []
    fatal = False
    read_only: list[str] = []
    for table, expected in EXPECTED.items():
        cols = have.get(table)
        where = f"table {schema}.{table}"
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
    if fatal:
        reason = "not a Gello layout: " + "; ".join(problems)
        return problems, False, Capabilities(states=STATES, read_only_reason=reason, namespace_label="schema")
    if read_only:
        reason = (f"read-only: extra NOT NULL column(s) {', '.join(repr(c) for c in read_only)} without a default "
                  "would make a retry's INSERT fail")
        return problems, True, Capabilities(states=STATES, purge=True, read_only_reason=reason, namespace_label="schema")
    return problems, True, FULL


def aware(value: dt.datetime | None) -> dt.datetime | None:
    """With a time zone; asyncpg gives PostgreSQL's +-infinity as naive datetime.max/min: kept as
    the latest/earliest time there is, so that they still compare with now()."""
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def ms(value: dt.datetime | None) -> int | None:
    value = aware(value)
    if value is None or value.replace(tzinfo=None) in (dt.datetime.max, dt.datetime.min):
        return None  # +-infinity: no point in time
    return int(value.timestamp() * 1000)


def ts(ms_value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms_value / 1000, tz=dt.timezone.utc)
