"""Opening the Gello-on-PostgreSQL reader from the registry, and detecting Gello's tables beside
pg-boss (one catalog query)."""
from __future__ import annotations

from backends.gello_postgres.layout import COLUMNS_SQL, looks_like_gello
from backends.postgres import create_pool
from backends.urls import ConnectionUrl


async def detect(pool, schema: str) -> bool:
    """Does ``schema`` look like it holds Gello tables?"""
    return looks_like_gello(await pool.fetch(COLUMNS_SQL, schema))


async def open_pool(url: ConnectionUrl, connect_timeout: float, op_timeout: float, application_name: str):
    """The reading pool: every session read-only (retry and purge open a writable pool of their
    own on first use); every statement has a timeout."""
    return await create_pool(url, connect_timeout, op_timeout, application_name, read_only=True, min_size=1,
                             max_size=3)


async def open_reader(url: ConnectionUrl, options):
    from backends.gello_postgres.declaration import gello_schema
    from backends.gello_postgres.reader import GelloPgReader

    pool = await open_pool(url, options.connect_timeout, options.op_timeout, options.client_name)
    return GelloPgReader(pool, url, schema=gello_schema(options), store_schema=options.store_schema,
                         connect_timeout=options.connect_timeout, op_timeout=options.op_timeout,
                         application_name=options.client_name)
