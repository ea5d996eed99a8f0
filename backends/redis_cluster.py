"""Redis Cluster: a ``redis://`` (or ``rediss://``) URL of any node of a cluster.

The node the URL names says it is one (``INFO cluster``: ``cluster_enabled:1``) and gives the slot
map (``CLUSTER SLOTS``). The console then keeps one plain client per master, made from the URL's own
connection options (TLS, ACL user, timeouts, client name) with only host and port changed, and
routes every call by hash slot: a queue whose keys share a hash tag lives in one slot, so all of its
keys (and every script over them) are on one master. Plain per-master clients, not redis-py's
RedisCluster: the readers' hot paths send many commands packed in one write on one connection
(``redis_client.send_packed``), which a per-command router cannot do.

What a queue system does with this is its own business (``backends/bullmq/cluster.py``); this
module only knows nodes, slots and hash tags.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from backends.redis_client import pipelined


async def cluster_enabled(client: aioredis.Redis) -> bool:
    """``INFO cluster`` says ``cluster_enabled:1``; an ACL user without INFO cannot tell (NOPERM),
    and is then taken as talking to a standalone server."""
    try:
        info = await client.info("cluster")
    except rexc.ResponseError:
        return False
    return str(info.get("cluster_enabled", 0)) == "1"


def slot(key: str) -> int:
    """The hash slot of a key given as str (surrogateescape: key names need not be UTF-8)."""
    return key_slot(key.encode("utf-8", "surrogateescape"))


def hash_tag(text: str) -> str | None:
    """The hash tag of a key prefix (what is between the first ``{`` and the next ``}``, if not
    empty), or None: every key that starts with a prefix holding a tag hashes to the tag's slot."""
    start = text.find("{")
    if start < 0:
        return None
    end = text.find("}", start + 1)
    if end <= start + 1:
        return None
    return text[start + 1:end]


def tagged(prefix: str) -> str:
    """``prefix`` itself when it holds a hash tag, else ``{prefix}``: the console's own keys under
    it then share one slot (so several of them may be used in one command or script)."""
    return prefix if hash_tag(prefix) is not None else "{" + prefix + "}"


@dataclass
class SlotMap:
    """Which master serves each of the 16,384 slots (an index into ``masters``; -1: none)."""

    masters: list[tuple[str, int]]
    owners: list[int]

    def owner(self, key: str) -> int:
        return self.owners[slot(key)]

    @property
    def covered(self) -> bool:
        return -1 not in self.owners


async def read_slot_map(client: aioredis.Redis, default_host: str) -> SlotMap:
    """``CLUSTER SLOTS`` of one node. A node that announces no address (an empty host) is the one
    asked, reached as ``default_host``."""
    [reply] = await pipelined(client, [("CLUSTER", "SLOTS")])
    masters: list[tuple[str, int]] = []
    owners = [-1] * REDIS_CLUSTER_HASH_SLOTS
    for entry in reply:
        first, last, master = int(entry[0]), int(entry[1]), entry[2]
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0] or "")
        address = (host or default_host, int(master[1]))
        if address not in masters:
            masters.append(address)
        index = masters.index(address)
        for s in range(first, last + 1):
            owners[s] = index
    return SlotMap(masters=masters, owners=owners)


def node_client(seed: aioredis.Redis, host: str, port: int) -> aioredis.Redis:
    """A client of one node with every option of ``seed`` (TLS, user, password, timeouts, client
    name, no retries) but host and port."""
    pool = seed.connection_pool
    kwargs = dict(pool.connection_kwargs, host=host, port=port)
    return aioredis.Redis.from_pool(aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def moved(exc: BaseException) -> bool:
    """A MOVED or ASK reply (the slot is served elsewhere now: resharding, failover), or
    CLUSTERDOWN (the cluster has lost a slot's master for now)."""
    return isinstance(exc, (rexc.AskError, rexc.ClusterDownError))
