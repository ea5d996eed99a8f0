"""Gello queues in Redis (shared/formats/gello.md, "Redis"): read side and dead-job retry/purge.

- Queues are found by a time-boxed SCAN over ``<prefix>:queue:*`` (known suffixes stripped).
- Counts: one pipelined round trip (LLEN pending/processing, ZCARD scheduled/dead, TIME).
- Pages: LRANGE windows from the tail of a list (oldest first, as workers take them) and
  ZRANGEBYSCORE windows with a (score, skip) cursor for the sorted sets; never a whole key.
- Retry of a dead job: one Lua script per batch that, per job, removes that exact member from
  ``dead`` and, only if it was there, LPUSHes the retried record (attempts 0, failedAt/lastError
  null, scheduledAt now) onto ``pending`` -- atomic per job (and per batch).
- Purge: ZREM of the exact member (a malformed member is purged by its raw bytes).

Gello stores serialized jobs without an index by id: a job is found again through the members
seen on recent pages (verified with ZSCORE/LPOS), else by a bounded ZSCAN/LRANGE search.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict

import redis.asyncio as aioredis

from backends.blob import ROW_LIMIT, to_blob, to_str
from backends.contract import (
    BatchOutcome,
    Capabilities,
    ConsoleStore,
    Discovery,
    JobDetail,
    JobOutcome,
    Page,
    QueueRef,
    QueueStatus,
    Reader,
)
from backends.errors import BackendError, BadCursor, BadRequest, Malformed
from backends.gello import record as rec_mod
from backends.gello.keys import DEFAULT_PREFIX, NATIVE_OF_STATE, SUFFIXES, GelloKeys, glob_escape, split_queue_key
from backends.redis_client import redis_errors
from backends.redis_console_store import RedisConsoleStore
from backends.urls import ConnectionUrl

STATES = ("waiting", "delayed", "active", "failed")
SCAN_COUNT = 1000
MAX_BATCH = 1000
#: how many (id -> member) pairs seen on pages are remembered, per reader
SEEN_CAP = 20_000
#: a search for a job id outside the remembered members reads at most this long
SEARCH_BUDGET_S = 3.0
SEARCH_WINDOW = 1000
#: windows read per retry batch while skipping malformed members
RETRY_WINDOWS = 8

RETRY_LUA = """
-- KEYS[1] dead zset, KEYS[2] target (pending list or scheduled zset)
-- ARGV[1] 'list' | 'zset', ARGV[2] score for the zset, then pairs: old member, new member
local dt = redis.call('TYPE', KEYS[1]).ok
if dt ~= 'zset' and dt ~= 'none' then return redis.error_reply('dead key is a ' .. dt .. ', not a sorted set') end
local tt = redis.call('TYPE', KEYS[2]).ok
local want = ARGV[1]
if tt ~= want and tt ~= 'none' then return redis.error_reply('target key is a ' .. tt .. ', not a ' .. want) end
local out = {}
for i = 3, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    if want == 'zset' then
      redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i + 1])
    else
      redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""


async def has_gello_keys(client: aioredis.Redis, prefixes: list[str], budget_s: float) -> bool:
    """True as soon as one ``<prefix>:queue:*`` key of a known suffix is seen (time-boxed SCAN)."""
    deadline = time.monotonic() + budget_s
    for prefix in prefixes:
        cursor = 0
        while True:
            cursor, keys = await client.scan(cursor=cursor, match=f"{glob_escape(prefix)}:queue:*", count=SCAN_COUNT)
            if any(split_queue_key(k.decode("utf-8", "surrogateescape"), prefix) for k in keys):
                return True
            if cursor == 0 or time.monotonic() > deadline:
                break
    return False


def _encode(pos) -> str:
    if isinstance(pos, int):
        return f"l:{pos}"
    score, skip = pos
    return f"z:{score!r}:{skip}"


def _decode(cursor: str | None, kind: str, state: str):
    if not cursor:
        return None
    try:
        parts = cursor.split(":")
        if kind == "list" and parts[0] == "l" and len(parts) == 2 and int(parts[1]) >= 0:
            return int(parts[1])
        if kind == "zset" and parts[0] == "z" and len(parts) == 3 and int(parts[2]) >= 0:
            score = float(parts[1])
            if score == score:  # not NaN
                return (score, int(parts[2]))
    except ValueError:
        pass
    raise BadCursor(f"bad page cursor {cursor!r} for {state} jobs")


