"""State changes of Gello's Redis queues: retry and purge of dead jobs (docs/backends/gello.md).

Composed into GelloRedisReader (``reader.writer``); it finds jobs through the reader (Gello keeps
no index by id: the members seen on recent pages, else a bounded search).

- Retry of a dead job: one Lua script per batch that, per job, removes that exact member from
  ``dead`` and, only if it was there, LPUSHes the retried record (attempts 0, failedAt/lastError
  null, scheduledAt now) onto ``pending`` (or ZADDs it to ``scheduled`` for a delayed retry) --
  atomic per job (and per batch). Malformed members are never retried.
- Purge: ZREM of the exact member (a malformed member is purged by its raw bytes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from backends.contract import BatchOutcome, ConsoleStore, JobOutcome, QueueRef, Writer
from backends.errors import BadRequest, Unsupported
from backends.gello import record as rec_mod
from backends.gello_redis.keys import GelloKeys
from backends.limits import bulk_count
from backends.redis_client import redis_errors
from backends.redis_console_store import RedisConsoleStore

if TYPE_CHECKING:  # pragma: no cover
    from backends.gello_redis.reader import GelloRedisReader

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


def check_failed(state: str | None, what: str) -> None:
    """Gello changes dead (failed) jobs only."""
    if state not in (None, "failed"):
        raise BadRequest(f"gello can {what} dead (failed) jobs only, not {state!r}")


class GelloRedisWriter(Writer):
    backend = rec_mod.BACKEND

    def __init__(self, reader: "GelloRedisReader") -> None:
        self.reader = reader
        self.client = reader.client
        self.url = reader.url
        self._retry_script = reader.client.register_script(RETRY_LUA)

    async def _writable(self, queue: QueueRef, what: str) -> GelloKeys:
        caps = self.reader.queue_capabilities(queue)
        if not getattr(caps, what):
            raise Unsupported(caps.read_only_reason or f"gello cannot {what} here")
        return GelloKeys(queue.namespace, queue.name)

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        check_failed(state, "count finished")
        async with redis_errors(self.url):
            return int(await self.client.zcount(GelloKeys(queue.namespace, queue.name)("dead"), "-inf", before_ms))

    async def _run_retry(self, k: GelloKeys, pairs: list[tuple[bytes, bytes]], run_at_ms: int | None) -> list[int]:
        args: list = ["zset" if run_at_ms is not None else "list", run_at_ms if run_at_ms is not None else 0]
        for old, new in pairs:
            args += [old, new]
        target = k("scheduled") if run_at_ms is not None else k("pending")
        return [int(x) for x in await self._retry_script(keys=[k("dead"), target], args=args)]

    def _absent_status(self, queue: QueueRef, job_id: str) -> str:
        hit = self.reader.seen(queue, job_id)
        return "not-in-state" if hit and hit[0] != "dead" else "not-found"

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        """Retry dead jobs by id (attempts are always reset to 0: that is Gello's retry)."""
        check_failed(state, "retry")
        k = await self._writable(queue, "retry")
        async with redis_errors(self.url):
            now = await self.reader.server_time_ms()
            where = await self.reader.locate(queue, job_ids, ("dead",))
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

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        """Retry the oldest dead jobs that failed at or before ``before_ms`` (malformed ones are
        skipped: they cannot be retried, only purged)."""
        check_failed(state, "retry")
        k = await self._writable(queue, "retry")
        count = bulk_count(count)
        async with redis_errors(self.url):
            now = await self.reader.server_time_ms()
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
        check_failed(state, "purge")
        k = await self._writable(queue, "purge")
        async with redis_errors(self.url):
            where = await self.reader.locate(queue, job_ids, ("dead",))
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
        check_failed(state, "purge")
        k = await self._writable(queue, "purge")
        count = bulk_count(count)
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
        return RedisConsoleStore(self.client, self.reader.store_prefix, self.url)
