"""Keyset cursors of BullMQ-on-PostgreSQL job lists: the last row's sort key, opaque to callers."""
from __future__ import annotations

from backends.page_cursor import pack_keys, unpack_keys

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
    return pack_keys(state, values)


def decode(cursor: str, state: str) -> list:
    """The shared keyset codec (backends/page_cursor.py): job ids are text, every other key a number."""
    return unpack_keys(cursor, state, tuple("str?" if col == "id" else "int?" for col in ORDERS[state][1]))
