"""Position cursors of Gello's Redis job lists (the shared codec of backends/page_cursor.py): an
offset from the tail of a list, a (score, skip) position in a sorted set."""
from __future__ import annotations

from backends.errors import BadCursor
from backends.page_cursor import ListCursor, ZsetCursor, decode_position, encode_position


def encode(pos: int | tuple[float, int]) -> str:
    return encode_position(0, ListCursor(pos) if isinstance(pos, int) else ZsetCursor(*pos))


def decode(cursor: str | None, kind: str, state: str):
    """None, a list offset (``kind`` "list") or a (score, skip) pair ("zset"); BadCursor otherwise."""
    if not cursor:
        return None
    segment, pos = decode_position(cursor, state)
    if segment == 0 and kind == "list" and isinstance(pos, ListCursor):
        return pos.offset
    if segment == 0 and kind == "zset" and isinstance(pos, ZsetCursor):
        return (pos.score, pos.skip)
    raise BadCursor(f"bad page cursor {cursor!r} for {state} jobs")
