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


def duration_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 120:
        return f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


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
