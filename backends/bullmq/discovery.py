"""Finding BullMQ and Bull queues with SCAN (never KEYS), bounded in time.

Recipe (shared/formats/bullmq.md 1.6): SCAN for ``*:meta`` and ``*:id``; strip the suffix; the
last colon-free segment is the queue name, the rest the prefix (or strip a pinned prefix); drop
empty names (``<prefix>::relay``); classify by the ``meta`` fields: ``version`` or
``opts.maxLenEvents`` means BullMQ, a ``paused``-only meta or no meta means Bull. A candidate of
Bull's shape must also have one of the state keys of the right type, so that other programs'
``...:id`` keys are ignored.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from backends.bullmq.keys import STATE_SUFFIXES, QueueKeys, glob_escape

SCAN_COUNT = 1000
#: BullMQ's (and Bull's) key prefix when none is given
DEFAULT_PREFIX = "bull"
_STATE_TYPES = {
    "wait": b"list", "paused": b"list", "active": b"list", "prioritized": b"zset", "delayed": b"zset",
    "completed": b"zset", "failed": b"zset", "waiting-children": b"zset",
}


@dataclass(frozen=True)
class Found:
    prefix: str
    name: str
    backend: str  # "bullmq" or "bull"
    version: str | None  # meta.version hint (last node Queue that connected), if any


@dataclass
class ScanResult:
    found: list[Found]
    patterns: list[str]
    complete: bool
    keys_seen: int


def split_key(key: str, suffix: str, prefixes: list[str] | None) -> tuple[str, str] | None:
    """``<prefix>:<name>:<suffix>`` -> (prefix, name), or None when the key is no queue key."""
    if not key.endswith(":" + suffix):
        return None
    base = key[: -len(suffix) - 1]
    if prefixes:
        for prefix in prefixes:
            if base.startswith(prefix + ":") and len(base) > len(prefix) + 1:
                return prefix, base[len(prefix) + 1:]
        return None
    prefix, sep, name = base.rpartition(":")
    if not sep or not prefix or not name:
        return None
    return prefix, name


async def _scan(client: aioredis.Redis, pattern: str, deadline: float, out: set[str]) -> tuple[bool, int]:
    cursor, seen = 0, 0
    while True:
        if time.monotonic() > deadline:
            return False, seen
        cursor, keys = await client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        for key in keys:
            seen += 1
            out.add(key.decode("utf-8", "surrogateescape"))
        if cursor == 0:
            return True, seen


async def discover(client: aioredis.Redis, prefixes: list[str] | None, time_budget_s: float) -> ScanResult:
    deadline = time.monotonic() + time_budget_s
    if prefixes:
        patterns = [f"{glob_escape(p)}:*:{suffix}" for p in prefixes for suffix in ("meta", "id")]
    else:
        patterns = ["*:meta", "*:id"]
    keys: set[str] = set()
    complete, seen = True, 0
    for pattern in patterns:
        ok, n = await _scan(client, pattern, deadline, keys)
        complete, seen = complete and ok, seen + n
    candidates: set[tuple[str, str]] = set()
    for key in keys:
        for suffix in ("meta", "id"):
            parts = split_key(key, suffix, prefixes)
            if parts:
                candidates.add(parts)
    found = await classify(client, sorted(candidates))
    if not prefixes:
        found = sorted(set(map(_v4_default_prefix, found)), key=lambda f: (f.prefix, f.name))
    return ScanResult(found=found, patterns=patterns, complete=complete, keys_seen=seen)


def _v4_default_prefix(f: Found) -> Found:
    """BullMQ 4 allows ``:`` in queue names (5 and 6 refuse them), so without ``--prefix`` a v4
    queue under BullMQ's default prefix ``bull`` is ``bull`` + the rest, not split at the last colon.
    The keys are the same either way; ``--prefix`` settles a custom prefix that contains colons."""
    if (f.backend == "bullmq" and f.version and f.version.startswith("bullmq:4.")
            and f.prefix.startswith(DEFAULT_PREFIX + ":")):
        return Found(DEFAULT_PREFIX, f"{f.prefix[len(DEFAULT_PREFIX) + 1:]}:{f.name}", f.backend, f.version)
    return f


async def classify(client: aioredis.Redis, candidates: list[tuple[str, str]]) -> list[Found]:
    """One pipelined round trip: read meta fields and key types of every candidate."""
    if not candidates:
        return []
    pipe = client.pipeline(transaction=False)
    for prefix, name in candidates:
        k = QueueKeys(prefix, name)
        pipe.type(k("meta"))
        pipe.hmget(k("meta"), "version", "opts.maxLenEvents", "paused")
        pipe.type(k("id"))
        for suffix in STATE_SUFFIXES:
            pipe.type(k(suffix))
    # a meta key that is not a hash answers WRONGTYPE to its HMGET only: that candidate is not a queue
    replies = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, Exception) and not str(reply).startswith("WRONGTYPE"):
            raise reply  # not about the data (NOPERM, ...): the caller maps it
    width = 3 + len(STATE_SUFFIXES)
    found: list[Found] = []
    for i, (prefix, name) in enumerate(candidates):
        meta_type, meta_fields, id_type, *state_types = replies[i * width:(i + 1) * width]
        version, max_len, _paused = (None, None, None) if isinstance(meta_fields, Exception) else meta_fields
        has_state = any(t == _STATE_TYPES[s] for s, t in zip(STATE_SUFFIXES, state_types))
        if meta_type == b"hash" and (version is not None or max_len is not None):
            found.append(Found(prefix, name, "bullmq", version.decode("utf-8", "replace") if version else None))
        elif (meta_type in (b"hash", b"none")) and (id_type in (b"string", b"none")) and has_state:
            if meta_type == b"none" and id_type == b"none":
                continue
            found.append(Found(prefix, name, "bull", None))
    return found
