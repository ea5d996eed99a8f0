"""Capped exponential backoff with jitter, deterministic given a seed.

The jitter of a job is drawn from a hash of (seed, job key, requeue count), not from a shared
random stream: a job's delay does not depend on which other jobs are in the selection or in what
order, so a ``--dry-run`` and the run that follows give every job the same delay.
"""
from __future__ import annotations

import hashlib
import math

from console.policy.config import Backoff
from console.policy.ledger import JobKey


def jitter_fraction(seed: int, key: JobKey, n: int) -> float:
    """A uniform number in [0, 1) fixed by (seed, job, n)."""
    text = "\x1f".join((str(seed), *key, str(n))).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def raw_backoff_ms(n: int, cfg: Backoff) -> int:
    """Delay before jitter: 0 while ``n < after``, then ``min(cap, base * factor**(n - after))``."""
    base_ms = int(round(cfg.base * 1000))
    cap_ms = int(round(cfg.cap * 1000))
    if base_ms <= 0 or n < cfg.after:
        return 0
    k = n - cfg.after
    if cfg.factor == 1 or k == 0:
        return min(base_ms, cap_ms)
    # compare in log space first: factor**k overflows a float long before k gets silly
    if k * math.log(cfg.factor) >= math.log(cap_ms / base_ms):
        return cap_ms
    return min(cap_ms, int(round(base_ms * cfg.factor**k)))


def backoff_ms(n: int, cfg: Backoff, u: float) -> int:
    """The delay with jitter: ``raw - floor(raw * jitter * u)``, always within [0, cap]."""
    raw = raw_backoff_ms(n, cfg)
    if raw == 0 or cfg.jitter == 0:
        return raw
    return raw - int(raw * cfg.jitter * u)
