"""Finding BullMQ and Bull queues with SCAN (never KEYS), bounded in time.

Recipe (docs/backends/bullmq.md, "Discovery"): SCAN for ``*:meta`` and ``*:id``; strip the suffix; the
last colon-free segment is the queue name, the rest the prefix (or strip a pinned prefix); drop
empty names (``<prefix>::relay``); classify by the ``meta`` fields: ``version`` or
``opts.maxLenEvents`` means BullMQ, a ``paused``-only meta or no meta means Bull. A candidate of
Bull's shape must also have one of the state keys of the right type, so that other programs'
``...:id`` keys are ignored.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Callable

import redis.asyncio as aioredis

from backends.bullmq.keys import STATE_SUFFIXES, QueueKeys
from backends.redis_client import pipelined_lenient
from backends.redis_scan import glob_escape

SCAN_COUNT = 1000
#: BullMQ's (and Bull's) key prefix when none is given (a named queue is looked up here directly
#: when no prefix is pinned)
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
    #: the raw candidates of a complete pass (what the discovery cache keeps)
    candidates: set[tuple[str, str]] = field(default_factory=set)


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


#: one SCAN pass matches both ``...:meta`` and ``...:id`` (and a few other keys, such as
#: ``...:meta-paused`` or ``...:metrics:*``, that split_key then drops): the server walks the
#: keyspace once instead of once per suffix
BOTH_SUFFIXES = "[mi][ed]*"


def patterns_for(prefixes: list[str] | None) -> tuple[list[str], list[str]]:
    """(what is looked for, for messages; what SCAN matches)."""
    if prefixes:
        return ([f"{glob_escape(p)}:*:{suffix}" for p in prefixes for suffix in ("meta", "id")],
                [f"{glob_escape(p)}:*:{BOTH_SUFFIXES}" for p in prefixes])
    return ["*:meta", "*:id"], [f"*:{BOTH_SUFFIXES}"]


class Scanner:
    """A SCAN over the keyspace that can stop at a deadline and go on from there on the next call.

    Candidates of the pass under way are kept with those of the last complete pass, so a queue
    once found stays listed while the next pass walks the keyspace again; a complete pass replaces
    them (queues deleted meanwhile drop out). ``pace`` > 0 sleeps ``pace`` times as long as each
    SCAN call took before the next one, so that a background discovery keeps the server's share of
    time spent on it at about 1 / (1 + pace)."""

    def __init__(self, client: aioredis.Redis, prefixes: list[str] | None) -> None:
        self.client = client
        self.prefixes = prefixes
        self.patterns, self._scan_patterns = patterns_for(prefixes)
        self._pattern = 0
        self._cursor = 0
        self._pass: set[tuple[str, str]] = set()
        self.last_complete: set[tuple[str, str]] | None = None
        #: True while ``last_complete`` holds a cached pass's candidates, not this scanner's own
        self.seeded = False
        self.keys_seen = 0

    async def run(self, deadline: float, pace: float = 0.0) -> bool:
        """Scan until the deadline or the end of this pass; True when the pass just completed."""
        while time.monotonic() <= deadline:
            started = time.monotonic()
            self._cursor, keys = await self.client.scan(cursor=self._cursor, match=self._scan_patterns[self._pattern],
                                                        count=SCAN_COUNT)
            for raw in keys:
                key = raw.decode("utf-8", "surrogateescape")
                self.keys_seen += 1
                for suffix in ("meta", "id"):
                    parts = split_key(key, suffix, self.prefixes)
                    if parts:
                        self._pass.add(parts)
            if self._cursor == 0:
                self._pattern += 1
                if self._pattern == len(self._scan_patterns):
                    self.last_complete, self._pass, self._pattern = self._pass, set(), 0
                    self.seeded = False
                    return True
            if pace > 0:
                await asyncio.sleep((time.monotonic() - started) * pace)
        return False

    def seed(self, candidates: set[tuple[str, str]]) -> None:
        """Start from a cached pass: its candidates stay listed until this scanner's own first
        complete pass replaces them (as a previous pass's do)."""
        if self.last_complete is None:
            self.last_complete, self.seeded = set(candidates), True

    def candidates(self) -> list[tuple[str, str]]:
        return sorted(self._pass | (self.last_complete or set()))


async def discover(client: aioredis.Redis, prefixes: list[str] | None, time_budget_s: float,
                   keep: Callable[[tuple[str, str]], bool] | None = None) -> ScanResult:
    """``keep``: which candidates to classify (on a Redis Cluster node, the queues it serves)."""
    scanner = Scanner(client, prefixes)
    complete = await scanner.run(time.monotonic() + time_budget_s)
    candidates = [c for c in scanner.candidates() if keep is None or keep(c)]
    found = finish(await classify(client, candidates), prefixes)
    return ScanResult(found=found, patterns=scanner.patterns, complete=complete, keys_seen=scanner.keys_seen,
                      candidates=scanner.last_complete or set())


# ------------------------------------------------------------------------------------------ cache
#: how long the candidates of a complete pass are kept (the key's TTL): a reader that may use the
#: cache (``queue-console status``) scans again once it has expired; a running TUI rewrites it after
#: each complete background pass
CACHE_TTL_S = 600
#: below this many keys (DBSIZE) a reader scans afresh even when it may use the cache: a full pass
#: is then well under half a second (1.1M keys took 1.8 s, docs/performance.md), and a fresh list
#: beats a kept one
CACHE_MIN_KEYS = 200_000
_CACHE_VERSION = 1


def cache_key(store_prefix: str, prefixes: list[str] | None) -> str:
    """One key per set of pinned prefixes (``*`` for none), under the console's own store prefix
    (never matched by discovery: it ends in neither ``:meta`` nor ``:id``)."""
    spec = json.dumps(sorted(prefixes)) if prefixes else "*"
    return f"{store_prefix}:discovered:{spec}"


@dataclass
class CachedScan:
    candidates: set[tuple[str, str]]
    scanned_at_ms: int  # server time of the end of the pass
    #: whether Gello keys were seen when the readers were opened (registry's detection SCAN), if
    #: known, as (the Gello prefixes looked for, seen)
    gello: tuple[list[str], bool] | None = None


async def write_cache(client: aioredis.Redis, key: str, candidates: set[tuple[str, str]],
                      gello: tuple[list[str], bool] | None = None) -> None:
    """Keep a complete pass's candidates (not its verdicts: a reader classifies them again), and
    the Gello detection's verdict of the same session."""
    seconds, micros = await client.time()
    doc = {"v": _CACHE_VERSION, "at_ms": int(seconds) * 1000 + int(micros) // 1000,
           "candidates": sorted(candidates), "gello": list(gello) if gello else None}
    await client.set(key, json.dumps(doc, separators=(",", ":")), ex=CACHE_TTL_S)


async def read_cache(client: aioredis.Redis, key: str) -> CachedScan | None:
    """The last complete pass's candidates, or None (none kept, expired, or not ours to read)."""
    raw = await client.get(key)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        if doc.get("v") != _CACHE_VERSION:
            return None
        candidates = {(str(p), str(n)) for p, n in doc["candidates"]}
        gello = doc.get("gello")
        verdict = None
        if isinstance(gello, list) and len(gello) == 2 and isinstance(gello[1], bool):
            verdict = ([str(p) for p in gello[0]], gello[1])
        return CachedScan(candidates=candidates, scanned_at_ms=int(doc["at_ms"]), gello=verdict)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def finish(found: list[Found], prefixes: list[str] | None) -> list[Found]:
    """Classified candidates as queues: without pinned prefixes, BullMQ 4 names under ``bull``."""
    if prefixes:
        return found
    return sorted(set(map(_v4_default_prefix, found)), key=lambda f: (f.prefix, f.name))


def _v4_default_prefix(f: Found) -> Found:
    """BullMQ 4 allows ``:`` in queue names (5 and 6 refuse them), so without ``--prefix`` a v4
    queue under BullMQ's default prefix ``bull`` is ``bull`` + the rest, not split at the last colon.
    The keys are the same either way; ``--prefix`` settles a custom prefix that contains colons."""
    if (f.backend == "bullmq" and f.version and f.version.startswith("bullmq:4.")
            and f.prefix.startswith(DEFAULT_PREFIX + ":")):
        return Found(DEFAULT_PREFIX, f"{f.prefix[len(DEFAULT_PREFIX) + 1:]}:{f.name}", f.backend, f.version)
    return f


async def classify(client: aioredis.Redis, candidates: list[tuple[str, str]]) -> list[Found]:
    """Read meta fields and key types of every candidate: two commands per candidate in one
    pipelined round trip, and a second round trip with the other keys' types only for candidates
    whose meta does not already say BullMQ (at 1,000 BullMQ queues: 2,000 commands, not 11,000)."""
    if not candidates:
        return []
    commands: list[tuple] = []
    for prefix, name in candidates:
        meta = QueueKeys(prefix, name)("meta")
        commands += [("TYPE", meta), ("HMGET", meta, "version", "opts.maxLenEvents", "paused")]
    # packed once, replies read raw (redis-py's pipeline spent ~0.15 s of CPU on 2,000 commands); a
    # meta key that is not a hash answers WRONGTYPE to its HMGET only: that candidate is not a queue
    metas = await pipelined_lenient(client, commands)
    decided: dict[int, Found] = {}
    rest: list[int] = []
    for i, (prefix, name) in enumerate(candidates):
        meta_type, meta_fields = metas[2 * i], metas[2 * i + 1]
        version, max_len, _paused = (None, None, None) if meta_fields is None else meta_fields
        if meta_type == b"hash" and (version is not None or max_len is not None):
            decided[i] = Found(prefix, name, "bullmq", version.decode("utf-8", "replace") if version else None)
        else:
            rest.append(i)
    if rest:
        commands = []
        for i in rest:
            k = QueueKeys(*candidates[i])
            commands.append(("TYPE", k("id")))
            commands += [("TYPE", k(suffix)) for suffix in STATE_SUFFIXES]
        replies = await pipelined_lenient(client, commands)  # TYPE answers for any key
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
