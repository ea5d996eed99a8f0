"""A server-side window of a Redis sorted set, with a ``(score, skip)`` position.

The next window starts at ``score`` and skips the ``skip`` members with exactly that score already
shown, so pages stay stable while members with other scores come and go
(``ZREVRANGEBYSCORE key <score> -inf LIMIT <skip> N``). Never reads a whole key.
"""
from __future__ import annotations


async def zset_window(client, key, desc: bool, score: float | None, skip: int, limit: int):
    """``limit`` (member, score) pairs from ``score`` on (None: from the start), highest first when
    ``desc``, and the ``(score, skip)`` position after them, or None when the set is exhausted."""
    if desc:
        hi = repr(score) if score is not None else "+inf"
        raw = await client.zrevrangebyscore(key, hi, "-inf", start=skip, num=limit + 1, withscores=True)
    else:
        lo = repr(score) if score is not None else "-inf"
        raw = await client.zrangebyscore(key, lo, "+inf", start=skip, num=limit + 1, withscores=True)
    more = len(raw) > limit
    raw = raw[:limit]
    if not more:
        return raw, None
    last = raw[-1][1]
    same = sum(1 for _, s in raw if s == last)
    if score is not None and score == last:
        same += skip
    return raw, (last, same)
