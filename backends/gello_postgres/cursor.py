"""Keyset cursors of Gello's PostgreSQL job lists (the shared codec of backends/page_cursor.py):
the last row's sort key, opaque to callers."""
from __future__ import annotations

from backends.page_cursor import pack_keys, unpack_keys

#: state -> (table, WHERE filter, ORDER BY columns, direction)
ORDERS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "waiting": ("jobs", "started_at IS NULL AND scheduled_at <= now()", ("priority", "scheduled_at", "id"), "asc"),
    "delayed": ("jobs", "started_at IS NULL AND scheduled_at > now()", ("scheduled_at", "id"), "asc"),
    "active": ("jobs", "started_at IS NOT NULL", ("started_at", "id"), "asc"),
    "failed": ("failed_jobs", "true", ("failed_at", "id"), "desc"),
}


def encode(state: str, values: list) -> str:
    return pack_keys(state, values)


def decode(cursor: str, state: str) -> list:
    cols = ORDERS[state][2]
    kinds = tuple("time" if col.endswith("_at") else ("int" if state == "failed" and col == "id" else "str")
                  for col in cols)
    return unpack_keys(cursor, state, kinds)
