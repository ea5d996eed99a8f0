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
asyncio timeout per reply) was most of a refresh's time. Each reply is turned into its queues'
records as soon as it is read (``QueueCounter.count``'s ``each``), while the server still runs the
calls after it, so that the client's work overlaps the server's instead of following it.

A connection that may not run scripts (an ACL user limited to ``+@read``, say) gets the same
numbers from plain pipelined LLEN/LINDEX/ZCARD/HMGET/EXISTS instead.

Malformed data never fails a whole call: the scripts run every command with ``redis.pcall``. A key
of the wrong type (WRONGTYPE) makes only its own queue's reply a marker (``-1`` and the indexes of
the keys, RawCounts.wrong_types) or its own row's values empty with the key's TYPE; every other
queue and row of the call is read exactly. Any other error (NOPERM, ...) fails the call as before.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import redis.asyncio as aioredis
from redis import exceptions as rexc

from backends.bullmq.keys import QueueKeys
from backends.redis_client import is_wrongtype, pack_command, pipelined, send_packed

#: KEYS order of the script (and of the fallback pipeline)
COUNT_KEYS = ("wait", "paused", "active", "prioritized", "delayed", "completed", "failed", "waiting-children",
              "meta", "meta-paused", "limiter")
META_FIELDS = ("paused", "version", "concurrency", "max", "duration")

COUNT_SCRIPT = """
local pcall, sub = redis.pcall, string.sub
local fatal
-- a WRONGTYPE reply marks the key (index i of the queue's 11) and reads as false; anything else is fatal
local function bad_reply(r, bad, i)
  if sub(r.err, 1, 9) == 'WRONGTYPE' then bad[#bad + 1] = i
  elseif not fatal then fatal = r.err end
  return false
end
local function call(bad, i, cmd, key)
  local r = pcall(cmd, key)
  if type(r) == 'table' and r.err then return bad_reply(r, bad, i) end
  return r
end
local function jobs_in_list(bad, key, i)
  local n = call(bad, i, 'LLEN', key)
  if n and n > 0 then
    local tail = pcall('LINDEX', key, -1)
    if type(tail) == 'table' and tail.err then return bad_reply(tail, bad, i) end
    if tail and sub(tail, 1, 2) == '0:' then n = n - 1 end
  end
  return n
end
-- ARGV[1]: one letter per queue, 'm' for a BullMQ queue (no meta-paused key to read: only Bull writes one)
local kinds = ARGV[1] or ''
local out = {}
for q = 0, #KEYS / 11 - 1 do
  local k, o, bad = q * 11, q * 16, {}
  local meta = pcall('HMGET', KEYS[k + 9], 'paused', 'version', 'concurrency', 'max', 'duration')
  if meta.err then meta = bad_reply(meta, bad, 9) end
  local v1 = jobs_in_list(bad, KEYS[k + 1], 1)
  local v2 = jobs_in_list(bad, KEYS[k + 2], 2)
  local v3 = call(bad, 3, 'LLEN', KEYS[k + 3])
  local v4 = call(bad, 4, 'ZCARD', KEYS[k + 4])
  local v5 = call(bad, 5, 'ZCARD', KEYS[k + 5])
  local v6 = call(bad, 6, 'ZCARD', KEYS[k + 6])
  local v7 = call(bad, 7, 'ZCARD', KEYS[k + 7])
  local v8 = call(bad, 8, 'ZCARD', KEYS[k + 8])
  local v9 = 0
  if sub(kinds, q + 1, q + 1) ~= 'm' then v9 = call(bad, 10, 'EXISTS', KEYS[k + 10]) end
  local limiter = call(bad, 11, 'GET', KEYS[k + 11])
  -- no limiter key: PTTL would answer -2
  local pttl = -2
  if limiter then pttl = call(bad, 11, 'PTTL', KEYS[k + 11]) end
  if fatal then return redis.error_reply(fatal) end
  if #bad > 0 then
    out[o + 1] = -1
    out[o + 2] = bad
    for j = 3, 16 do out[o + j] = 0 end
  else
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = v1, v2, v3, v4, v5
    out[o + 6], out[o + 7], out[o + 8], out[o + 9] = v6, v7, v8, v9
    for m = 1, 5 do out[o + 9 + m] = meta[m] end
    out[o + 15] = limiter
    out[o + 16] = pttl
  end
end
return out
"""
#: queues counted by one script call: each call stays far below a millisecond of server time
#: (about 10 O(1) commands per queue, ~15 µs), and 1,000 queues make only ~60 replies to parse
QUEUES_PER_CALL = 16
WIDTH = 16


