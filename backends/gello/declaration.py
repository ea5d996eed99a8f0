"""Gello: two declarations, one per store (Redis and PostgreSQL), each detected next to the
primary system of its URL kind. With ``--backend gello``, ``--prefix`` / ``--schema`` name Gello's
key prefix / schema (the same flags BullMQ and pg-boss declare)."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

#: the Redis SCAN that detects Gello keys gives up after this long (``--backend gello`` forces it)
DETECT_BUDGET_S = 1.0
PREFIX = BackendOption(flag="--prefix", dest="prefixes", config_key="prefixes", repeatable=True, metavar="PREFIX",
                       help="with --backend gello: Gello's key prefix (default gello)")
SCHEMA = BackendOption(flag="--schema", dest="schema", config_key="schema",
                       help="with --backend gello: the schema of Gello's tables (default public)")


async def open_redis(url, options):
    from backends.gello.redis_reader import GelloRedisReader
    from backends.redis_client import connected_client

    client = await connected_client(url, options, on_cluster=ON_CLUSTER)
    return GelloRedisReader(client, url, prefixes=options.gello_prefix_list(),
                            discovery_budget_s=options.discovery_budget_s, store_prefix=options.store_prefix)


#: Gello on a Redis Cluster node: refused (``--backend gello``) or not looked for (detection)
ON_CLUSTER = "Gello cannot run on a cluster (a queue's keys have no hash tag, and its retry script uses two)"


async def detect_redis(first, url, options) -> bool:
    """True when a time-boxed SCAN sees a ``<gello prefix>:queue:*`` key; never on a Redis Cluster
    (ON_CLUSTER)."""
    if getattr(first, "cluster", False):
        return False
    from backends.contract import call_with_timeout
    from backends.gello.redis_reader import has_gello_keys
    from backends.redis_client import redis_errors

    if options.discovery_cache:
        # the verdict kept with the last complete scan: the time-boxed SCAN below is a second of
        # server work on a 2M-key keyspace; the caller says on output that the list is a kept one
        cached = await call_with_timeout(first.cached_scan(), options.op_timeout, "reading the kept discovery")
        if cached is not None and cached.gello is not None and cached.gello[0] == options.gello_prefix_list():
            return cached.gello[1]
    budget = min(DETECT_BUDGET_S, options.discovery_budget_s)
    async with redis_errors(url):
        found = await call_with_timeout(has_gello_keys(first.client, options.gello_prefix_list(), budget),
                                        options.op_timeout, "looking for Gello keys")
    first.gello_detected = (options.gello_prefix_list(), found)
    return found


async def open_postgres(url, options):
    from backends.gello.pg_reader import GelloPgReader, open_pool

    pool = await open_pool(url, options.connect_timeout, options.op_timeout, options.client_name)
    return GelloPgReader(pool, url, schema=options.gello_schema_name(), store_schema=options.store_schema,
                         connect_timeout=options.connect_timeout, op_timeout=options.op_timeout,
                         application_name=options.client_name)


async def detect_postgres(first, url, options) -> bool:
    """True when the Gello schema has a ``failed_jobs`` table or a ``jobs`` table with ``job_type``."""
    from backends.contract import call_with_timeout
    from backends.gello.pg_reader import detect
    from backends.postgres import pg_errors

    async with pg_errors(url):
        return await call_with_timeout(detect(first.pool, options.gello_schema_name()),
                                       options.op_timeout, "looking for Gello tables")


REDIS = BackendDeclaration(name="gello", url_kinds=("redis",), open=open_redis, detect=detect_redis,
                           options=(PREFIX,), discovery_hint="pass --backend gello --prefix PREFIX", order=10)
POSTGRES = BackendDeclaration(name="gello", url_kinds=("postgres",), open=open_postgres, detect=detect_postgres,
                              options=(SCHEMA,), discovery_hint="pass --backend gello --schema NAME", order=10)
