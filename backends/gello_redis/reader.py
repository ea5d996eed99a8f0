"""Gello queues in Redis (docs/backends/gello.md, "Redis layout"): the read side. Changes (retry and
purge of dead jobs) are in backends/gello_redis/writer.py, composed in as ``self.writer``.

- Queues are found by a time-boxed SCAN (backends/gello_redis/discovery.py).
- Counts: one pipelined round trip (LLEN pending/processing, ZCARD scheduled/dead, TIME).
- Pages: LRANGE windows from the tail of a list (oldest first, as workers take them) and
  ZRANGEBYSCORE windows with a (score, skip) cursor for the sorted sets; never a whole key.

Gello stores serialized jobs without an index by id: a job is found again through the members
seen on recent pages (verified with ZSCORE/LPOS), else by a bounded ZSCAN/LRANGE search.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict

import redis.asyncio as aioredis

from backends.blob import ROW_LIMIT, to_blob, to_str
from backends.contract import Capabilities, ComposedReader, Discovery, JobDetail, Page, QueueRef, QueueStatus
from backends.errors import Malformed, UnknownState
from backends.gello import record as rec_mod
from backends.gello_redis import cursor as cursors
from backends.gello_redis import discovery
from backends.gello_redis.keys import DEFAULT_PREFIX, NATIVE_OF_STATE, SUFFIXES, GelloKeys
from backends.gello_redis.writer import GelloRedisWriter
from backends.redis_client import redis_errors
from backends.redis_scan import glob_escape
from backends.redis_window import zset_window
from backends.urls import ConnectionUrl

STATES = ("waiting", "delayed", "active", "failed")
SCAN_COUNT = 1000
#: how many (id -> member) pairs seen on pages are remembered, per reader
SEEN_CAP = 20_000
#: a search for a job id outside the remembered members reads at most this long
SEARCH_BUDGET_S = 3.0
SEARCH_WINDOW = 1000


class GelloRedisReader(ComposedReader):
    """Gello queues under one or more key prefixes (default ``gello``) on one Redis connection."""

    backend = rec_mod.BACKEND
    capabilities = Capabilities(states=STATES, pause=False, retry=True, purge=True, delayed_retry=True,
                                namespace_label="prefix")

    def __init__(self, client: aioredis.Redis, url: ConnectionUrl, prefixes: list[str] | None = None,
                 discovery_budget_s: float = 3.0, store_prefix: str = "queue-console") -> None:
        self.client = client
        self.url = url
        self.prefixes = list(prefixes or [DEFAULT_PREFIX])
        self.discovery_budget_s = discovery_budget_s
        self.store_prefix = store_prefix
        self._seen: OrderedDict[tuple, tuple[str, bytes]] = OrderedDict()  # (ns, q, id) -> (suffix, member)
        self._malformed: dict[tuple, str] = {}  # queue key -> why its keys cannot be read (discovery)
        self.writer = GelloRedisWriter(self)

    def queue_capabilities(self, queue: QueueRef) -> Capabilities:
        if queue.key in self._malformed:
            return self.capabilities.read_only(f"malformed: {self._malformed[queue.key]}")
        return self.capabilities

    def _ref(self, prefix: str, name: str) -> QueueRef:
        return QueueRef(connection=self.url.redacted, backend=self.backend, namespace=prefix, name=name)

    @staticmethod
    def _keys(queue: QueueRef) -> GelloKeys:
        return GelloKeys(queue.namespace, queue.name)

    # ------------------------------------------------------------------ discovery
    async def discover(self) -> Discovery:
        found, self._malformed = await discovery.discover(self.client, self.url, self.prefixes,
                                                          self.discovery_budget_s, self._ref)
        return found

    # ------------------------------------------------------------------ counts
    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        if not queues:
            return []
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for q in queues:
            k = self._keys(q)
            pipe.llen(k("pending"))
            pipe.llen(k("processing"))
            pipe.zcard(k("scheduled"))
            pipe.zcard(k("dead"))
        async with redis_errors(self.url):
            # a key of the wrong type fails its own command only (WRONGTYPE): that queue is malformed
            replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception) and not str(reply).startswith("WRONGTYPE"):
                    raise reply
        secs, micros = replies[0]
        now_ms = int(secs) * 1000 + int(micros) // 1000
        out = []
        for i, q in enumerate(queues):
            pending, processing, scheduled, dead = replies[1 + 4 * i: 5 + 4 * i]
            wrong = [f"{self._keys(q)(suffix)} is not a {kind}" for (suffix, (kind, _)), reply
                     in zip(SUFFIXES.items(), (pending, processing, scheduled, dead)) if isinstance(reply, Exception)]
            if wrong:
                out.append(QueueStatus(queue=q, malformed="; ".join(wrong), server_time_ms=now_ms))
                continue
            out.append(QueueStatus(
                queue=q, paused=False,
                counts={"waiting": pending, "delayed": scheduled, "active": processing, "completed": None,
                        "failed": dead, "cancelled": None},
                native={"pending": pending, "processing": processing, "scheduled": scheduled, "dead": dead},
                info={"pause": "Gello has no pause"}, server_time_ms=now_ms))
        return out

    # ------------------------------------------------------------------ pages
    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        suffix = NATIVE_OF_STATE.get(state)
        if suffix is None or state not in STATES:
            raise UnknownState("gello", state, STATES)
        kind = SUFFIXES[suffix][0]
        limit = max(1, min(limit, 1000))
        pos = cursors.decode(cursor, kind, state)
        key = self._keys(queue)(suffix)
        async with redis_errors(self.url):
            key_type = await self.client.type(key)
            if key_type not in (b"none", kind.encode()):
                raise Malformed(f"cannot list {state} jobs: {key} is a {to_str(key_type)}, not a {kind}")
            if kind == "list":
                offset = pos or 0
                total = await self.client.llen(key)
                # oldest first = from the tail; one more than needed tells whether more exist
                raw = await self.client.lrange(key, -(offset + limit + 1), -(offset + 1))
                raw.reverse()
                more = len(raw) > limit
                members = [(m, None) for m in raw[:limit]]
                next_cursor = cursors.encode(offset + limit) if more else None
            else:
                total = await self.client.zcard(key)
                members, next_pos = await self._zwindow(key, state == "failed", pos, limit)
                next_cursor = cursors.encode(next_pos) if next_pos is not None else None
        rows = []
        for member, score in members:
            rec = rec_mod.parse(member)
            self._remember(queue, rec.id, suffix, member)
            rows.append(rec_mod.summary(rec, state, suffix, score, key=key))
        return Page(queue=queue, state=state, jobs=rows, next_cursor=next_cursor, total=total)

    async def _zwindow(self, key: str, desc: bool, pos, limit: int):
        score, skip = pos if pos is not None else (None, 0)
        return await zset_window(self.client, key, desc, score, skip, limit)

    def seen(self, queue: QueueRef, job_id: str) -> tuple[str, bytes] | None:
        """Where this job's member was last seen on a page: (suffix, member), or None."""
        return self._seen.get((queue.namespace, queue.name, job_id))

    def _remember(self, queue: QueueRef, job_id: str, suffix: str, member: bytes) -> None:
        key = (queue.namespace, queue.name, job_id)
        self._seen[key] = (suffix, member)
        self._seen.move_to_end(key)
        while len(self._seen) > SEEN_CAP:
            self._seen.popitem(last=False)

    # ------------------------------------------------------------------ finding a job by id
    async def _verify(self, k: GelloKeys, suffix: str, member: bytes) -> bool:
        if SUFFIXES[suffix][0] == "zset":
            return await self.client.zscore(k(suffix), member) is not None
        return await self.client.lpos(k(suffix), member) is not None

    async def _search(self, k: GelloKeys, suffix: str, ids: set[str], deadline: float) -> dict[str, tuple[bytes, float | None]]:
        """Members of ``suffix`` whose id is in ``ids`` (bounded by ``deadline``)."""
        found: dict[str, tuple[bytes, float | None]] = {}
        key = k(suffix)
        only_malformed = all(i.startswith(rec_mod.MALFORMED) for i in ids)
        match = None
        if len(ids) == 1 and not only_malformed:
            (one,) = ids
            if one.isascii() and '"' not in one and "\\" not in one:
                match = f"*{glob_escape(one)}*"

        def take(member: bytes, score: float | None) -> None:
            rec = rec_mod.parse(member)
            if rec.id in ids and rec.id not in found:
                found[rec.id] = (member, score)

        if SUFFIXES[suffix][0] == "zset":
            cursor = 0
            while time.monotonic() < deadline and len(found) < len(ids):
                cursor, items = await self.client.zscan(key, cursor=cursor, match=match, count=SCAN_COUNT)
                for member, score in items:
                    take(member, score)
                if cursor == 0:
                    break
        else:
            start = 0
            while time.monotonic() < deadline and len(found) < len(ids):
                window = await self.client.lrange(key, start, start + SEARCH_WINDOW - 1)
                for member in window:
                    take(member, None)
                if len(window) < SEARCH_WINDOW:
                    break
                start += SEARCH_WINDOW
        return found

    async def locate(self, queue: QueueRef, ids: list[str], suffixes: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
        """id -> (suffix, exact member) for the ids found in the given structures."""
        k = self._keys(queue)
        out: dict[str, tuple[str, bytes]] = {}
        for job_id in ids:
            hit = self._seen.get((queue.namespace, queue.name, job_id))
            if hit and hit[0] in suffixes and await self._verify(k, *hit):
                out[job_id] = hit
        missing = {i for i in ids if i not in out}
        deadline = time.monotonic() + SEARCH_BUDGET_S
        for suffix in suffixes:
            if not missing:
                break
            for job_id, (member, _) in (await self._search(k, suffix, missing, deadline)).items():
                out[job_id] = (suffix, member)
                self._remember(queue, job_id, suffix, member)
            missing -= set(out)
        return out

    # ------------------------------------------------------------------ detail
    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        k = self._keys(queue)
        async with redis_errors(self.url):
            where = await self.locate(queue, [job_id], ("dead", "scheduled", "processing", "pending"))
            if job_id not in where:
                return None
            suffix, member = where[job_id]
            score = await self.client.zscore(k(suffix), member) if SUFFIXES[suffix][0] == "zset" else None
            rec = rec_mod.parse(member)
            extra = rec_mod.extra(rec)
            idem = rec.meta.get("idempotencyKey") if rec.ok else None
            if isinstance(idem, str) and idem:
                pipe = self.client.pipeline(transaction=False)
                pipe.get(k.idempotency(idem))
                pipe.pttl(k.idempotency(idem))
                value, ttl = await pipe.execute()
                if value is not None:
                    extra["idempotency record"] = (to_blob(value, ROW_LIMIT).text if value else "") + (
                        f" (expires in {ttl / 1000:g} s)" if ttl and ttl > 0 else "")
                else:
                    extra["idempotency record"] = "(none)"
        state = SUFFIXES[suffix][1]
        summary = rec_mod.summary(rec, state, suffix, score, reason_limit=ROW_LIMIT * 20, key=k(suffix))
        if not rec.ok:
            return JobDetail(summary=summary, data=to_blob(member), extra=extra)
        meta = rec.meta
        options = {f: meta.get(f) for f in ("priority", "maxAttempts", "idempotencyKey", "scheduledAt") if f in meta}
        err = rec.job.get("lastError")
        return JobDetail(
            summary=summary,
            data=to_blob(json.dumps(rec.job.get("payload"), ensure_ascii=False, indent=2)),
            options=to_blob(json.dumps(options, ensure_ascii=False, sort_keys=True)),
            stacktrace=[to_blob(err)] if isinstance(err, str) and err else [],
            attempts_started=rec_mod._int(meta.get("attempts")),
            max_attempts=rec_mod._int(meta.get("maxAttempts")),
            extra=extra,
        )

    # ------------------------------------------------------------------ clock (bulk snapshots)
    async def server_time_ms(self) -> int | None:
        async with redis_errors(self.url):
            secs, micros = await self.client.time()
        return int(secs) * 1000 + int(micros) // 1000

    async def close(self) -> None:
        await self.client.aclose()
