"""Job flows of BullMQ on Redis: a job's parent and its children, read the way BullMQ's own
``Job.getDependencies`` / ``getDependenciesCount`` read them.

A parent ``<prefix>:<queue>:<id>`` keeps its children's job keys (``<prefix>:<queue>:<id>``) in:

======================  =====  ===============================================================
key                     type   BullMQ's name (``getDependenciesCount``)
======================  =====  ===============================================================
``<job>:dependencies``  set    ``unprocessed``: children still pending (SCARD)
``<job>:unsuccessful``  zset   ``failed``: children that failed with ``continueParentOnFailure``
``<job>:failed``        hash   ``ignored``: children that failed with ``ignoreDependencyOnFailure``
``<job>:processed``     hash   ``processed``: completed children -> their return value
======================  =====  ===============================================================

A child names its parent in its job hash: ``parentKey`` (``<prefix>:<queue>:<id>``) and ``parent``
(``{"id": ..., "queueKey": "<prefix>:<queue>"}``, unambiguous when ids hold colons).

Every read is bounded: the counts are O(1) (SCARD/ZCARD/HLEN), the children listed are at most
``cap`` per kind (SSCAN/HSCAN with a bounded number of calls, ZRANGE with a limit), the children's
states take a few ``ZMSCORE`` per queue, and a child in none of the state sets is looked for in at
most ``LIST_MAXLEN`` entries of ``wait``/``active``/``paused``.
"""
from __future__ import annotations

import json

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from backends.blob import to_key, to_str
from backends.bullmq.keys import QueueKeys
from backends.contract import Flow, FlowJob, QueueRef

#: (BullMQ's count name, key suffix, Redis type) in the order children are listed: pending first
DEPENDENCY_KEYS = (("unprocessed", "dependencies", "set"), ("failed", "unsuccessful", "zset"),
                   ("ignored", "failed", "hash"), ("processed", "processed", "hash"))
#: sorted sets a job's state is read from (in the order BullMQ's getState tries them)
STATE_ZSETS = ("completed", "failed", "delayed", "prioritized", "waiting-children")
#: lists a pending child is looked for in, and how far (LPOS MAXLEN: never a whole huge list)
STATE_LISTS = (("active", "active"), ("wait", "waiting"), ("paused", "waiting"))
LIST_MAXLEN = 10_000
#: SSCAN/HSCAN calls per kind at most while collecting ``cap`` children
SCAN_CALLS = 8


def split_job_key(key: str, prefix_hint: str) -> tuple[str, str, str] | None:
    """(prefix, queue, id) of ``<prefix>:<queue>:<id>``. BullMQ queue names hold no colon, job ids
    may: the prefix is ``prefix_hint`` when the key starts with it, else the first segment."""
    if key.startswith(prefix_hint + ":"):
        prefix, rest = prefix_hint, key[len(prefix_hint) + 1:]
    else:
        prefix, _, rest = key.partition(":")
    name, _, job_id = rest.partition(":")
    return (prefix, name, job_id) if prefix and name and job_id else None


def parent_of(fields: dict[str, bytes | None], prefix_hint: str) -> tuple[str, str, str] | None:
    """(prefix, queue, id) of a child's parent, from ``parent`` (JSON) or else ``parentKey``."""
    raw = to_str(fields.get("parent"))
    if raw:
        try:
            data = json.loads(raw)
            prefix, _, name = str(data.get("queueKey", "")).rpartition(":")
            if prefix and name and data.get("id") is not None:
                return prefix, name, str(data["id"])
        except (ValueError, AttributeError):
            pass
    key = to_key(fields.get("parentKey"))
    return split_job_key(key, prefix_hint) if key else None


async def _members(client: aioredis.Redis, key: str, kind: str, cap: int) -> list[str]:
    """At most ``cap`` child keys of one dependency key, in a bounded number of calls."""
    if kind == "zset":
        return [to_key(m) for m in await client.zrange(key, 0, cap - 1)]
    out: list[str] = []
    cursor = 0
    for _ in range(SCAN_CALLS):
        if kind == "set":
            cursor, batch = await client.sscan(key, cursor, count=cap)
        else:
            cursor, fields = await client.hscan(key, cursor, count=cap)
            batch = list(fields)
        out += [to_key(m) for m in batch]
        if not cursor or len(out) >= cap:
            break
    return sorted(set(out))[:cap]


