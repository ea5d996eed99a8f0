"""Opening readers for a connection URL: which queue systems a server can hold, and connecting.

Redis URLs get the BullMQ reader (which also reads legacy Bull queues). PostgreSQL URLs get the
pg-boss reader (every pg-boss schema in the database, or the one ``--schema`` pins).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from backends.contract import Reader, call_with_timeout
from backends.errors import BadUrl, ConnectError
from backends.urls import ConnectionUrl, parse

REDIS_BACKENDS = ("bullmq",)
POSTGRES_BACKENDS: tuple[str, ...] = ("pgboss",)
ALL_BACKENDS = REDIS_BACKENDS + POSTGRES_BACKENDS


@dataclass
class ConnectOptions:
    backend: str | None = None  # force one system instead of detecting
    prefixes: list[str] = field(default_factory=list)  # BullMQ key prefixes; empty = discover all
    schema: str | None = None  # pg-boss schema
    connect_timeout: float = 5.0
    op_timeout: float = 10.0
    discovery_budget_s: float = 3.0
    store_prefix: str = "queue-console"  # where the console keeps audit, ledger, global-pause records
    client_name: str = "queue-console"  # CLIENT SETNAME, so operators can tell our connections apart


async def open_readers(raw_url: str, options: ConnectOptions) -> list[Reader]:
    """Connect (within ``connect_timeout``) and return one reader per queue system to look at."""
    url = parse(raw_url)
    if options.backend and options.backend not in ALL_BACKENDS:
        raise BadUrl(f"unknown backend {options.backend!r} (known: {', '.join(ALL_BACKENDS)})")
    if url.kind == "redis":
        if options.backend and options.backend not in REDIS_BACKENDS:
            raise BadUrl(f"backend {options.backend!r} does not live in Redis ({url.redacted})")
        return [await _open_bullmq(url, options)]
    if options.backend and options.backend not in POSTGRES_BACKENDS:
        raise BadUrl(f"backend {options.backend!r} does not live in PostgreSQL ({url.redacted})")
    return [await _open_pgboss(url, options)]


async def _open_pgboss(url: ConnectionUrl, options: ConnectOptions) -> Reader:
    from backends.pgboss.pg import open_pool
    from backends.pgboss.reader import PgBossReader

    pool = await open_pool(url, options.connect_timeout, options.op_timeout)
    return PgBossReader(pool, url, schema=options.schema)


async def _open_bullmq(url: ConnectionUrl, options: ConnectOptions) -> Reader:
    from backends.bullmq.reader import BullMQReader
    from backends.redis_client import open_client, redis_errors

    try:
        client = open_client(url, options.connect_timeout, options.op_timeout, options.client_name)
    except ValueError as exc:  # redis-py rejects a query option, e.g. ?socket_timeout=abc
        raise BadUrl(f"{exc} ({url.redacted})") from None
    try:
        async with redis_errors(url):
            await call_with_timeout(client.ping(), options.connect_timeout, f"connecting to Redis at {url.host_label}")
    except asyncio.CancelledError:
        await client.aclose()
        raise
    except Exception as exc:
        await client.aclose()
        if isinstance(exc, ConnectError):
            raise
        raise ConnectError(str(exc)) from exc
    return BullMQReader(client, url, prefixes=options.prefixes or None, discovery_budget_s=options.discovery_budget_s,
                        store_prefix=options.store_prefix)
