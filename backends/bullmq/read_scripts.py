"""Reading inside Redis with short read-only scripts: queue counts, and the rows of a page.

Counts: one short read-only script counts a batch of BullMQ (or Bull) queues.

The script reads what ``getCounts-1.lua`` reads (LLEN/ZCARD of every state key), but never writes:
where BullMQ RPOPs a pre-v5 ``0:<ts>`` delayed marker from the tail of ``wait``/``paused``, the
script leaves it and subtracts it. It also returns the ``meta`` fields the overview shows and
whether Bull's ``meta-paused`` exists. Every command in it is O(1), so one call holds the server
for microseconds however big the queue is.

One call counts up to QUEUES_PER_CALL queues (each call still well under a millisecond of server
time); the calls for every queue go in one pipeline of EVALSHA (one round trip), and 1,000 queues
come back as ~60 replies instead of 12,000: parsing replies one by one in Python (redis-py, with an
asyncio timeout per reply) was most of a refresh's time.

A connection that may not run scripts (an ACL user limited to ``+@read``, say) gets the same
numbers from plain pipelined LLEN/LINDEX/ZCARD/HMGET/EXISTS instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis import exceptions as rexc

from backends.bullmq.keys import QueueKeys
from backends.redis_client import pack_command, pipelined, send_packed

#: KEYS order of the script (and of the fallback pipeline)
COUNT_KEYS = ("wait", "paused", "active", "prioritized", "delayed", "completed", "failed", "waiting-children",
              "meta", "meta-paused", "limiter")
META_FIELDS = ("paused", "version", "concurrency", "max", "duration")

COUNT_SCRIPT = """
local function jobs_in_list(key)
  local n = redis.call('LLEN', key)
  if n > 0 then
    local tail = redis.call('LINDEX', key, -1)
    if string.sub(tail, 1, 2) == '0:' then n = n - 1 end
  end
  return n
end
local out = {}
for q = 0, #KEYS / 11 - 1 do
  local k = q * 11
  local meta = redis.call('HMGET', KEYS[k + 9], 'paused', 'version', 'concurrency', 'max', 'duration')
  local o = q * 16
  out[o + 1] = jobs_in_list(KEYS[k + 1])
  out[o + 2] = jobs_in_list(KEYS[k + 2])
  out[o + 3] = redis.call('LLEN', KEYS[k + 3])
  for z = 4, 8 do out[o + z] = redis.call('ZCARD', KEYS[k + z]) end
  out[o + 9] = redis.call('EXISTS', KEYS[k + 10])
  for m = 1, 5 do out[o + 9 + m] = meta[m] end
  out[o + 15] = redis.call('GET', KEYS[k + 11])
  out[o + 16] = redis.call('PTTL', KEYS[k + 11])
end
return out
"""
#: queues counted by one script call: each call stays far below a millisecond of server time
#: (about 10 O(1) commands per queue, ~15 µs), and 1,000 queues make only ~60 replies to parse
QUEUES_PER_CALL = 16
WIDTH = 16


@dataclass(frozen=True)
class RawCounts:
    """One queue as stored: list lengths without pre-v5 markers, zset sizes, meta fields."""

    wait: int
    paused_list: int
    active: int
    prioritized: int
    delayed: int
    completed: int
    failed: int
    waiting_children: int
    meta_paused_key: bool
    meta: tuple[bytes | None, ...]  # META_FIELDS
    limiter_count: bytes | None  # GET limiter (rate limiting, Queue.getRateLimitTtl)
    limiter_pttl: int  # PTTL limiter


def _raw(reply: list) -> RawCounts:
    """One queue's WIDTH values (a Lua false, i.e. a missing meta field, arrives as None)."""
    n = [int(x) for x in reply[:9]]
    return RawCounts(*n[:8], meta_paused_key=bool(n[8]), meta=tuple(reply[9:14]), limiter_count=reply[14],
                     limiter_pttl=int(reply[15]))


def _key_args(k: QueueKeys) -> list[str]:
    base = k.base + ":"
    return [base + s for s in COUNT_KEYS]


