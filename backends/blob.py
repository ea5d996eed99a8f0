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
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    size = len(raw)
    cut = raw[:limit]
    try:
        text = cut.decode("utf-8")
        binary = False
    except UnicodeDecodeError as exc:
        # a multi-byte character cut in half at the limit is not binary data
        if size > limit and exc.start >= len(cut) - 3 and exc.reason == "unexpected end of data":
            text, binary = cut[: exc.start].decode("utf-8"), False
        else:
            text, binary = cut.decode("utf-8", "backslashreplace"), True
    return Blob(text=text, size=size, truncated=size > limit, is_binary=binary)


def to_str(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "backslashreplace")
    return raw


def to_int(raw: bytes | str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(float(raw))
    except (TypeError, ValueError):
        return None
