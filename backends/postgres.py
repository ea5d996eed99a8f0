"""asyncpg connections for the pg-boss reader: a small read-only pool and error mapping."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from backends.errors import BackendError, BackendTimeout, ConnectError
from backends.urls import ConnectionUrl

APPLICATION_NAME = "queue-console"


def scrub(message: str, url: ConnectionUrl) -> str:
    """One line, with any password of the URL removed."""
    text = " ".join(str(message).split())
    for secret in url.secrets:  # as typed, decoded and percent-encoded
        text = text.replace(secret, "***")
    return text


def map_error(exc: BaseException, url: ConnectionUrl) -> BackendError:
    import asyncpg

    if isinstance(exc, BackendError):
        return exc
    from backends.tls import verify_failure, verify_message

    tls = verify_failure(exc)
    if tls:
        return ConnectError(verify_message("PostgreSQL", url.host_label, scrub(tls, url), "sslrootcert"))
    if isinstance(exc, asyncpg.QueryCanceledError):
        return BackendTimeout(f"PostgreSQL at {url.host_label}: statement timed out ({scrub(exc, url)})")
    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
                        asyncpg.InvalidCatalogNameError, asyncpg.CannotConnectNowError,
                        asyncpg.TooManyConnectionsError)):
        return ConnectError(f"cannot connect to PostgreSQL at {url.host_label}: {scrub(exc, url)}")
    if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)):
        return BackendError(f"PostgreSQL at {url.host_label}: {scrub(exc, url)}")
    if isinstance(exc, asyncpg.PostgresError):
        return BackendError(f"PostgreSQL at {url.host_label}: {scrub(exc, url)}")
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or type(exc).__name__)
        return ConnectError(f"cannot connect to PostgreSQL at {url.host_label}: {scrub(reason, url)}")
    return BackendError(f"PostgreSQL at {url.host_label}: {type(exc).__name__}: {scrub(exc, url)}")


@contextlib.asynccontextmanager
async def pg_errors(url: ConnectionUrl) -> AsyncIterator[None]:
    try:
        yield
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        mapped = map_error(exc, url)
        if mapped is exc:
            raise
        raise mapped from None


def quote_ident(name: str) -> str:
    """A PostgreSQL quoted identifier (what ``quote_ident``/``format('%I')`` produce, always quoted)."""
    if "\x00" in name:
        raise ValueError("identifier contains NUL")
    return '"' + name.replace('"', '""') + '"'


async def _keep_session(conn) -> None:
    """Pool ``reset``: nothing beyond asyncpg's own rollback of an open transaction.

    The console's sessions never change session state (``SET LOCAL`` only, transaction-scoped
    advisory locks, no LISTEN, no cursors outside a transaction), so asyncpg's default reset query
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) would only add one round trip to
    every pooled statement: measured, it was half of the statements a pg-boss refresh or page sent."""


async def create_pool(url: ConnectionUrl, connect_timeout: float, op_timeout: float, application_name: str, *,
                      read_only: bool, min_size: int, max_size: int):
    """An asyncpg pool whose every session has a ``statement_timeout`` (and a ``lock_timeout`` when
    it may write); ``idle_in_transaction_session_timeout`` ends a transaction left open by a stalled
    client, so row locks are never held for long. Read-only pools are enforced by PostgreSQL.

    ``jit = off``: the console's statements are short, index-driven reads and batch writes; with
    JIT on, PostgreSQL compiled the 100-queue counts statement on every new session (3.6 s on a
    2M-row pg-boss table, docs/performance.md) for a statement that runs in milliseconds.
    ``max_parallel_workers_per_gather = 0``: a monitoring console takes no worker processes from the
    database it watches, and for these statements starting workers cost more than it saved
    (measured: 95 ms instead of 29 ms for a 100-queue pg-boss v10 count)."""
    import asyncpg

    statement_ms = max(int(op_timeout * 1000 * 0.8), 100)
    settings = {
        "application_name": application_name,
        "statement_timeout": str(statement_ms),
        "idle_in_transaction_session_timeout": str(max(statement_ms * 2, 1000)),
        "jit": "off",
        "max_parallel_workers_per_gather": "0",
    }
    if read_only:
        settings["default_transaction_read_only"] = "on"
    else:
        settings["lock_timeout"] = str(statement_ms)
    from backends import postgres_topology as topo

    async def attempt(pooler: bool):
        kwargs = topo.pooler_kwargs(settings) if pooler else {"server_settings": settings}
        return await asyncio.wait_for(
            asyncpg.create_pool(dsn=url.connect_url, min_size=min_size, max_size=max_size, timeout=connect_timeout,
                                command_timeout=op_timeout, reset=_keep_session, **kwargs),
            connect_timeout + 1,
        )

    async with pg_errors(url):
        try:
            pooler = topo.known_mode(url.raw)
            if pooler is not None:
                return await attempt(pooler)
            pool = None
            try:
                pool = await attempt(False)
                # settings accepted at startup: did they reach the server? (a pooler may drop them)
                applied = await asyncio.wait_for(topo.settings_applied(pool, settings), connect_timeout + 1)
            except Exception as exc:
                if pool is not None:
                    pool.terminate()
                if not topo.refuses_startup_parameters(exc):
                    raise
                applied = False
            topo.remember_mode(url.raw, not applied)
            if applied:
                return pool
            if pool is not None:
                pool.terminate()
            return await attempt(True)
        except ValueError as exc:  # asyncpg rejects a DSN option
            from backends.errors import BadUrl
            from backends.tls import verify_failure

            if verify_failure(exc):  # ssl.SSLCertVerificationError is a ValueError too
                raise map_error(exc, url) from None

            raise BadUrl(f"{scrub(exc, url)} ({url.redacted})") from None


async def open_pool(url: ConnectionUrl, connect_timeout: float, op_timeout: float):
    """The readers' pool: at most 3 connections, every session read-only."""
    return await create_pool(url, connect_timeout, op_timeout, APPLICATION_NAME, read_only=True, min_size=1,
                             max_size=3)


async def close_pool(pool) -> None:
    """Close an asyncpg pool, waiting at most 5 s for its connections, else terminating them."""
    if pool is None:
        return
    try:
        await asyncio.wait_for(pool.close(), 5)
    except Exception:
        pool.terminate()


async def open_write_pool(url: ConnectionUrl, connect_timeout: float, op_timeout: float,
                          application_name: str = APPLICATION_NAME + " write", max_size: int = 2):
    """A writable pool, opened only when a mutation runs (the read pool stays read-only)."""
    return await create_pool(url, connect_timeout, op_timeout, application_name, read_only=False, min_size=0,
                             max_size=max_size)
