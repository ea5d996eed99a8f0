"""Opening the BullMQ-on-PostgreSQL reader from the registry, and detecting it beside pg-boss."""
from __future__ import annotations

from backends.bullmq_postgres.layout import SCHEMAS_SQL
from backends.contract import Reader, call_with_timeout
from backends.postgres import open_pool, pg_errors
from backends.urls import ConnectionUrl


async def present(pool, url: ConnectionUrl, schema: str | None, timeout: float) -> bool:
    """True when the database has a BullMQ schema (``schema`` pins one); one catalog query."""
    async with pg_errors(url):
        rows = await call_with_timeout(pool.fetch(SCHEMAS_SQL, schema), timeout, "looking for BullMQ schemas")
    return bool(rows)


async def open_reader(url: ConnectionUrl, connect_timeout: float, op_timeout: float, schema: str | None) -> Reader:
    from backends.bullmq_postgres.reader import BullMQPgReader

    pool = await open_pool(url, connect_timeout, op_timeout)
    reader = BullMQPgReader(pool, url, schema=schema)
    reader.writer.connect_timeout, reader.writer.op_timeout = connect_timeout, op_timeout
    return reader
