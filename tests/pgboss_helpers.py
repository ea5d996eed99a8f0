"""Test helpers for pg-boss schemas without Node.

``tests/pgboss_ddl/v{10,11,12}.sql`` are ``pg_dump --inserts`` of fresh installs made by the real
pg-boss 10.4.2, 11.1.2 and 12.38.0 (schema name replaced by ``__SCHEMA__``). The tests install
them under a schema of their own and write rows as plain SQL (the test is the writer here; the
reader under test never writes).
"""
from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import asyncpg

DDL_DIR = Path(__file__).resolve().parent / "pgboss_ddl"
VERSIONS = {"v10": 24, "v11": 26, "v12": 46}


def new_schema(tag: str) -> str:
    return f"qct_{tag}_{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def admin(url: str):
    conn = await asyncpg.connect(url, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def install(url: str, major: str, schema: str) -> None:
    sql = (DDL_DIR / f"{major}.sql").read_text().replace("__SCHEMA__", schema)
    async with admin(url) as conn:
        await conn.execute(sql)


async def drop(url: str, schema: str) -> None:
    async with admin(url) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def create_queue(conn, schema: str, name: str, options: dict | None = None) -> None:
    opts = {"policy": "standard", **(options or {})}
    await conn.execute(f'SELECT "{schema}".create_queue($1, $2)', name, json.dumps(opts))


async def add_job(conn, schema: str, name: str, state: str = "created", *, data=None, priority: int = 0,
                  start_after_s: float = -1, created_s: float = -10, started_s: float | None = None,
                  completed_s: float | None = None, output=None, retry_count: int = 0, retry_limit: int = 2,
                  singleton_key: str | None = None, policy: str | None = "standard") -> str:
    """One job row, times relative to now() in seconds."""
    job_id = str(uuid.uuid4())
    await conn.execute(
        f'''INSERT INTO "{schema}".job (id, name, state, data, priority, start_after, created_on, started_on,
                                        completed_on, output, retry_count, retry_limit, singleton_key, policy)
            VALUES ($1::uuid, $2, $3::text::"{schema}".job_state, $4::jsonb, $5,
                    now() + make_interval(secs => $6), now() + make_interval(secs => $7),
                    now() + make_interval(secs => $8), now() + make_interval(secs => $9), $10::jsonb,
                    $11, $12, $13, $14)''',
        job_id, name, state, json.dumps(data if data is not None else {"n": 1}), priority, start_after_s,
        created_s, started_s, completed_s, json.dumps(output) if output is not None else None,
        retry_count, retry_limit, singleton_key, policy)
    return job_id


@contextlib.asynccontextmanager
async def non_owner(url: str, schema: str, store: str):
    """A URL for a login role that may read and write pg-boss's tables in ``schema`` (and create the
    console's schema ``store``) but does not own the job table, so the pause trigger is out of its
    reach. Its sessions, ``store`` and the role are dropped afterwards."""
    role = f"qct_role_{uuid.uuid4().hex[:8]}"
    async with admin(url) as conn:
        db = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        await conn.execute(f'GRANT CREATE ON DATABASE "{db}" TO {role}')
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        await conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}')
    head, _, tail = url.partition("://")
    try:
        yield f"{head}://{role}@{tail.split('@', 1)[1]}"
    finally:
        async with admin(url) as conn:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{store}" CASCADE')
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")


class StatementLog:
    """Every statement sent on the connections of pools opened while it is installed (an asyncpg
    query logger on each connection): ``texts`` in order, each whitespace-folded."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, record) -> None:
        self.texts.append(" ".join(str(record.query).split()))

    def install(self, monkeypatch) -> "StatementLog":
        orig = asyncpg.create_pool

        def create_pool(*args, **kwargs):
            user_init = kwargs.get("init")

            async def init(conn):
                conn.add_query_logger(self)
                if user_init is not None:
                    await user_init(conn)

            kwargs["init"] = init
            return orig(*args, **kwargs)

        monkeypatch.setattr(asyncpg, "create_pool", create_pool)
        return self

    async def take(self) -> list[str]:
        """The statements logged so far (loggers run from call_soon), and a fresh start."""
        import asyncio

        await asyncio.sleep(0)
        await asyncio.sleep(0)
        out, self.texts = self.texts, []
        return out
