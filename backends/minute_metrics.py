"""BullMQ's per-minute metrics (Redis ``<prefix>:<queue>:metrics:<kind>`` + ``:data``, and the
``metrics`` table of BullMQ on PostgreSQL) turned into points of the last hour.

What a worker with ``metrics: {maxDataPoints}`` writes on every finish (``collectMetrics.lua``,
``collect_metrics`` in SQL): ``count`` (all finishes), ``prevTS`` (the finish that last pushed
points) and ``prevCount`` (``count`` before it); the data list is newest first and holds, for
``P = floor(prevTS / 60000)``, the finishes of minute ``P - 1 - i`` at index ``i``. The finishes of
minute ``P`` itself are ``count - prevCount`` (no push since, so no finish in a later minute), and
minutes after ``P`` up to now had none. ``Queue.getMetrics`` reads the same three fields and list.
"""
from __future__ import annotations

from backends.contract import History, QueueRef

MINUTE_MS = 60_000
#: how many whole minutes a history covers
HISTORY_MINUTES = 60


def minute_counts(count: int | None, prev_ts: int | None, prev_count: int | None, data: list[int],
                  now_ms: int, minutes: int = HISTORY_MINUTES) -> dict[int, int] | None:
    """Finishes per whole minute (minute number -> count) of the ``minutes`` minutes before the
    current one, as far as the metrics know them; None when the metrics were never written."""
    if prev_ts is None or count is None:
        return None
    p = prev_ts // MINUTE_MS
    current = now_ms // MINUTE_MS
    first = current - minutes
    out: dict[int, int] = {}
    for i, value in enumerate(data):
        m = p - 1 - i
        if m < first:
            break
        if m < current:
            out[m] = max(int(value), 0)
    if first <= p < current:
        out[p] = max(count - (prev_count or 0), 0)
    for m in range(max(p + 1, first), current):
        out[m] = 0
    return out


def to_points(completed: dict[int, int] | None, failed: dict[int, int] | None
              ) -> tuple[list[int], list[float], list[float]]:
    """(end of each minute in ms, completed/s, failed/s), oldest first, over the minutes either
    kind knows (a kind without metrics counts 0 there)."""
    completed, failed = completed or {}, failed or {}
    minutes = sorted(set(completed) | set(failed))
    return ([(m + 1) * MINUTE_MS for m in minutes],
            [completed.get(m, 0) / 60.0 for m in minutes],
            [failed.get(m, 0) / 60.0 for m in minutes])


#: what a queue whose workers keep no metrics shows instead of an empty chart
NO_METRICS = "no history: the workers keep no metrics"


def history_of(queue: QueueRef, completed: dict[int, int] | None, failed: dict[int, int] | None) -> History:
    """The History record of one queue from its two kinds' minute counts (None: never written)."""
    if completed is None and failed is None:
        return History(queue=queue, unavailable=NO_METRICS)
    at, done, fail = to_points(completed, failed)
    return History(queue=queue, at_ms=at, completed_per_s=done, failed_per_s=fail, source="metrics")
