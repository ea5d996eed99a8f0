"""Finding BullMQ and Bull queues with SCAN (never KEYS), bounded in time.

Recipe (shared/formats/bullmq.md 1.6): SCAN for ``*:meta`` and ``*:id``; strip the suffix; the
last colon-free segment is the queue name, the rest the prefix (or strip a pinned prefix); drop
empty names (``<prefix>::relay``); classify by the ``meta`` fields: ``version`` or
``opts.maxLenEvents`` means BullMQ, a ``paused``-only meta or no meta means Bull. A candidate of
Bull's shape must also have one of the state keys of the right type, so that other programs'
``...:id`` keys are ignored.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from backends.bullmq.keys import STATE_SUFFIXES, QueueKeys, glob_escape

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


def _patterns(prefixes: list[str] | None) -> tuple[list[str], list[str]]:
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
        self.patterns, self._scan_patterns = _patterns(prefixes)
        self._pattern = 0
        self._cursor = 0
        self._pass: set[tuple[str, str]] = set()
        self.last_complete: set[tuple[str, str]] | None = None
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
                    return True
            if pace > 0:
                await asyncio.sleep((time.monotonic() - started) * pace)
        return False

    def candidates(self) -> list[tuple[str, str]]:
        return sorted(self._pass | (self.last_complete or set()))


async def discover(client: aioredis.Redis, prefixes: list[str] | None, time_budget_s: float) -> ScanResult:
    scanner = Scanner(client, prefixes)
    complete = await scanner.run(time.monotonic() + time_budget_s)
    found = finish(await classify(client, scanner.candidates()), prefixes)
    return ScanResult(found=found, patterns=scanner.patterns, complete=complete, keys_seen=scanner.keys_seen)


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
    pipe = client.pipeline(transaction=False)
    for prefix, name in candidates:
        k = QueueKeys(prefix, name)
        pipe.type(k("meta"))
        pipe.hmget(k("meta"), "version", "opts.maxLenEvents", "paused")
    # a meta key that is not a hash answers WRONGTYPE to its HMGET only: that candidate is not a queue
    metas = await pipe.execute(raise_on_error=False)
    for reply in metas:
        if isinstance(reply, Exception) and not str(reply).startswith("WRONGTYPE"):
            raise reply  # not about the data (NOPERM, ...): the caller maps it
    decided: dict[int, Found] = {}
    rest: list[int] = []
    for i, (prefix, name) in enumerate(candidates):
        meta_type, meta_fields = metas[2 * i], metas[2 * i + 1]
        version, max_len, _paused = (None, None, None) if isinstance(meta_fields, Exception) else meta_fields
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
