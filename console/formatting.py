"""Small display helpers shared by the CLI and the TUI (no Textual)."""
from __future__ import annotations

import datetime as dt

from backends.contract import CANONICAL_STATES, QueueStatus

SPARK = "▁▂▃▄▅▆▇█"


def timestamp(ms: int | None) -> str:
    if ms is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, OSError, ValueError):
        return f"{ms} (bad timestamp)"


def clock(ms: int | None, utc: bool = False) -> str:
    """A moment for people: local time with its UTC offset (``2026-11-30 03:12:05 +01:00``), or UTC
    (``+00:00``) with ``utc`` (--utc, the config key ``utc``). The CLI's one timestamp format."""
    if ms is None:
        return "-"
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
        if not utc:
            moment = moment.astimezone()
    except (OverflowError, OSError, ValueError):
        return f"{ms} (bad timestamp)"
    offset = moment.strftime("%z")  # +0100
    return f"{moment:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def duration_ms(ms: float | None) -> str:
    """The one duration format: ``104ms``, ``4.2s``, ``44s``, ``1m 44s``, ``2h 5m``, ``3d 4h`` (two units at
    most: the smaller one truncated)."""
    if ms is None:
        return "-"
    if ms < 0:
        return "-" + duration_ms(-ms)
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 9_950:
        return f"{ms / 1000:.1f}s"
    total = int((ms + 500) // 1000)  # whole seconds
    parts = []
    for size, unit in _UNITS:
        value, total = divmod(total, size)
        if value or parts:
            parts.append(f"{value}{unit}")
        if len(parts) == 2:
            break
    if len(parts) == 2 and parts[1].startswith("0"):
        parts.pop()
    return " ".join(parts)


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else duration_ms(seconds * 1000)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 queue``, ``2 queues``, ``1 batch``, ``3 batches`` (``many`` for irregular words)."""
    if n == 1:
        return f"{n:,} {word}"
    if many is None:
        many = word + ("es" if word.endswith(("s", "sh", "ch", "x", "z")) else "s")
    return f"{n:,} {many}"


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def sparkline(values: list[float], width: int = 20) -> str:
    """Unicode block sparkline of the last ``width`` values (blank when there is nothing yet)."""
    vals = values[-width:]
    if not vals:
        return ""
    top = max(vals)
    if top <= 0:
        return SPARK[0] * len(vals)
    return "".join(SPARK[min(int(v / top * (len(SPARK) - 1) + 0.5), len(SPARK) - 1)] for v in vals)


def state_columns(statuses: list[QueueStatus]) -> list[str]:
    """Canonical states first, then backend-specific ones present in any status."""
    extra = sorted({s for st in statuses for s in st.counts if s not in CANONICAL_STATES})
    return list(CANONICAL_STATES) + extra
