"""Finding the earliest start time that keeps a queue within its rate and its window budget.

Times are integer milliseconds since the epoch throughout, so "at least 1/rate apart" and
"at most N in any window of W" are exact (no float rounding at epoch magnitudes).
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort


def gap_ms(rate: float) -> int:
    """The smallest whole number of milliseconds that is >= 1/rate seconds."""
    return max(1, math.ceil(1000.0 / rate))


class RateSlots:
    """Start times of one queue under a rate limit: any two are at least ``gap`` ms apart.

    Each start ``p`` blocks the integers ``[p - gap + 1, p + gap - 1]``; the blocked ranges are
    kept merged and sorted, so the next free time is one bisect away.
    """

    __slots__ = ("gap", "_starts", "_ends")

    def __init__(self, gap: int, points: list[int] | None = None) -> None:
        self.gap = gap
        self._starts: list[int] = []
        self._ends: list[int] = []
        for p in sorted(points or ()):
            self.add(p)

    def next_free(self, t: int) -> int:
        """The smallest time >= t at least ``gap`` from every start so far."""
        i = bisect_right(self._starts, t) - 1
        if i >= 0 and self._ends[i] >= t:
            return self._ends[i] + 1  # merged ranges never touch, so this one is free
        return t

    def add(self, p: int) -> None:
        s, e = p - self.gap + 1, p + self.gap - 1
        lo = bisect_left(self._ends, s - 1)  # first range ending at or after s-1 (overlap or touch)
        hi = bisect_right(self._starts, e + 1)  # ranges starting at or before e+1
        if lo < hi:
            s = min(s, self._starts[lo])
            e = max(e, self._ends[hi - 1])
            del self._starts[lo:hi]
            del self._ends[lo:hi]
        self._starts.insert(lo, s)
        self._ends.insert(lo, e)


class WindowBudget:
    """Start times of one queue under "at most ``limit`` in any window of ``window`` ms".

    A window is any ``window`` consecutive milliseconds. With the starts sorted as ``P``, every run
    of ``limit`` consecutive starts ``P[i] .. P[i+limit-1]`` that fits in one window blocks the
    times ``[P[i+limit-1] - window + 1, P[i] + window - 1]``: a start there would share a window
    with all of them. Both ends of these intervals grow with ``i``, so the earliest free time is
    found by walking them from the first one that can reach ``t``.
    """

    __slots__ = ("window", "limit", "points")

    def __init__(self, window: int, limit: int, points: list[int] | None = None) -> None:
        if limit <= 0:
            raise ValueError("a zero budget has no free time")
        self.window = window
        self.limit = limit
        self.points: list[int] = sorted(points or ())

    def next_free(self, t: int) -> int:
        """The smallest time >= t whose addition keeps every window within the limit."""
        pts, w, n = self.points, self.window, self.limit
        i = bisect_left(pts, t - w + 1)  # intervals before i end before t
        last = len(pts) - n
        while i <= last:
            high = pts[i + n - 1]
            if high - w + 1 > t:
                break  # this and every later interval start after t
            if high - pts[i] < w:  # the run fits in one window: its interval is not empty
                end = pts[i] + w - 1
                if end >= t:
                    t = end + 1
            i += 1
        return t

    def add(self, t: int) -> None:
        insort(self.points, t)