async def _states(client: aioredis.Redis, jobs: list[tuple[str, str, str]]) -> list[str | None]:
    """The native state of each (prefix, queue, id); None: no such job. Two round trips at most:
    ``ZMSCORE`` of every queue's state sets for all its jobs at once (a few commands however many
    jobs: the client's cost is per command), then, for the jobs in none of them, ``EXISTS`` and
    ``LPOS`` in the lists. ``ZSCORE`` per job where the server has no ZMSCORE (Redis < 6.2)."""
    if not jobs:
        return []
    by_queue: dict[tuple[str, str], list[int]] = {}
    for i, (prefix, name, _) in enumerate(jobs):
        by_queue.setdefault((prefix, name), []).append(i)
    out: list[str | None] = [None] * len(jobs)
    found = [False] * len(jobs)
    hits = await _zset_hits(client, jobs, by_queue)
    for suffix in STATE_ZSETS:  # in getState's order: the first set that holds the job
        for i in range(len(jobs)):
            if not found[i] and hits[suffix][i]:
                out[i], found[i] = suffix, True
    rest = [i for i in range(len(jobs)) if not found[i]]
    if rest:
        pipe = client.pipeline(transaction=False)
        for i in rest:
            prefix, name, job_id = jobs[i]
            k = QueueKeys(prefix, name)
            pipe.exists(k.job(job_id))
            for suffix, _ in STATE_LISTS:
                pipe.lpos(k(suffix), job_id, maxlen=LIST_MAXLEN)
        replies = [None if isinstance(r, Exception) else r for r in await pipe.execute(raise_on_error=False)]
        width = 1 + len(STATE_LISTS)
        for n, i in enumerate(rest):
            exists, *positions = replies[n * width:(n + 1) * width]
            if exists:
                out[i] = next((state for (_, state), pos in zip(STATE_LISTS, positions) if pos is not None), "unknown")
    return out


async def _zset_hits(client: aioredis.Redis, jobs, by_queue) -> dict[str, list[bool]]:
    """suffix -> per job: is it in that state set of its queue."""
    hits = {suffix: [False] * len(jobs) for suffix in STATE_ZSETS}
    pipe = client.pipeline(transaction=False)
    order = [(q, suffix) for q in by_queue for suffix in STATE_ZSETS]
    for (prefix, name), suffix in order:
        pipe.execute_command("ZMSCORE", QueueKeys(prefix, name)(suffix), *(jobs[i][2] for i in by_queue[(prefix, name)]))
    replies = await pipe.execute(raise_on_error=False)
    if any(isinstance(r, ResponseError) and "unknown command" in str(r).lower() for r in replies):
        pipe = client.pipeline(transaction=False)  # Redis < 6.2: one ZSCORE per job and set
        for (prefix, name), suffix in order:
            for i in by_queue[(prefix, name)]:
                pipe.zscore(QueueKeys(prefix, name)(suffix), jobs[i][2])
        flat = iter(await pipe.execute(raise_on_error=False))
        replies = [[next(flat) for _ in by_queue[q]] for q, _ in order]
    for ((q, suffix), reply) in zip(order, replies):
        if isinstance(reply, Exception):  # WRONGTYPE: that set holds no job
            continue
        for i, score in zip(by_queue[q], reply):
            hits[suffix][i] = score is not None and not isinstance(score, Exception)
    return hits


async def read_flow(client: aioredis.Redis, queue: QueueRef, job_id: str, cap: int, canonical) -> Flow | None:
    k = QueueKeys(queue.namespace, queue.name)
    base = k.job(job_id)
    pipe = client.pipeline(transaction=False)
    pipe.exists(base)
    pipe.hmget(base, ["parent", "parentKey"])
    pipe.scard(f"{base}:dependencies")
    pipe.zcard(f"{base}:unsuccessful")
    pipe.hlen(f"{base}:failed")
    pipe.hlen(f"{base}:processed")
    exists, parent_fields, *counts = await pipe.execute(raise_on_error=False)
    if isinstance(exists, Exception):
        raise exists
    if not exists:
        return None
    # a key of the wrong type (WRONGTYPE) holds no children of its kind
    count = {name: (0 if isinstance(n, Exception) else int(n)) for (name, _, _), n in zip(DEPENDENCY_KEYS, counts)}
    fields = {} if isinstance(parent_fields, Exception) else dict(zip(("parent", "parentKey"), parent_fields))
    children: list[tuple[str, tuple[str, str, str]]] = []
    for name, suffix, kind in DEPENDENCY_KEYS:
        left = cap - len(children)
        if left <= 0 or not count[name]:
            continue
        try:
            keys = await _members(client, f"{base}:{suffix}", kind, left)
        except Exception as exc:  # WRONGTYPE: counted as 0 above; anything else is a real error
            if "WRONGTYPE" in str(exc):
                continue
            raise
        children += [(name, where) for key in keys if (where := split_job_key(key, queue.namespace))]
    parent = parent_of(fields, queue.namespace)
    linked = ([parent] if parent else []) + [where for _, where in children]
    states = await _states(client, linked)
    parent_job = parent_pending = None
    if parent is not None:
        native = states.pop(0)
        parent_job = FlowJob(namespace=parent[0], queue=parent[1], id=parent[2], native_state=native,
                             state=canonical(native) if native else None)
        pipe = client.pipeline(transaction=False)
        pipe.scard(f"{QueueKeys(parent[0], parent[1]).job(parent[2])}:dependencies")
        (pending,) = await pipe.execute(raise_on_error=False)
        parent_pending = None if isinstance(pending, Exception) else int(pending)
    listed = [FlowJob(namespace=p, queue=n, id=i, dependency=dep, native_state=native,
                      state=canonical(native) if native else None)
              for (dep, (p, n, i)), native in zip(children, states)]
    return Flow(parent=parent_job, parent_pending=parent_pending, children=listed, counts=count, cap=cap)