class RawCounts(NamedTuple):
    """One queue as stored: list lengths without pre-v5 markers, zset sizes, meta fields. A tuple
    (its first 8 items are the counts): a frozen dataclass's ``__init__`` was a tenth of a
    1,000-queue refresh."""

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
    #: COUNT_KEYS suffixes (in that order) of the keys holding another type: the queue is malformed
    #: and every number above is 0
    wrong_types: tuple[str, ...] = ()


def _malformed(indexes) -> RawCounts:
    """A queue some of whose keys hold another type (COUNT_KEYS indexes, 0-based)."""
    bad = tuple(COUNT_KEYS[i] for i in sorted(set(indexes)))
    return RawCounts(0, 0, 0, 0, 0, 0, 0, 0, False, (None,) * len(META_FIELDS), None, 0, wrong_types=bad)


def _raw(reply: list) -> RawCounts:
    """One queue's WIDTH values (a Lua false, i.e. a missing meta field, arrives as None); the
    marker ``-1, {key indexes}`` for a queue with keys of the wrong type. The first 9 and the last
    are integer replies (LLEN, ZCARD, EXISTS, PTTL, or the fallback's ints): no conversion."""
    if reply[0] == -1:
        return _malformed(int(i) - 1 for i in reply[1])
    return RawCounts(reply[0], reply[1], reply[2], reply[3], reply[4], reply[5], reply[6], reply[7],
                     reply[8] == 1, tuple(reply[9:14]), reply[14], reply[15])


def _key_args(k: QueueKeys) -> list[str]:
    base = k.base + ":"
    return [base + s for s in COUNT_KEYS]


