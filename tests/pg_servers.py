"""PostgreSQL for the tests: a fresh database on the machine's server (QC_TEST_POSTGRES_URL), or an
embedded pgserver (PyPI) started here.

With QC_TEST_POSTGRES_URL a database with a random name is created for the test session and
dropped afterwards; the server's other databases are never touched. Without it, pgserver starts a
PostgreSQL of the tests' own in a temporary directory (unix socket only) and stops it afterwards.
"""
from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class TestDatabase:
    """A database of this test session's own on a server given by URL."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.name = f"qc_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{self.name}"'))
        self.url = _with_database(server_url, self.name)

    def stop(self) -> None:
        try:
            asyncio.run(_admin(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        except Exception:
            pass


# the demo's embedded PostgreSQL (pgserver in a temporary directory, unix socket only)
from console.demo_pgboss import EmbeddedPostgres  # noqa: E402,F401