class QueueCounter:
    """Counts queues on one client by EVALSHA (loaded once, reloaded after a server restart)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._sha: str | None = None
        self._pack_cache: tuple[tuple, bytes, int] | None = None
        self.scripts_allowed = True

    async def count(self, queues: list[QueueKeys]) -> tuple[int, list[RawCounts]]:
        """The server clock (ms) and every queue's counts, in one pipelined round trip."""
        if self.scripts_allowed:
            try:
                return await self._by_script(queues)
            except rexc.NoPermissionError:
                self.scripts_allowed = False  # e.g. an ACL user without @scripting: plain reads
        return await self._by_commands(queues)

    async def _by_script(self, queues: list[QueueKeys]) -> tuple[int, list[RawCounts]]:
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self._client.script_load(COUNT_SCRIPT)
            packed, calls = self._packed(queues)
            replies = await send_packed(self._client, packed, 1 + calls)
            if attempt == 1 and any(isinstance(r, rexc.NoScriptError) for r in replies):
                self._sha = None  # the server lost its script cache (restart, SCRIPT FLUSH): load it again
                continue
            for r in replies:
                if isinstance(r, Exception):
                    raise r
            flat = [value for r in replies[1:] for value in r]
            return _ms(replies[0]), [_raw(flat[i:i + WIDTH]) for i in range(0, len(flat), WIDTH)]
        raise AssertionError("unreachable")

    def _packed(self, queues: list[QueueKeys]) -> tuple[bytes, int]:
        """TIME and the EVALSHA calls for these queues, packed once and kept while the poller asks
        for the same queues again (packing 10,000 key names was a third of a refresh)."""
        cache_key = (self._sha, tuple(queues))
        if self._pack_cache is None or self._pack_cache[0] != cache_key:
            parts, calls = [pack_command("TIME")], 0
            for i in range(0, len(queues), QUEUES_PER_CALL):
                keys = [key for k in queues[i:i + QUEUES_PER_CALL] for key in _key_args(k)]
                parts.append(pack_command("EVALSHA", self._sha or "", len(keys), *keys))
                calls += 1
            self._pack_cache = (cache_key, b"".join(parts), calls)
        return self._pack_cache[1], self._pack_cache[2]

    async def _by_commands(self, queues: list[QueueKeys]) -> tuple[int, list[RawCounts]]:
        pipe = self._client.pipeline(transaction=False)
        pipe.time()
        for k in queues:
            pipe.llen(k("wait"))
            pipe.lindex(k("wait"), -1)
            pipe.llen(k("paused"))
            pipe.lindex(k("paused"), -1)
            pipe.llen(k("active"))
            for suffix in ("prioritized", "delayed", "completed", "failed", "waiting-children"):
                pipe.zcard(k(suffix))
            pipe.exists(k("meta-paused"))
            pipe.hmget(k("meta"), *META_FIELDS)
            pipe.get(k("limiter"))
            pipe.pttl(k("limiter"))
        replies = await pipe.execute()
        out = []
        width = 14
        for i in range(len(queues)):
            r = replies[1 + i * width: 1 + (i + 1) * width]
            wait = r[0] - (1 if r[0] and r[1] is not None and r[1].startswith(b"0:") else 0)
            paused = r[2] - (1 if r[2] and r[3] is not None and r[3].startswith(b"0:") else 0)
            out.append(_raw([wait, paused, *r[4:11], *r[11], r[12], r[13]]))
        return _ms(replies[0]), out


ROWS_SCRIPT = """
local out, n = {}, #ARGV
for i = 1, #KEYS do
  local values = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, n do out[(i - 1) * n + j] = values[j] end
end
return out
"""
#: job hashes per script call: about 1 µs of server time each, so a call stays well under 1 ms
HASHES_PER_CALL = 100


class HashFieldsReader:
    """The same fields of many hashes (a page's rows): HMGET inside a read-only script, up to
    HASHES_PER_CALL hashes per call, every call in one round trip. A page of 1,000 rows comes back
    as 10 replies instead of 1,000 (redis-py's cost is per reply). Without @scripting: one HMGET
    per hash, pipelined."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._sha: str | None = None
        self.scripts_allowed = True

    async def read(self, keys: list[str], fields: tuple[str, ...]) -> list[list]:
        if not keys:
            return []
        if self.scripts_allowed:
            try:
                return await self._by_script(keys, fields)
            except rexc.NoPermissionError:
                self.scripts_allowed = False
        return await pipelined(self._client, [("HMGET", key, *fields) for key in keys])

    async def _by_script(self, keys: list[str], fields: tuple[str, ...]) -> list[list]:
        width = len(fields)
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self._client.script_load(ROWS_SCRIPT)
            commands = [("EVALSHA", self._sha, len(chunk), *chunk, *fields)
                        for chunk in (keys[i:i + HASHES_PER_CALL] for i in range(0, len(keys), HASHES_PER_CALL))]
            replies = await send_packed(self._client, b"".join(pack_command(*c) for c in commands), len(commands))
            if attempt == 1 and any(isinstance(r, rexc.NoScriptError) for r in replies):
                self._sha = None
                continue
            for r in replies:
                if isinstance(r, Exception):
                    raise r
            flat = [value for r in replies for value in r]
            flat += [None] * (len(keys) * width - len(flat))  # trailing missing fields of the last hash
            return [flat[i:i + width] for i in range(0, len(flat), width)]
        raise AssertionError("unreachable")


def _ms(time_reply) -> int:
    secs, micros = time_reply
    return int(secs) * 1000 + int(micros) // 1000
