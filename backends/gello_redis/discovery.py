"""Finding Gello queues on Redis: a time-boxed SCAN over ``<prefix>:queue:*`` (the suffix stripped,
so a queue name may contain ``:``), then one pipelined TYPE per state key, so that a queue with a
key of the wrong type is listed as malformed instead of failing the others."""
from __future__ import annotations

import time
from typing import Callable

import redis.asyncio as aioredis

from backends.contract import Discovery, QueueRef
from backends.gello_redis.keys import SUFFIXES, GelloKeys, split_queue_key
from backends.redis_client import redis_errors
from backends.redis_scan import KeyScan, glob_escape
from backends.urls import ConnectionUrl


async def has_gello_keys(client: aioredis.Redis, prefixes: list[str], budget_s: float) -> bool:
    """True as soon as one ``<prefix>:queue:*`` key of a known suffix is seen (time-boxed SCAN)."""
    deadline = time.monotonic() + budget_s
    for prefix in prefixes:
        scan = KeyScan(client, f"{glob_escape(prefix)}:queue:*", deadline=deadline)
        async for keys in scan.batches():
            if any(split_queue_key(k.decode("utf-8", "surrogateescape"), prefix) for k in keys):
                return True
    return False


async def discover(client: aioredis.Redis, url: ConnectionUrl, prefixes: list[str], budget_s: float,
                   ref: Callable[[str, str], QueueRef]) -> tuple[Discovery, dict[tuple, str]]:
    """The queues under ``prefixes`` (``ref(prefix, name)`` makes each one's QueueRef), and the
    malformed ones: queue key -> why its keys cannot be read."""
    deadline = time.monotonic() + budget_s
    patterns = [f"{p}:queue:*" for p in prefixes]
    found: dict[tuple[str, str], set[str]] = {}
    complete = True
    async with redis_errors(url):
        for prefix in prefixes:
            scan = KeyScan(client, f"{glob_escape(prefix)}:queue:*", deadline=deadline)
            async for keys in scan.batches():
                for raw in keys:
                    parts = split_queue_key(raw.decode("utf-8", "surrogateescape"), prefix)
                    if parts:
                        found.setdefault((prefix, parts[0]), set()).add(parts[1])
            complete = complete and scan.complete
        candidates = sorted(found)
        pipe = client.pipeline(transaction=False)
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
        queue = ref(prefix, name)
        if bad:  # listed, marked malformed (its counts cannot be read); the others are read normally
            malformed[queue.key] = "; ".join(bad)
        queues.append(queue)
    if not complete:
        notes.append(f"Gello discovery stopped after {budget_s:g} s; some queues may be missing")
    if not queues and not notes:
        notes.append(f"no Gello keys ({', '.join(patterns)})")
    return (Discovery(queues=queues, looked_for=patterns, complete=complete, note="; ".join(notes) or None),
            malformed)


async def open_reader(url: ConnectionUrl, options):
    from backends.gello_redis.declaration import ON_CLUSTER, gello_prefixes
    from backends.gello_redis.reader import GelloRedisReader
    from backends.redis_client import connected_client

    client = await connected_client(url, options, on_cluster=ON_CLUSTER)
    return GelloRedisReader(client, url, prefixes=gello_prefixes(options),
                            discovery_budget_s=options.discovery_budget_s, store_prefix=options.store_prefix)
