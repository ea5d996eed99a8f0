"""BullMQ (and legacy Bull) in Redis: the declaration the registry loops over."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

#: shared with Gello on Redis, which reads it with ``--backend gello`` (backends/gello_redis/declaration.py)
PREFIX = BackendOption(flag="--prefix", dest="prefixes", config_key="prefixes", repeatable=True, metavar="PREFIX",
                       shared=True, help="BullMQ key prefix to look in (repeatable; default: discover every prefix)")
HINT = "if your queues use another key prefix, pass --prefix PREFIX"


async def open_reader(url, options):
    from backends.bullmq.reader import BullMQReader
    from backends.redis_client import connect

    client, cluster = await connect(url, options)
    if cluster:  # a Redis Cluster node: every master, routed by hash slot
        from backends.bullmq.cluster import open_cluster_reader

        return await open_cluster_reader(client, url, options)
    return BullMQReader(client, url, prefixes=options.prefixes or None, discovery_budget_s=options.discovery_budget_s,
                        store_prefix=options.store_prefix, use_discovery_cache=options.discovery_cache,
                        write_discovery_cache=not options.read_only)


DECLARATION = BackendDeclaration(name="bullmq", url_kinds=("redis",), open=open_reader, options=(PREFIX,),
                                 discovery_hint=HINT, order=0)
