"""Opaque page cursors for BullMQ lists (an offset) and sorted sets (a score plus a tie skip).

A sorted-set cursor is ``(score, skip)``: the next window starts at ``score`` and skips the
``skip`` members with exactly that score already shown, so pages stay stable while jobs with
other scores come and go (``ZREVRANGEBYSCORE failed <score> -inf LIMIT <skip> N``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from backends.errors import BadCursor


@dataclass(frozen=True)
class ListCursor:
    offset: int


@dataclass(frozen=True)
class ZsetCursor:
    score: float
    skip: int


def encode_cursor(segment: int, pos: ListCursor | ZsetCursor | None) -> str:
    if pos is None:
        return f"{segment}"
    if isinstance(pos, ListCursor):
        return f"{segment}:l:{pos.offset}"
    return f"{segment}:z:{pos.score!r}:{pos.skip}"


def decode_cursor(cursor: str | None) -> tuple[int, ListCursor | ZsetCursor | None]:
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
    raise BadCursor(f"bad page cursor {cursor!r}")
