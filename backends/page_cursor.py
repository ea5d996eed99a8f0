"""Opaque page cursors, one codec per kind of store.

SQL stores (pg-boss, Gello in PostgreSQL) page by keyset: the cursor holds the state and the ORDER BY
values of the last row shown; ``pack_keys`` / ``unpack_keys`` encode them as URL-safe base64 JSON and
check every value against its column's kind ("time": an aware timestamp, "int", "str", "uuid";
a trailing "?" allows NULL).
Redis stores page by position: ``encode_position`` / ``decode_position`` give
``<segment>[:l:<offset>|:z:<score>:<skip>]`` (a list offset, or a sorted-set ``(score, skip)``
window from ``backends.redis_window``). A cursor that does not decode is ``BadCursor`` (exit 2).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from dataclasses import dataclass

from backends.errors import BadCursor

KINDS = ("time", "int", "str", "uuid")


# ------------------------------------------------------------------ keyset cursors (SQL)
def pack_keys(state: str, values: list) -> str:
    keys = [{"t": v.isoformat()} if isinstance(v, dt.datetime) else (str(v) if isinstance(v, uuid.UUID) else v)
            for v in values]
    raw = json.dumps({"s": state, "k": keys}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def unpack_keys(cursor: str, state: str, kinds: tuple[str, ...]) -> list:
    """The ORDER BY values of ``cursor`` (made by ``pack_keys`` for ``state``), typed per ``kinds``."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(doc, dict) or doc.get("s") != state or not isinstance(doc.get("k"), list):
            raise ValueError("not a cursor of this state")
        if len(doc["k"]) != len(kinds):
            raise ValueError("wrong width")
        return [_typed(kind, v) for kind, v in zip(kinds, doc["k"])]
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise BadCursor(f"bad page cursor {cursor!r} for {state} jobs") from None


def _typed(kind: str, v):
    if kind.endswith("?"):  # a nullable column: NULL stays None
        return None if v is None else _typed(kind[:-1], v)
    if kind == "time":
        if not isinstance(v, dict) or not isinstance(v.get("t"), str):
            raise ValueError("bad time")
        t = dt.datetime.fromisoformat(v["t"])
        if t.tzinfo is None:
            raise ValueError("naive time")
        return t
    if kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("bad int")
        return v
    if not isinstance(v, str):
        raise ValueError("bad key")
    return uuid.UUID(v) if kind == "uuid" else v


# ------------------------------------------------------------------ position cursors (Redis)
@dataclass(frozen=True)
class ListCursor:
    offset: int


@dataclass(frozen=True)
class ZsetCursor:
    score: float
    skip: int


def encode_position(segment: int, pos: ListCursor | ZsetCursor | None) -> str:
    if pos is None:
        return f"{segment}"
    if isinstance(pos, ListCursor):
        return f"{segment}:l:{pos.offset}"
    return f"{segment}:z:{pos.score!r}:{pos.skip}"


def decode_position(cursor: str | None, what: str = "") -> tuple[int, ListCursor | ZsetCursor | None]:
    if not cursor:
        return 0, None
    try:
        parts = cursor.split(":")
        segment = int(parts[0])
        if len(parts) == 1:
            return segment, None
        if segment < 0:
            raise ValueError(cursor)
        if parts[1] == "l" and len(parts) == 3 and int(parts[2]) >= 0:
            return segment, ListCursor(int(parts[2]))
        if parts[1] == "z" and len(parts) == 4 and int(parts[3]) >= 0 and not math.isnan(float(parts[2])):
            return segment, ZsetCursor(float(parts[2]), int(parts[3]))
    except ValueError:
        pass
    raise BadCursor(f"bad page cursor {cursor!r}" + (f" for {what} jobs" if what else ""))
