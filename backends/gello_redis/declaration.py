"""Gello on Redis: the declaration the registry loops over. Detected next to BullMQ when a
time-boxed SCAN sees a ``<gello prefix>:queue:*`` key. Gello's key prefixes: ``--gello-prefix``
(config key ``gello_prefixes``), else, with ``--backend gello``, ``--prefix`` (shared with BullMQ,
which declares it too), else ``gello``."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

#: the Redis SCAN that detects Gello keys gives up after this long (``--backend gello`` forces it)
DETECT_BUDGET_S = 1.0
PREFIX = BackendOption(flag="--prefix", dest="prefixes", config_key="prefixes", repeatable=True, metavar="PREFIX",
                       shared=True, help="with --backend gello: Gello's key prefix (default gello)")
GELLO_PREFIX = BackendOption(flag="--gello-prefix", dest="gello_prefixes", config_key="gello_prefixes",
                             repeatable=True, metavar="PREFIX",
                             help="Gello's key prefix in Redis, with or without --backend gello (repeatable; "
                                  "default: --prefix with --backend gello, else gello)")


def gello_prefixes(options) -> list[str]:
    """The key prefixes Gello is looked for under (see the module's docstring)."""
    if options.gello_prefixes:
        return list(options.gello_prefixes)
    if options.backend == "gello" and options.prefixes:
        return list(options.prefixes)
    return ["gello"]


async def open_reader(url, options):
    from backends.gello_redis import discovery

    return await discovery.open_reader(url, options)


#: Gello on a Redis Cluster node: refused (``--backend gello``) or not looked for (detection)
ON_CLUSTER = "Gello cannot run on a cluster (a queue's keys have no hash tag, and its retry script uses two)"


async def detect(first, url, options) -> bool:
    """True when a time-boxed SCAN sees a ``<gello prefix>:queue:*`` key; never on a Redis Cluster
    (ON_CLUSTER)."""
    if getattr(first, "cluster", False):
        return False
    from backends.contract import call_with_timeout
    from backends.gello_redis.discovery import has_gello_keys
    from backends.redis_client import redis_errors

    if options.discovery_cache:
        # the verdict kept with the last complete scan: the time-boxed SCAN below is a second of
        # server work on a 2M-key keyspace; the caller says on output that the list is a kept one
        cached = await call_with_timeout(first.cached_scan(), options.op_timeout, "reading the kept discovery")
        if cached is not None and cached.gello is not None and cached.gello[0] == gello_prefixes(options):
            return cached.gello[1]
    budget = min(DETECT_BUDGET_S, options.discovery_budget_s)
    async with redis_errors(url):
        found = await call_with_timeout(has_gello_keys(first.client, gello_prefixes(options), budget),
                                        options.op_timeout, "looking for Gello keys")
    first.gello_detected = (gello_prefixes(options), found)
    return found


DECLARATION = BackendDeclaration(name="gello", url_kinds=("redis",), open=open_reader, detect=detect,
                                 options=(PREFIX, GELLO_PREFIX), discovery_hint="pass --backend gello --prefix PREFIX", order=10)