class QueueCounter:
    """Counts queues on one client by EVALSHA (loaded once, reloaded after a server restart)."""

    def __init__(self, client: aioredis.Redis, by_slot: bool = False) -> None:
        self._client = client
        self._sha: str | None = None
        self._pack_cache: tuple[tuple, bytes, int, list[int], list[int]] | None = None
        self.scripts_allowed = True
        #: a Redis Cluster node: one call counts queues of one hash slot only (calls_by_slot)
        self.by_slot = by_slot

    async def count(self, queues: list[QueueKeys],
                    each: Callable[[int, int, RawCounts], None] | None = None,
                    bullmq: list[bool] | None = None) -> tuple[int, list[RawCounts]]:
        """The server clock (ms) and every queue's counts, in one pipelined round trip.
        ``each(now_ms, index, counts)``, if given, is called for every queue (``index`` into
        ``queues``) as soon as its call's reply is read, while the server still runs the calls after
        it; after a retry (the server lost the script) it is called again for every queue.
        ``bullmq[i]`` True: queue i is a BullMQ queue, whose ``meta-paused`` key (Bull's pause flag)
        is not read by the script (``meta_paused_key`` False): one Redis call fewer per queue."""
        if self.scripts_allowed:
            try:
                return await self._by_script(queues, each, bullmq)
            except rexc.NoPermissionError:
                self.scripts_allowed = False  # e.g. an ACL user without @scripting: plain reads
        now_ms, counted = await self._by_commands(queues)
        if each is not None:
            for i, raw in enumerate(counted):
                each(now_ms, i, raw)
        return now_ms, counted

    async def _by_script(self, queues: list[QueueKeys], each: Callable[[int, int, RawCounts], None] | None,
                         bullmq: list[bool] | None) -> tuple[int, list[RawCounts]]:
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self._client.script_load(COUNT_SCRIPT)
            packed, calls, order, starts = self._packed(queues, bullmq)
            out: list = [None] * len(queues)
            clock = [0]

            def counted(i: int, reply) -> None:
                # reply 0 is TIME; reply i is call i-1: its queues are order[starts[i-1]:]
                if i == 0:
                    clock[0] = _ms(reply)
                    return
                at = starts[i - 1]
                for j in range(0, len(reply), WIDTH):
                    index = order[at + j // WIDTH]
                    out[index] = raw = _raw(reply[j:j + WIDTH])
                    if each is not None:
                        each(clock[0], index, raw)

            replies = await send_packed(self._client, packed, 1 + calls, counted)
            if attempt == 1 and any(isinstance(r, rexc.NoScriptError) for r in replies):
                self._sha = None  # the server lost its script cache (restart, SCRIPT FLUSH): load it again
                continue
            for r in replies:
                if isinstance(r, Exception):
                    raise r
            return clock[0], out
        raise AssertionError("unreachable")

    def _packed(self, queues: list[QueueKeys], bullmq: list[bool] | None = None) -> tuple[bytes, int, list[int], list[int]]:
        """TIME and the EVALSHA calls for these queues, packed once and kept while the poller asks
        for the same queues again (packing 10,000 key names was a third of a refresh); the
        queues' indexes in the order the calls count them, and where each call's queues start in it."""
        cache_key = (self._sha, tuple(queues), None if bullmq is None else tuple(bullmq))
        if self._pack_cache is None or self._pack_cache[0] != cache_key:
            parts, order, starts = [pack_command("TIME")], [], []
            for call in calls_by_slot(queues) if self.by_slot else _chunks(range(len(queues))):
                keys = [key for i in call for key in _key_args(queues[i])]
                kinds = "".join("m" if bullmq is not None and bullmq[i] else "b" for i in call)
                parts.append(pack_command("EVALSHA", self._sha or "", len(keys), *keys, kinds))
                starts.append(len(order))
                order += call
            self._pack_cache = (cache_key, b"".join(parts), len(starts), order, starts)
        return self._pack_cache[1], self._pack_cache[2], self._pack_cache[3], self._pack_cache[4]

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
        replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and not is_wrongtype(reply):
                raise reply  # NOPERM, ...: not about one queue's data
        out = []
        width = 14
        for i in range(len(queues)):
            r = replies[1 + i * width: 1 + (i + 1) * width]
            bad = [COUNT_KEYS.index(s) for s, reply in zip(_PIPELINE_KEYS, r) if is_wrongtype(reply)]
            if bad:
                out.append(_malformed(bad))
                continue
            wait = r[0] - (1 if r[0] and r[1] is not None and r[1].startswith(b"0:") else 0)
            paused = r[2] - (1 if r[2] and r[3] is not None and r[3].startswith(b"0:") else 0)
            out.append(_raw([wait, paused, *r[4:11], *r[11], r[12], r[13]]))
        return _ms(replies[0]), out


def _chunks(indexes) -> list[list[int]]:
    indexes = list(indexes)
    return [indexes[i:i + QUEUES_PER_CALL] for i in range(0, len(indexes), QUEUES_PER_CALL)]


def calls_by_slot(queues: list[QueueKeys]) -> list[list[int]]:
    """The queues' indexes in calls of at most QUEUES_PER_CALL queues of one hash slot each: a
    Redis Cluster refuses a script whose keys span slots (CROSSSLOT). Queues under one hash-tagged
    prefix (``{bull}``) share a slot and are counted 16 a call; ``bull:{name}`` queues one a call."""
    from backends.redis_cluster import slot

    by_slot: dict[int, list[int]] = {}
    for i, k in enumerate(queues):
        by_slot.setdefault(slot(k("meta")), []).append(i)
    return [call for indexes in by_slot.values() for call in _chunks(indexes)]


#: the COUNT_KEYS suffix each reply of one queue's block in ``_by_commands`` is about
_PIPELINE_KEYS = ("wait", "wait", "paused", "paused", "active", "prioritized", "delayed", "completed", "failed",
                  "waiting-children", "meta-paused", "meta", "limiter", "limiter")

#: ARGV[1] "1": each hash's values are preceded by its kind (1 for a hash holding any of the
#: fields, else its TYPE: "none", "hash", "string", ...). A key of the wrong type reads as no values.
ROWS_SCRIPT = """
local typed, fields = ARGV[1] == '1', {}
for j = 2, #ARGV do fields[j - 1] = ARGV[j] end
local n = #fields
local w = n + (typed and 1 or 0)
local out = {}
for i = 1, #KEYS do
  local o = (i - 1) * w
  local values = redis.pcall('HMGET', KEYS[i], unpack(fields))
  local kind = 1
  if values.err then
    if string.sub(values.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(values.err) end
    kind = redis.call('TYPE', KEYS[i]).ok
    values = {}
  elseif typed then
    local any = false
    for j = 1, n do if values[j] then any = true break end end
    if not any then kind = redis.call('TYPE', KEYS[i]).ok end
  end
  if typed then
    out[o + 1] = kind
    o = o + 1
  end
  for j = 1, n do out[o + j] = values[j] or false end
end
return out
"""
#: job hashes per script call: about 1 µs of server time each, so a call stays well under 1 ms
HASHES_PER_CALL = 100


class HashFieldsReader:
    """The same fields of many hashes (a page's rows): HMGET inside a read-only script, up to
    HASHES_PER_CALL hashes per call, every call in one round trip. A page of 1,000 rows comes back
    as 10 replies instead of 1,000 (redis-py's cost is per reply). Without @scripting: one HMGET
    per hash, pipelined. A key of the wrong type reads as no values (all None), never as an error."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._sha: str | None = None
        self.scripts_allowed = True

    async def read(self, keys: list[str], fields: tuple[str, ...]) -> list[list]:
        """Each key's values of ``fields`` (None for a missing field, all None for a key that is
        missing or of another type)."""
        if not keys:
            return []
        if self.scripts_allowed:
            try:
                return await self._by_script(keys, fields, typed=False)
            except rexc.NoPermissionError:
                self.scripts_allowed = False
        replies = await pipelined(self._client, [("HMGET", key, *fields) for key in keys], wrongtype_in_place=True)
        return [[None] * len(fields) if is_wrongtype(r) else r for r in replies]

    async def read_typed(self, keys: list[str], fields: tuple[str, ...]) -> list[tuple[bytes, list]]:
        """Each key's type (b"hash", b"none", b"string", ...) and its values as ``read`` gives them:
        a row can say why its key holds no job."""
        if not keys:
            return []
        if self.scripts_allowed:
            try:
                rows = await self._by_script(keys, fields, typed=True)
                return [(b"hash" if row[0] == 1 else row[0], row[1:]) for row in rows]
            except rexc.NoPermissionError:
                self.scripts_allowed = False
        commands = [c for key in keys for c in (("TYPE", key), ("HMGET", key, *fields))]
        replies = await pipelined(self._client, commands, wrongtype_in_place=True)
        return [(replies[2 * i], [None] * len(fields) if is_wrongtype(replies[2 * i + 1]) else replies[2 * i + 1])
                for i in range(len(keys))]

    async def _by_script(self, keys: list[str], fields: tuple[str, ...], typed: bool) -> list[list]:
        width = len(fields) + typed
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self._client.script_load(ROWS_SCRIPT)
            commands = [("EVALSHA", self._sha, len(chunk), *chunk, "1" if typed else "0", *fields)
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