class GelloRedisReader(Reader):
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
        self._retry_script = client.register_script(RETRY_LUA)
        self._malformed: dict[tuple, str] = {}  # queue key -> why its keys cannot be read (discovery)

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
        deadline = time.monotonic() + self.discovery_budget_s
        patterns = [f"{p}:queue:*" for p in self.prefixes]
        found: dict[tuple[str, str], set[str]] = {}
        complete = True
        async with redis_errors(self.url):
            for prefix in self.prefixes:
                cursor = 0
                while True:
                    if time.monotonic() > deadline:
                        complete = False
                        break
                    cursor, keys = await self.client.scan(cursor=cursor, match=f"{glob_escape(prefix)}:queue:*",
                                                          count=SCAN_COUNT)
                    for raw in keys:
                        parts = split_queue_key(raw.decode("utf-8", "surrogateescape"), prefix)
                        if parts:
                            found.setdefault((prefix, parts[0]), set()).add(parts[1])
                    if cursor == 0:
                        break
            candidates = sorted(found)
            pipe = self.client.pipeline(transaction=False)
            for prefix, name in candidates:
                k = GelloKeys(prefix, name)
                for suffix in SUFFIXES:
                    pipe.type(k(suffix))
            types = await pipe.execute() if candidates else []
        queues, notes = [], []
        malformed: dict[tuple, str] = {}
        for i, (prefix, name) in enumerate(candidates):
            bad = []
            for j, (suffix, (kind, _)) in enumerate(SUFFIXES.items()):
                t = types[i * len(SUFFIXES) + j]
                t = t.decode() if isinstance(t, bytes) else str(t)
                if t not in ("none", kind):
                    bad.append(f"{GelloKeys(prefix, name)(suffix)} is a {t}, not a {kind}")
            ref = self._ref(prefix, name)
            if bad:  # listed, marked malformed (its counts cannot be read); the others are read normally
                malformed[ref.key] = "; ".join(bad)
            queues.append(ref)
        self._malformed = malformed
        if not complete:
            notes.append(f"Gello discovery stopped after {self.discovery_budget_s:g} s; some queues may be missing")
        if not queues and not notes:
            notes.append(f"no Gello keys ({', '.join(patterns)})")
        return Discovery(queues=queues, looked_for=patterns, complete=complete, note="; ".join(notes) or None)

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
            raise BadRequest(f"gello has no state {state!r} (it has {', '.join(STATES)})")
        kind = SUFFIXES[suffix][0]
        limit = max(1, min(limit, 1000))
        pos = _decode(cursor, kind, state)
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
                next_cursor = _encode(offset + limit) if more else None
            else:
                total = await self.client.zcard(key)
                members, next_pos = await self._zwindow(key, state == "failed", pos, limit)
                next_cursor = _encode(next_pos) if next_pos is not None else None
        rows = []
        for member, score in members:
            rec = rec_mod.parse(member)
            self._remember(queue, rec.id, suffix, member)
            rows.append(rec_mod.summary(rec, state, suffix, score, key=key))
        return Page(queue=queue, state=state, jobs=rows, next_cursor=next_cursor, total=total)

    async def _zwindow(self, key: str, desc: bool, pos, limit: int):
        score, skip = pos if pos is not None else (None, 0)
        if desc:
            hi = repr(score) if score is not None else "+inf"
            raw = await self.client.zrevrangebyscore(key, hi, "-inf", start=skip, num=limit + 1, withscores=True)
        else:
            lo = repr(score) if score is not None else "-inf"
            raw = await self.client.zrangebyscore(key, lo, "+inf", start=skip, num=limit + 1, withscores=True)
        more = len(raw) > limit
        raw = raw[:limit]
        if not more:
            return raw, None
        last = raw[-1][1]
        same = sum(1 for _, s in raw if s == last)
        if score is not None and score == last:
            same += skip
        return raw, (last, same)

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

    async def _locate(self, queue: QueueRef, ids: list[str], suffixes: tuple[str, ...]) -> dict[str, tuple[str, bytes]]:
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
            where = await self._locate(queue, [job_id], ("dead", "scheduled", "processing", "pending"))
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

    # ------------------------------------------------------------------ mutations
    async def server_time_ms(self) -> int | None:
        async with redis_errors(self.url):
            secs, micros = await self.client.time()
        return int(secs) * 1000 + int(micros) // 1000

    @staticmethod
    def _check_failed(state: str | None, what: str) -> None:
        if state not in (None, "failed"):
            raise BackendError(f"gello can {what} dead (failed) jobs only, not {state!r}")

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        self._check_failed(state, "count finished")
        async with redis_errors(self.url):
            return int(await self.client.zcount(self._keys(queue)("dead"), "-inf", before_ms))

    async def _run_retry(self, k: GelloKeys, pairs: list[tuple[bytes, bytes]], run_at_ms: int | None) -> list[int]:
        args: list = ["zset" if run_at_ms is not None else "list", run_at_ms if run_at_ms is not None else 0]
        for old, new in pairs:
            args += [old, new]
        target = k("scheduled") if run_at_ms is not None else k("pending")
        return [int(x) for x in await self._retry_script(keys=[k("dead"), target], args=args)]

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None) -> list[JobOutcome]:
        """Retry dead jobs by id (attempts are always reset to 0: that is Gello's retry)."""
        self._check_failed(state, "retry")
        k = self._keys(queue)
        async with redis_errors(self.url):
            now = await self.server_time_ms()
            where = await self._locate(queue, job_ids, ("dead",))
            outcomes: dict[str, JobOutcome] = {}
            pairs, order = [], []
            for job_id in dict.fromkeys(job_ids):
                if job_id not in where:
                    outcomes[job_id] = JobOutcome(job_id=job_id, ok=False, status=self._absent_status(queue, job_id))
                    continue
                rec = rec_mod.parse(where[job_id][1])
                if not rec.ok:
                    outcomes[job_id] = JobOutcome(job_id=job_id, ok=False, status="malformed")
                    continue
                pairs.append((rec.raw, rec_mod.retried(rec, now or 0, run_at_ms)))
                order.append(job_id)
            flags = await self._run_retry(k, pairs, run_at_ms) if pairs else []
            for job_id, flag in zip(order, flags):
                outcomes[job_id] = JobOutcome(job_id=job_id, ok=bool(flag), status="retried" if flag else "not-in-state")
        return [outcomes[i] for i in job_ids]

    def _absent_status(self, queue: QueueRef, job_id: str) -> str:
        hit = self._seen.get((queue.namespace, queue.name, job_id))
        return "not-in-state" if hit and hit[0] != "dead" else "not-found"

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Retry the oldest dead jobs that failed at or before ``before_ms`` (malformed ones are
        skipped: they cannot be retried, only purged)."""
        self._check_failed(state, "retry")
        k = self._keys(queue)
        count = max(1, min(count, MAX_BATCH))
        async with redis_errors(self.url):
            now = await self.server_time_ms()
            pairs, ids, skipped, offset = [], [], 0, 0
            for _ in range(RETRY_WINDOWS):
                want = count - len(pairs)
                raw = await self.client.zrangebyscore(k("dead"), "-inf", before_ms, start=offset, num=want)
                offset += len(raw)
                for member in raw:
                    rec = rec_mod.parse(member)
                    if rec.ok:
                        pairs.append((member, rec_mod.retried(rec, now or 0)))
                        ids.append(rec.id)
                    else:
                        skipped += 1
                if len(pairs) >= count or len(raw) < want:
                    break
            flags = await self._run_retry(k, pairs, None) if pairs else []
            done_ids = [i for i, f in zip(ids, flags) if f]
            remaining = await self.client.zcount(k("dead"), "-inf", before_ms)
        return BatchOutcome(done=len(done_ids), more=bool(done_ids) and remaining > skipped, ids=done_ids)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        """Purge dead jobs by id; ``malformed:<sha1>`` removes exactly that raw member."""
        self._check_failed(state, "purge")
        k = self._keys(queue)
        async with redis_errors(self.url):
            where = await self._locate(queue, job_ids, ("dead",))
            present = [i for i in dict.fromkeys(job_ids) if i in where]
            pipe = self.client.pipeline(transaction=False)
            for job_id in present:
                pipe.zrem(k("dead"), where[job_id][1])
            flags = dict(zip(present, await pipe.execute())) if present else {}
        out = []
        for job_id in job_ids:
            if job_id in flags:
                ok = bool(flags.pop(job_id))
                out.append(JobOutcome(job_id=job_id, ok=ok, status="removed" if ok else "not-in-state"))
            elif job_id in where:
                out.append(JobOutcome(job_id=job_id, ok=False, status="duplicate"))
            else:
                out.append(JobOutcome(job_id=job_id, ok=False, status=self._absent_status(queue, job_id)))
        return out

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Remove the oldest dead members that failed at or before ``before_ms`` (malformed ones too)."""
        self._check_failed(state, "purge")
        k = self._keys(queue)
        count = max(1, min(count, MAX_BATCH))
        async with redis_errors(self.url):
            raw = await self.client.zrangebyscore(k("dead"), "-inf", before_ms, start=0, num=count)
            if not raw:
                return BatchOutcome(done=0, more=False)
            pipe = self.client.pipeline(transaction=True)
            for member in raw:
                pipe.zrem(k("dead"), member)
            flags = await pipe.execute()
            remaining = await self.client.zcount(k("dead"), "-inf", before_ms)
        ids = [rec_mod.parse(m).id for m, f in zip(raw, flags) if f]
        return BatchOutcome(done=len(ids), more=bool(ids) and remaining > 0, ids=ids)

    def console_store(self) -> ConsoleStore:
        return RedisConsoleStore(self.client, self.store_prefix, self.url)

    async def close(self) -> None:
        await self.client.aclose()
