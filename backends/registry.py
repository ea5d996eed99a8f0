"""Opening readers for a connection URL: which queue systems a server can hold, and connecting.

Redis URLs get the BullMQ reader (which also reads legacy Bull queues). PostgreSQL URLs get the
pg-boss reader (every pg-boss schema in the database, or the one ``--schema`` pins).

Gello (backends.gello) is added next to them when detected: in Redis when a time-boxed SCAN sees
a ``<gello prefix>:queue:*`` key, in PostgreSQL when the Gello schema (``public`` unless
configured) has a ``failed_jobs`` table or a ``jobs`` table with a ``job_type`` column (a layout
with missing or extra columns is then explained in its Discovery.note). ``--backend gello`` opens
only the Gello reader; with it, ``--prefix`` / ``--schema`` name the Gello key prefix / schema.

BullMQ 6 on PostgreSQL (backends.bullmq_postgres) is added when a schema holds BullMQ's tables;
``--backend bullmq-postgres`` opens only it, and ``--schema`` then pins the BullMQ schema.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from backends.contract import Reader, call_with_timeout
from backends.errors import BadUrl, ConnectError
from backends.urls import ConnectionUrl, parse

REDIS_BACKENDS = ("bullmq", "gello")
POSTGRES_BACKENDS: tuple[str, ...] = ("pgboss", "gello", "bullmq-postgres")
ALL_BACKENDS = tuple(dict.fromkeys(REDIS_BACKENDS + POSTGRES_BACKENDS))
#: the Redis SCAN that detects Gello keys gives up after this long (``--backend gello`` forces it)
GELLO_DETECT_BUDGET_S = 1.0


@dataclass
class ConnectOptions:
    backend: str | None = None  # force one system instead of detecting
    prefixes: list[str] = field(default_factory=list)  # BullMQ key prefixes; empty = discover all
    schema: str | None = None  # pg-boss schema
    connect_timeout: float = 5.0
    op_timeout: float = 10.0
    discovery_budget_s: float = 10.0  # a full SCAN of 1.1M keys took 3.8 s (docs/performance.md)
    store_prefix: str = "queue-console"  # where the console keeps audit, ledger, global-pause records
    client_name: str = "queue-console"  # CLIENT SETNAME, so operators can tell our connections apart
    read_only: bool = False  # no background writes either (pg-boss re-park sweep, the discovery cache)
    #: BullMQ discovery may list the last complete scan's queues instead of scanning (`status`; see
    #: backends/bullmq/discovery.py, the cache)
    discovery_cache: bool = False
    gello_prefixes: list[str] = field(default_factory=list)  # Gello key prefixes; empty = ["gello"]
    gello_schema: str | None = None  # schema of Gello's jobs/failed_jobs tables; None = "public"
    write_url: str | None = None  # PostgreSQL: mutations go to this primary (the --url may be a hot standby)

    def gello_prefix_list(self) -> list[str]:
        if self.gello_prefixes:
            return list(self.gello_prefixes)
        if self.backend == "gello" and self.prefixes:
            return list(self.prefixes)
        return ["gello"]

    def gello_schema_name(self) -> str:
        return self.gello_schema or (self.schema if self.backend == "gello" and self.schema else None) or "public"


async def open_readers(raw_url: str, options: ConnectOptions) -> list[Reader]:
    """Connect (within ``connect_timeout``) and return one reader per queue system to look at."""
    url = parse(raw_url)
    if options.backend and options.backend not in ALL_BACKENDS:
        raise BadUrl(f"unknown backend {options.backend!r} (known: {', '.join(ALL_BACKENDS)})")
    if url.kind == "redis":
        if options.backend and options.backend not in REDIS_BACKENDS:
            raise BadUrl(f"backend {options.backend!r} does not live in Redis ({url.redacted})")
        if options.backend == "gello":
            return [await _open_gello_redis(url, options)]
        readers = [await _open_bullmq(url, options)]
        if options.backend is None:
            try:
                if await _gello_in_redis(readers[0], options):
                    readers.append(await _open_gello_redis(url, options))
            except BaseException:
                await readers[0].close()
                raise
        return readers
    if options.backend and options.backend not in POSTGRES_BACKENDS:
        raise BadUrl(f"backend {options.backend!r} does not live in PostgreSQL ({url.redacted})")
    if options.backend == "gello":
        return [await _open_gello_pg(url, options)]
    from backends.bullmq_postgres import discovery as bullmq_pg  # BullMQ 6 on PostgreSQL
    if options.backend == "bullmq-postgres":
        return [await bullmq_pg.open_reader(url, options.connect_timeout, options.op_timeout, options.schema)]
    readers = [await _open_pgboss(url, options)]
    if options.backend is None:
        try:
            if await _gello_in_postgres(readers[0], url, options):
                readers.append(await _open_gello_pg(url, options))
            if await bullmq_pg.present(readers[0].pool, url, None, options.op_timeout):  # type: ignore[attr-defined]
                readers.append(await bullmq_pg.open_reader(url, options.connect_timeout, options.op_timeout, None))
        except BaseException:
            for reader in readers:  # the Gello reader too, when BullMQ's detection failed after it
                await reader.close()
            raise
    return readers


async def _gello_in_redis(bullmq_reader: Reader, options: ConnectOptions) -> bool:
    from backends.gello.redis_reader import has_gello_keys
    from backends.redis_client import redis_errors

    if options.discovery_cache:
        # the verdict kept with the last complete scan: the time-boxed SCAN below is a second of
        # server work on a 2M-key keyspace; the caller says on output that the list is a kept one
        cached = await call_with_timeout(bullmq_reader.cached_scan(), options.op_timeout,  # type: ignore[attr-defined]
                                         "reading the kept discovery")
        if cached is not None and cached.gello is not None and cached.gello[0] == options.gello_prefix_list():
            return cached.gello[1]
    client = bullmq_reader.client  # type: ignore[attr-defined]
    budget = min(GELLO_DETECT_BUDGET_S, options.discovery_budget_s)
    async with redis_errors(bullmq_reader.url):  # type: ignore[attr-defined]
        found = await call_with_timeout(has_gello_keys(client, options.gello_prefix_list(), budget),
                                        options.op_timeout, "looking for Gello keys")
    bullmq_reader.gello_detected = (options.gello_prefix_list(), found)  # type: ignore[attr-defined]
    return found


async def _gello_in_postgres(pgboss_reader: Reader, url: ConnectionUrl, options: ConnectOptions) -> bool:
    from backends.gello.pg_reader import detect
    from backends.postgres import pg_errors

    async with pg_errors(url):
        return await call_with_timeout(detect(pgboss_reader.pool, options.gello_schema_name()),  # type: ignore[attr-defined]
                                       options.op_timeout, "looking for Gello tables")


async def _open_gello_pg(url: ConnectionUrl, options: ConnectOptions) -> Reader:
    from backends.gello.pg_reader import GelloPgReader, open_pool

    pool = await open_pool(url, options.connect_timeout, options.op_timeout, options.client_name)
    return GelloPgReader(pool, url, schema=options.gello_schema_name())


async def _open_gello_redis(url: ConnectionUrl, options: ConnectOptions) -> Reader:
    from backends.gello.redis_reader import GelloRedisReader

    client = await _redis_client(url, options)
    return GelloRedisReader(client, url, prefixes=options.gello_prefix_list(),
                            discovery_budget_s=options.discovery_budget_s, store_prefix=options.store_prefix)


async def _open_pgboss(url: ConnectionUrl, options: ConnectOptions) -> Reader:
    from backends.postgres import open_pool
    from backends.pgboss.reader import PgBossReader

    pool = await open_pool(url, options.connect_timeout, options.op_timeout)
    reader = PgBossReader(pool, url, schema=options.schema)
    # the re-park sweep of a console-paused queue writes to pg-boss's tables: never in read-only mode
    reader.sweep_parked = not options.read_only
    if options.write_url:
        reader.write_url = parse(options.write_url)
    return reader


async def _open_bullmq(url: ConnectionUrl, options: ConnectOptions) -> Reader:
    from backends.bullmq.reader import BullMQReader

    client = await _redis_client(url, options)
    return BullMQReader(client, url, prefixes=options.prefixes or None, discovery_budget_s=options.discovery_budget_s,
                        store_prefix=options.store_prefix, use_discovery_cache=options.discovery_cache,
                        write_discovery_cache=not options.read_only)


async def _redis_client(url: ConnectionUrl, options: ConnectOptions):
    """A connected (PINGed) Redis client, or ConnectError naming the host (never the password)."""
    from backends.redis_client import open_client, redis_errors
    from backends.redis_topology import refuse_cluster

    try:
        client = open_client(url, options.connect_timeout, options.op_timeout, options.client_name)
    except ValueError as exc:
        message = str(exc)
        for secret in url.secrets:  # a client library's message may quote the URL
            message = message.replace(secret, "***")
        raise BadUrl(f"{message} ({url.redacted})") from None
    try:
        async with redis_errors(url):
            await call_with_timeout(client.ping(), options.connect_timeout, f"connecting to Redis at {url.host_label}")
            await call_with_timeout(refuse_cluster(client, url), options.connect_timeout,
                                    f"asking Redis at {url.host_label} for cluster mode")
    except asyncio.CancelledError:
        await client.aclose()
        raise
    except Exception as exc:
        await client.aclose()
        if isinstance(exc, ConnectError):
            raise
        raise ConnectError(str(exc)) from exc
    return client
