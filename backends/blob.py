"""Turning raw stored bytes into a ``Blob``: decoded, cut at a limit, with its true size."""
from __future__ import annotations

from backends.contract import Blob

#: default cut for payloads in the detail view
DETAIL_LIMIT = 256 * 1024
#: default cut for one-line fields in list rows (error messages)
ROW_LIMIT = 300


def to_blob(raw: bytes | str | None, limit: int = DETAIL_LIMIT) -> Blob | None:
    if raw is None:
        return None
    text, size, binary = _cut_text(raw, limit)
    return Blob(text=text, size=size, truncated=size > limit, is_binary=binary)


def to_text(raw: bytes | str | None, limit: int = ROW_LIMIT) -> str | None:
    """The text ``to_blob`` would hold, without building a Blob (for reading 100,000 rows)."""
    return None if raw is None else _cut_text(raw, limit)[0]


def _cut_text(raw: bytes | str, limit: int) -> tuple[str, int, bool]:
    """(text of the first ``limit`` bytes, size in bytes, whether it is binary)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    size = len(raw)
    cut = raw[:limit]
    try:
        return cut.decode("utf-8"), size, False
    except UnicodeDecodeError as exc:
        # a multi-byte character cut in half at the limit is not binary data
        if size > limit and exc.start >= len(cut) - 3 and exc.reason == "unexpected end of data":
            return cut[: exc.start].decode("utf-8"), size, False
        return cut.decode("utf-8", "backslashreplace"), size, True


def to_str(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return raw


def to_key(raw: bytes | str | None) -> str:
    """A key part read from the store (queue name, job id) as a str that goes back to the store as
    exactly the same bytes (``surrogateescape``, what the Redis client encodes with). The display
    layer escapes the lone surrogates of invalid UTF-8 (``console.safe_text.clean``)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "surrogateescape")
    return raw


#: numbers outside a signed 64-bit range are not counts, ids or times of any queue library
INT_LIMIT = 2 ** 63
#: the last millisecond of year 9999: a later "time" is not a time (and cannot be formatted)
MAX_TIME_MS = 253_402_300_799_999


def to_int(raw: bytes | str | None) -> int | None:
    """A stored number, or None when absent or not a finite number in the 64-bit range
    (``1e400``, ``nan``, ``abc``)."""
    if raw is None:
        return None
    try:
        value = int(float(raw))
    except (TypeError, ValueError, OverflowError):
        return None
    return value if -INT_LIMIT <= value < INT_LIMIT else None


def to_ms(raw: bytes | str | None) -> int | None:
    """A stored time in ms since the epoch, or None when absent or not a time (negative, past 9999)."""
    value = to_int(raw)
    return value if value is not None and 0 <= value <= MAX_TIME_MS else None
