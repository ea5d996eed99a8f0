"""Keyset cursors of BullMQ-on-PostgreSQL job lists: the last row's sort key, opaque to callers."""
from __future__ import annotations

import base64
import json

from backends.errors import BadCursor

#: canonical state -> (WHERE on ``job``, ORDER BY columns, directions): each list is one walk of a
#: state-scoped partial index of BullMQ's schema (job_ready_idx, job_delayed_idx, ...)
ORDERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # claim order: (priority, seq), as move_to_active takes them
    "waiting": ("state = 'waiting'", ("priority", "seq"), ("asc", "asc")),
    "delayed": ("state = 'delayed'", ("process_at_ms", "seq"), ("asc", "asc")),
    "active": ("state = 'active'", ("seq",), ("asc",)),
    "completed": ("state = 'completed'", ("finished_at_ms", "id"), ("desc", "desc")),
    "failed": ("state = 'failed'", ("finished_at_ms", "id"), ("desc", "desc")),
    "waiting_children": ("state = 'waiting-children'", ("seq",), ("asc",)),
}


def after(state: str, first_param: int) -> str:
    """``AND (cols) > ($n, ...)`` (or ``<`` for a descending order): the rows after the cursor."""
    _, cols, dirs = ORDERS[state]
    op = "<" if dirs[0] == "desc" else ">"
    params = ", ".join(f"${first_param + i}" for i in range(len(cols)))
    return f" AND ({', '.join(cols)}) {op} ({params})"


def order_by(state: str) -> str:
    _, cols, dirs = ORDERS[state]
    return ", ".join(f"{c} {d}" for c, d in zip(cols, dirs))


def encode(state: str, values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps([state, values]).encode()).decode()


def decode(cursor: str, state: str) -> list:
    try:
        got_state, values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise BadCursor("unreadable page cursor") from None
    width = len(ORDERS[state][1])
    if got_state != state or not isinstance(values, list) or len(values) != width:
        raise BadCursor(f"page cursor is not one of state {state!r}")
    return values
