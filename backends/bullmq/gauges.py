"""Monitoring gauges of BullMQ / Bull queues: the age of the oldest waiting job and the workers.

Both are bounded per queue and never scan:

- Oldest waiting: the jobs next in line of each waiting segment -- the two elements at the tail
  of ``wait`` and of the legacy ``paused`` list (workers take from the tail; two, because a pre-v5
  ``0:<ts>`` delayed marker may sit there), the head of ``wait`` (a lifo job is RPUSHed to the
  tail, so an older FIFO job can sit behind it), and the lowest-score member of
  ``prioritized`` (the one a worker takes next). A job
  entered the line at the latest of ``timestamp + delay``, ``processedOn`` and ``finishedOn``
  (BullMQ keeps no enqueue time; a job that ran before and was moved back waits since it last
  ran or finished). Two pipelined round trips for every queue of the connection.
- Workers: one ``CLIENT LIST`` per connection, matched the way the libraries' own ``getWorkers``
  match it: BullMQ for Node (v4-v6) names a worker's connection ``<prefix>:<base64(queue)>`` or
  ``<prefix>:<base64(queue)>:w:<worker name>`` (legacy Bull: the first form only); BullMQ for Python
  names it ``<prefix>:<queue>`` or ``<prefix>:<queue>:w:<worker name>`` (its ``clientName`` is the
  qualified name, not base64). A server that refuses CLIENT LIST (ACL, managed Redis) gives
  ``workers=None``: unknown, not zero.
"""
from __future__ import annotations

import base64

import redis.asyncio as aioredis
from redis import exceptions as rexc

from backends.blob import to_int, to_key
from backends.bullmq.keys import QueueKeys
from backends.contract import QueueGauges, QueueRef

#: the job-hash fields that say when a job entered the waiting line
_SINCE_FIELDS = ("timestamp", "delay", "processedOn", "finishedOn")


async def read_gauges(client: aioredis.Redis, queues: list[QueueRef]) -> list[QueueGauges]:
    if not queues:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.time()
    for q in queues:
        k = QueueKeys(q.namespace, q.name)
        pipe.lrange(k("wait"), -2, -1)
        pipe.lindex(k("wait"), 0)
        pipe.lrange(k("paused"), -2, -1)
        pipe.zrange(k("prioritized"), 0, 0)
    # a key of the wrong type answers WRONGTYPE to its own command only: nothing waits there
    replies = _wrongtype_as(await pipe.execute(raise_on_error=False), [])
    secs, micros = replies[0]
    now_ms = int(secs) * 1000 + int(micros) // 1000
    candidates: list[list[str]] = []
    for i in range(len(queues)):
        wait_tail, wait_head, paused_tail, prio_head = replies[1 + 4 * i: 5 + 4 * i]
        wait_head = None if wait_head == [] else wait_head
        ids = [*wait_tail, *([wait_head] if wait_head is not None else []), *paused_tail, *prio_head]
        candidates.append(list(dict.fromkeys(to_key(j) for j in ids if not j.startswith(b"0:"))))
    fields: list = []
    if any(candidates):
        pipe = client.pipeline(transaction=False)
        for q, ids in zip(queues, candidates):
            k = QueueKeys(q.namespace, q.name)
            for job_id in ids:
                pipe.hmget(k.job(job_id), *_SINCE_FIELDS)
        fields = _wrongtype_as(await pipe.execute(raise_on_error=False), (None,) * len(_SINCE_FIELDS))
    workers = await _worker_counts(client, queues)
    out, pos = [], 0
    for q, ids in zip(queues, candidates):
        ages = []
        for ts, delay, processed, finished in fields[pos:pos + len(ids)]:
            ts = to_int(ts)
            if ts is None:
                continue  # hash gone since the list was read: no longer waiting
            since = max(ts + (to_int(delay) or 0), to_int(processed) or 0, to_int(finished) or 0)
            ages.append(max(now_ms - since, 0) / 1000.0)
        pos += len(ids)
        out.append(QueueGauges(queue=q, oldest_waiting_s=max(ages, default=0.0), workers=workers.get(q.key)))
    return out


def _wrongtype_as(replies: list, empty) -> list:
    """Replies with WRONGTYPE errors replaced by ``empty``; any other error is raised (the caller
    maps it)."""
    out = []
    for reply in replies:
        if isinstance(reply, Exception):
            if not str(reply).startswith("WRONGTYPE"):
                raise reply
            reply = empty
        out.append(reply)
    return out


def worker_names(queue: QueueRef) -> tuple[bytes, ...]:
    """The client names a worker of ``queue`` sets (Node/Bull base64 form, Python plain form)."""
    prefix = queue.namespace.encode("utf-8", "surrogateescape")
    name = queue.name.encode("utf-8", "surrogateescape")
    return (prefix + b":" + base64.b64encode(name), prefix + b":" + name)


def count_workers(client_names: list[bytes], queue: QueueRef) -> int:
    """Node's getWorkersCount plus Python's get_workers_count (Bull: exact base64 name only)."""
    if queue.backend == "bull":
        return sum(1 for n in client_names if n == worker_names(queue)[0])
    count = 0
    for base in worker_names(queue):
        named = base + b":w:"
        count += sum(1 for n in client_names if n == base or n.startswith(named))
    return count


async def _worker_counts(client: aioredis.Redis, queues: list[QueueRef]) -> dict[tuple, int]:
    try:
        raw = await client.execute_command("CLIENT", "LIST")
    except rexc.ResponseError:  # CLIENT LIST not allowed here: workers unknown
        return {}
    names = client_list_names(raw)
    return {q.key: count_workers(names, q) for q in queues}


def client_list_names(raw) -> list[bytes]:
    """The ``name=`` of every line of a CLIENT LIST reply (redis-py may hand it over parsed)."""
    if isinstance(raw, list):  # parsed by a response callback: list of dicts
        return [v if isinstance(v, bytes) else str(v).encode() for c in raw if (v := c.get("name") or c.get(b"name"))]
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    names = []
    for line in raw.splitlines():
        for field in line.split(b" "):
            if field.startswith(b"name="):
                if len(field) > 5:
                    names.append(field[5:])
                break
    return names
