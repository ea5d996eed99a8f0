"""Production-scale BullMQ data for tests/benchmarks/bench_scale.py, in BullMQ v6's own key layout.

Each queue is written by one server-side script (job hashes with the fields BullMQ writes, state
keys with BullMQ's scores: ``finishedOn`` for completed/failed, ``timestamp * 0x1000 + counter`` for
delayed, ``priority * 2^32 + counter`` for prioritized, ids pushed on the head of ``wait``), then
the run checks the result with BullMQ for Node's own getJobCounts/getFailed before timing anything.
"""
from __future__ import annotations

import redis

#: 20 error shapes (digits after letters included: "welcome-v3" must fold with "welcome-v41")
REASONS = [
    "connect ETIMEDOUT 10.0.%d.%d:443",
    "SMTP 550 mailbox unavailable for user%d@example.com",
    "Request failed with status code 503 (upstream %d)",
    "job stalled more than allowable limit (%d)",
    "Template welcome-v%d not found",
    "invoice inv%d has no lines",
    "rate limited, retry after %d ms",
    "ECONNREFUSED 127.0.0.1:%d",
    "card declined: code %d",
    "timeout after %dms",
    "user u%d not found",
    "disk quota exceeded on vol%d",
    "payload too large: %d bytes",
    "lock for order ord-%d expired",
    "duplicate key value violates unique constraint k%d",
    "webhook https://hooks.example.com/%d returned 410",
    "cannot parse date 2024-%d-99",
    "shard s%d unavailable",
    "task cancelled by operator %d",
    "out of memory (heap %d MB)",
]

_WRITE = """
local base, t0 = ARGV[1], tonumber(ARGV[2])
local nc, nf, nw, nd, np = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local first = tonumber(ARGV[8])
local shapes = cjson.decode(ARGV[9])
local id = first - 1
local function job(extra)
  id = id + 1
  redis.call('HSET', base .. ':' .. id, 'name', 'send-email', 'data', '{"to":"user' .. id .. '@example.com"}',
    'opts', '{"attempts":3,"backoff":{"type":"exponential","delay":1000}}', 'timestamp', t0 + id, 'delay', 0,
    'priority', 0, unpack(extra))
  return id
end
for i = 1, nc do
  local j = job({'processedOn', t0 + id + 3, 'finishedOn', t0 + id + 9, 'atm', 1, 'ats', 1, 'returnvalue', 'true'})
  redis.call('ZADD', base .. ':completed', t0 + j + 9, j)
end
for i = 1, nf do
  local shape = shapes[(id % #shapes) + 1]
  local reason = string.format(shape, id % 997, (id * 7) % 251)
  local j = job({'processedOn', t0 + id + 3, 'finishedOn', t0 + id + 9, 'atm', 3, 'ats', 3,
    'failedReason', reason, 'stacktrace', cjson.encode({'Error: ' .. reason .. '\\n    at worker.js:1:1'})})
  redis.call('ZADD', base .. ':failed', t0 + j + 9, j)
end
for i = 1, nw do
  local j = job({})
  redis.call('LPUSH', base .. ':wait', j)
end
for i = 1, nd do
  local j = job({'delay', 3600000})
  redis.call('ZADD', base .. ':delayed', (t0 + 3600000) * 4096 + (j % 4096), j)
end
for i = 1, np do
  local j = job({'priority', 5})
  redis.call('ZADD', base .. ':prioritized', 5 * 4294967296 + j, j)
end
redis.call('HSET', base .. ':meta', 'opts.maxLenEvents', 10000, 'version', 'bullmq:6.7.0')
redis.call('SET', base .. ':id', id)
return id
"""

#: jobs per script call (a script holds the server while it runs: keep each well under a second)
CHUNK = 20_000


def write_queue(r: redis.Redis, prefix: str, name: str, t0: int, *, completed: int = 0, failed: int = 0,
                waiting: int = 0, delayed: int = 0, prioritized: int = 0) -> int:
    """Write one queue in chunks; returns how many jobs it holds."""
    import json

    script = r.register_script(_WRITE)
    base = f"{prefix}:{name}"
    shapes = json.dumps(REASONS)
    next_id = 1
    plan = [("c", completed), ("f", failed), ("w", waiting), ("d", delayed), ("p", prioritized)]
    for kind, total in plan:
        done = 0
        while done < total:
            n = min(CHUNK, total - done)
            counts = [n if kind == k else 0 for k in ("c", "f", "w", "d", "p")]
            next_id = int(script(args=[base, t0, *counts, next_id, shapes])) + 1
            done += n
    if not any(n for _, n in plan):
        script(args=[base, t0, 0, 0, 0, 0, 0, 1, shapes])
    return next_id - 1


def delete_prefix(r: redis.Redis, prefix: str) -> int:
    n, batch = 0, []
    for key in r.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            n += r.unlink(*batch)
            batch.clear()
    if batch:
        n += r.unlink(*batch)
    return n
