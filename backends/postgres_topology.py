"""PostgreSQL behind a transaction pooler (PgBouncer) and on a hot standby.

Direct connections get the console's session settings (read-only guard, statement timeout, ...) as
startup parameters (``backends.postgres.create_pool``). PgBouncer refuses such startup parameters
("unsupported startup parameter"), or, configured with ``ignore_startup_parameters``, drops them
silently, which would drop the read-only guard with them. In transaction pooling a session setting
would also leak to other clients of the same server connection, and a named prepared statement may
not exist on the next transaction's server connection.

So a pool is opened in one of two modes, decided once per URL by ``pooler_mode``:

* direct: settings as startup parameters (checked on the server after the connect);
* pooler: only ``application_name`` at startup, no prepared-statement cache
  (``statement_cache_size=0``), and every transaction (an explicit one, or the one wrapped around a
  single statement) starts with ``SET LOCAL`` of the same settings, including
  ``transaction_read_only = on`` for read pools: the guard holds per transaction.
"""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction

# url.raw -> True (pooler) / False (direct), decided by the first pool opened for that URL
_MODES: dict[str, bool] = {}


def _set_local(settings: dict[str, str]) -> str:
    parts = []
    for name, value in settings.items():
        if name == "application_name":
            continue  # a startup parameter PgBouncer accepts and keeps per client
        if name == "default_transaction_read_only":
            name = "transaction_read_only"  # the current transaction, not the next ones
        parts.append(f"SET LOCAL {name} = '{value}'")
    return "; ".join(parts)


class _GuardedTransaction(Transaction):
    async def start(self) -> None:
        con = self._connection
        top = con._top_xact is None
        con._qc_opening = True
        try:
            await super().start()
        finally:
            con._qc_opening = False
        if top and con._qc_locals:
            try:
                await con.execute(con._qc_locals)
            except BaseException:
                await super().rollback()
                raise


class PoolerConnection(asyncpg.Connection):
    """An asyncpg connection whose every transaction carries the pool's settings as ``SET LOCAL``;
    a statement outside a transaction runs in a transaction of its own."""

    _qc_locals = ""
    _qc_opening = False

    def transaction(self, *, isolation=None, readonly=False, deferrable=False):
        return _GuardedTransaction(self, isolation, readonly, deferrable)

    def _qc_bare(self) -> bool:
        return not self._qc_opening and not self.is_in_transaction()

    async def execute(self, query: str, *args, timeout: float | None = None) -> str:
        if self._qc_bare():
            async with self.transaction():
                return await super().execute(query, *args, timeout=timeout)
        return await super().execute(query, *args, timeout=timeout)

    async def _execute(self, query, args, limit, timeout, **kwargs):
        if self._qc_bare():
            async with self.transaction():
                return await super()._execute(query, args, limit, timeout, **kwargs)
        return await super()._execute(query, args, limit, timeout, **kwargs)

    async def _executemany(self, query, args, timeout, **kwargs):
        if self._qc_bare():
            async with self.transaction():
                return await super()._executemany(query, args, timeout, **kwargs)
        return await super()._executemany(query, args, timeout, **kwargs)


def refuses_startup_parameters(exc: BaseException) -> bool:
    """PgBouncer's answer to a startup parameter it does not track."""
    return "unsupported startup parameter" in str(exc)


async def settings_applied(pool, settings: dict[str, str]) -> bool:
    """Did the startup parameters reach the server? (PgBouncer with ``ignore_startup_parameters``
    accepts and drops them.) ``statement_timeout`` is always among them."""
    value = await pool.fetchval("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
    return value == settings["statement_timeout"]


def pooler_kwargs(settings: dict[str, str]) -> dict[str, Any]:
    """create_pool arguments for a pool behind a transaction pooler."""
    locals_ = _set_local(settings)

    async def init(conn) -> None:
        conn._qc_locals = locals_

    return {
        "server_settings": {"application_name": settings["application_name"]},
        "statement_cache_size": 0,
        "connection_class": PoolerConnection,
        "init": init,
    }


def known_mode(raw_url: str) -> bool | None:
    return _MODES.get(raw_url)


def remember_mode(raw_url: str, pooler: bool) -> None:
    _MODES[raw_url] = pooler


async def in_recovery(pool, timeout: float) -> bool:
    """``pg_is_in_recovery()``: the server is a hot standby (read-only replica)."""
    return bool(await asyncio.wait_for(pool.fetchval("SELECT pg_is_in_recovery()"), timeout))


async def ensure_primary(pool, url, timeout: float) -> None:
    """Mutations need the primary: on a hot standby say so (one line) instead of failing mid-way."""
    from backends.errors import Unsupported
    from backends.postgres import pg_errors

    async with pg_errors(url):
        standby = await in_recovery(pool, timeout)
    if standby:
        raise Unsupported(f"PostgreSQL at {url.host_label} is a hot standby (read-only replica): mutations need "
                          "the primary; give its URL with --write-url (or write_url in the config)")


# Lag of a standby: 0 when everything received is replayed (an idle primary sends nothing, and the
# time since the last replayed transaction would grow although nothing is missing), else the age of
# the last replayed transaction; plus the received-but-not-replayed WAL in bytes.
_STANDBY_SQL = """
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS lag,
       CASE WHEN pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END::int8 AS behind
"""


async def standby_state(readers: list, timeout: float) -> dict[str, Any] | None:
    """``{"standby": bool, "replica_lag_s": float | None}`` of the first PostgreSQL reader's server,
    or None when no reader reads PostgreSQL."""
    for reader in readers:
        pool = getattr(reader, "pool", None)
        if pool is None or not hasattr(pool, "fetchrow") or getattr(reader, "url", None) is None \
                or reader.url.kind != "postgres":
            continue
        from backends.postgres import pg_errors

        async with pg_errors(reader.url):
            row = await asyncio.wait_for(pool.fetchrow(_STANDBY_SQL), timeout)
        standby = bool(row["standby"])
        lag = max(float(row["lag"]), 0.0) if standby and row["lag"] is not None else None
        behind = int(row["behind"]) if standby and row["behind"] is not None else None
        return {"standby": standby, "replica_lag_s": lag, "replay_bytes_behind": behind}
    return None
