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


async def replica_lag_s(pool, timeout: float) -> float | None:
    """Seconds since the last transaction replayed on a standby (None on a primary, or when nothing
    was replayed yet). On an idle primary this grows although nothing is missing; it is what
    PostgreSQL can tell from the standby alone."""
    row = await asyncio.wait_for(pool.fetchrow(
        "SELECT pg_is_in_recovery() AS standby,"
        " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag"), timeout)
    if not row["standby"] or row["lag"] is None:
        return None
    return max(float(row["lag"]), 0.0)
