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
#: where BullMQ and Bull put a queue's keys unless told otherwise (a named queue is looked up here
#: directly when no prefix is pinned)
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


#: one SCAN pass matches both ``...:meta`` and ``...:id`` (and a few other keys, such as
#: ``...:meta-paused`` or ``...:metrics:*``, that split_key then drops): the server walks the
#: keyspace once instead of once per suffix
BOTH_SUFFIXES = "[mi][ed]*"


async def discover(client: aioredis.Redis, prefixes: list[str] | None, time_budget_s: float) -> ScanResult:
    deadline = time.monotonic() + time_budget_s
    if prefixes:
        patterns = [f"{glob_escape(p)}:*:{suffix}" for p in prefixes for suffix in ("meta", "id")]
        scan_patterns = [f"{glob_escape(p)}:*:{BOTH_SUFFIXES}" for p in prefixes]
    else:
        patterns = ["*:meta", "*:id"]
        scan_patterns = [f"*:{BOTH_SUFFIXES}"]
    keys: set[str] = set()
    complete, seen = True, 0
    for pattern in scan_patterns:
        ok, n = await _scan(client, pattern, deadline, keys)
        complete, seen = complete and ok, seen + n
    candidates: set[tuple[str, str]] = set()
    for key in keys:
        for suffix in ("meta", "id"):
            parts = split_key(key, suffix, prefixes)
            if parts:
                candidates.add(parts)
    found = await classify(client, sorted(candidates))
    return ScanResult(found=found, patterns=patterns, complete=complete, keys_seen=seen)


async def classify(client: aioredis.Redis, candidates: list[tuple[str, str]]) -> list[Found]:
    """Read meta fields and key types of every candidate: two commands per candidate in one
    pipelined round trip, and a second round trip with the other keys' types only for candidates
    whose meta does not already say BullMQ (at 1,000 BullMQ queues: 2,000 commands, not 11,000)."""
    if not candidates:
        return []
    pipe = client.pipeline(transaction=False)
    for prefix, name in candidates:
        k = QueueKeys(prefix, name)
        pipe.type(k("meta"))
        pipe.hmget(k("meta"), "version", "opts.maxLenEvents", "paused")
    metas = await pipe.execute()
    decided: dict[int, Found] = {}
    rest: list[int] = []
    for i, (prefix, name) in enumerate(candidates):
        meta_type, (version, max_len, _paused) = metas[2 * i], metas[2 * i + 1]
        if meta_type == b"hash" and (version is not None or max_len is not None):
            decided[i] = Found(prefix, name, "bullmq", version.decode("utf-8", "replace") if version else None)
        else:
            rest.append(i)
    if rest:
        pipe = client.pipeline(transaction=False)
        for i in rest:
            k = QueueKeys(*candidates[i])
            pipe.type(k("id"))
            for suffix in STATE_SUFFIXES:
                pipe.type(k(suffix))
        replies = await pipe.execute()
        width = 1 + len(STATE_SUFFIXES)
        for j, i in enumerate(rest):
            meta_type = metas[2 * i]
            id_type, *state_types = replies[j * width:(j + 1) * width]
            has_state = any(t == _STATE_TYPES[s] for s, t in zip(STATE_SUFFIXES, state_types))
            if (meta_type in (b"hash", b"none")) and (id_type in (b"string", b"none")) and has_state:
                if meta_type == b"none" and id_type == b"none":
                    continue
                decided[i] = Found(*candidates[i], "bull", None)
    return [decided[i] for i in sorted(decided)]
