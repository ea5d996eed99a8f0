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

    A window is any ``window`` consecutive milliseconds. Adding ``t`` is allowed when every window
    containing ``t`` already holds fewer than ``limit`` starts; it is enough to look at the
    trailing windows ``(p - window, p]`` ending at ``t`` and at each later start ``p < t + window``.
    """

    __slots__ = ("window", "limit", "points")

    def __init__(self, window: int, limit: int, points: list[int] | None = None) -> None:
        self.window = window
        self.limit = limit
        self.points: list[int] = sorted(points or ())

    def _trailing(self, p: int) -> int:
        pts = self.points
        return bisect_right(pts, p) - bisect_right(pts, p - self.window)

    def next_free(self, t: int) -> int:
        """The smallest time >= t whose addition keeps every window within the limit."""
        pts, w, n = self.points, self.window, self.limit
        if n <= 0:
            raise ValueError("a zero budget has no free time")
        while True:
            lo = bisect_right(pts, t - w)
            hi = bisect_right(pts, t)
            count = hi - lo
            if count >= n:
                # wait until enough of the starts in (t - w, t] have left the window
                t = pts[lo + count - n] + w
                continue
            j = hi
            end = bisect_left(pts, t + w)
            moved = False
            while j < end:
                p = pts[j]
                if self._trailing(p) >= n:
                    t = p + 1  # every time in (p - w, p] would overfill p's window
                    moved = True
                    break
                j = bisect_right(pts, p)
            if not moved:
                return t

    def add(self, t: int) -> None:
        insort(self.points, t)
