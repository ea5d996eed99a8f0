"""Opening a redis.asyncio client with timeouts, and turning its errors into contract errors."""
from __future__ import annotations

import contextlib
import re
from typing import Any, AsyncIterator, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis import exceptions as rexc

from backends.errors import BackendError, BackendTimeout, ConnectError, PermissionDenied
from backends.redis_topology import SENTINEL_SCHEMES, sentinel_client
from backends.urls import ConnectionUrl


def open_client(url: ConnectionUrl, connect_timeout: float, op_timeout: float,
                client_name: str = "queue-console") -> aioredis.Redis:
    """A client with bytes replies (queue data is untrusted and may not be UTF-8).

    Keys and arguments given as ``str`` are encoded with ``surrogateescape``: a queue name or job
    id read from Redis is decoded the same way (``backends.blob.to_key``), so a name that is not
    valid UTF-8 (``bull:Q\\xff:meta``) goes back to Redis as exactly its own bytes.

    No automatic retries: a dropped connection surfaces as an error, so that a bulk action
    reports exactly how far it got instead of silently re-sending a script. The client is
    named (CLIENT LIST shows ``queue-console``)."""
    if url.scheme in SENTINEL_SCHEMES:
        return sentinel_client(url, connect_timeout, op_timeout, dict(
            decode_responses=False, encoding_errors="surrogateescape", socket_connect_timeout=connect_timeout,
            socket_timeout=op_timeout, health_check_interval=0, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0), client_name=client_name))
    raw = url.connect_url  # userinfo percent-encoded: a raw '/', '?', '#' or '@' in a password is fine
    if url.scheme == "redis+unix":
        raw = "unix" + raw[len("redis+unix"):]
    return aioredis.Redis.from_url(
        raw,
        decode_responses=False,
        # key names read as bytes are kept as str with surrogateescape (a queue name need not be
        # UTF-8); encoding them the same way gives back the exact key instead of an error
        encoding_errors="surrogateescape",
        socket_connect_timeout=connect_timeout,
        socket_timeout=op_timeout,
        health_check_interval=0,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
        client_name=client_name,
    )


@contextlib.asynccontextmanager
async def redis_errors(url: ConnectionUrl) -> AsyncIterator[None]:
    """Map redis-py exceptions to one-line contract errors that name the host, not the password."""
    try:
        yield
    except rexc.AuthenticationError as exc:
        raise ConnectError(f"Redis at {url.host_label} rejected the credentials") from exc
    except rexc.TimeoutError as exc:
        raise BackendTimeout(f"Redis at {url.host_label} did not answer in time") from exc
    except TimeoutError as exc:  # builtin TimeoutError is an OSError: catch it first
        raise BackendTimeout(f"Redis at {url.host_label} did not answer in time") from exc
    except (rexc.ConnectionError, OSError) as exc:
        from backends.tls import verify_failure, verify_message

        tls = verify_failure(exc)
        if tls:
            raise ConnectError(verify_message("Redis", url.host_label, tls, "ssl_ca_certs")) from exc
        reason = str(exc).split("\n")[0]
        reason = reason.replace(url.raw, url.redacted).replace(url.connect_url, url.redacted)
        for secret in url.secrets:
            reason = reason.replace(secret, "***")
        raise ConnectError(f"cannot connect to Redis at {url.host_label}: {reason}") from exc
    except rexc.NoPermissionError as exc:
        raise PermissionDenied(permission_message(url, exc)) from exc
    except rexc.ResponseError as exc:
        raise BackendError(f"Redis at {url.host_label} answered with an error: {exc}") from exc
    except rexc.RedisError as exc:
        raise BackendError(f"Redis at {url.host_label}: {exc}") from exc


def pack_command(*args: str | bytes | int) -> bytes:
    """One command in RESP, as bytes. Queue names are str decoded with surrogateescape (keys need
    not be UTF-8), so they are encoded back the same way."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8", "surrogateescape")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


async def send_packed(client: aioredis.Redis, packed: bytes, replies: int,
                      each: Callable[[int, Any], None] | None = None) -> list:
    """Send commands packed in advance (pack_command) in one write and read ``replies`` replies:
    a pipeline without redis-py packing every argument again on every call. An error reply comes
    back in its place as a ResponseError instance (the stream stays in step); anything else (a
    timeout, a dropped connection, a cancellation) drops the connection, whose replies would be
    out of step. The client's socket timeout bounds every read. ``each(i, reply)``, if given, is
    called with every reply that is not an error as soon as it is read: the caller's work on the
    first replies overlaps the server's on the next ones (the server answers a long pipeline in
    pieces)."""
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(packed, check_health=False)
        out: list = []
        for i in range(replies):
            try:
                reply = await conn.read_response()
            except rexc.ResponseError as exc:
                out.append(exc)
                continue
            out.append(reply)
            if each is not None:
                each(i, reply)
        return out
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


async def pipelined(client: aioredis.Redis, commands: list[tuple], wrongtype_in_place: bool = False) -> list:
    """Many commands in one round trip, packed by pack_command and read by send_packed: for big
    pipelines of simple commands (a page's HMGETs), without redis-py's per-command overhead.
    Replies are raw (bytes, ints, lists); the first error reply is raised, after all are read.
    ``wrongtype_in_place``: a WRONGTYPE reply (a key of another type: that item's data is
    malformed) stays in its place as a ResponseError for the caller to handle per item; every
    other error (NOPERM, ...) is still raised."""
    if not commands:
        return []
    replies = await send_packed(client, b"".join(pack_command(*c) for c in commands), len(commands))
    for reply in replies:
        if isinstance(reply, Exception) and not (wrongtype_in_place and is_wrongtype(reply)):
            raise reply
    return replies


async def connected_client(url: ConnectionUrl, options, on_cluster: str | None = None) -> aioredis.Redis:
    """A connected (PINGed) client for ``options`` (a ``ConnectOptions``), or ConnectError naming
    the host (never the password); BadUrl when the URL's options are wrong. A Redis Cluster node is
    refused with one line (ConnectError, exit 3) that ends with ``on_cluster`` (why this reader
    cannot run there); a reader that can uses ``connect``."""
    client, cluster = await connect(url, options)
    if cluster:
        await client.aclose()
        raise ConnectError(f"Redis at {url.host_label} is a Redis Cluster node: "
                          f"{on_cluster or 'this reader cannot run on a cluster'} (docs/operations.md)")
    return client


async def connect(url: ConnectionUrl, options) -> tuple[aioredis.Redis, bool]:
    """``connected_client``'s client, and whether its server is a Redis Cluster node."""
    import asyncio

    from backends.contract import call_with_timeout
    from backends.errors import BadUrl
    from backends.redis_cluster import cluster_enabled

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
            cluster = url.scheme not in SENTINEL_SCHEMES and await call_with_timeout(
                cluster_enabled(client), options.connect_timeout, f"asking Redis at {url.host_label} for cluster mode")
    except asyncio.CancelledError:
        await client.aclose()
        raise
    except Exception as exc:
        await client.aclose()
        if isinstance(exc, ConnectError):
            raise
        raise ConnectError(str(exc)) from exc
    return client, cluster


def is_wrongtype(reply: object) -> bool:
    """A WRONGTYPE error reply: the command's key holds another type (the data is malformed)."""
    return isinstance(reply, rexc.ResponseError) and str(reply).startswith("WRONGTYPE")


_PIPELINE_ERROR = re.compile(r"Command # \d+ \((.*)\) of pipeline caused error: \(['\"](.*)['\"],\)$")


def permission_message(url: ConnectionUrl, exc: Exception) -> str:
    """One line: which user Redis refused and what it may not do (Redis's own NOPERM words)."""
    reason = str(exc).split("\n")[0].strip()
    piped = _PIPELINE_ERROR.match(reason)
    if piped:  # redis-py's pipeline wrapper: say Redis's words first, then the command
        reason = f"{piped.group(2)} ({piped.group(1)[:200]})"
    if reason.upper().startswith("NOPERM"):
        reason = reason[len("NOPERM"):].strip()
    return f"Redis at {url.host_label} refused {redis_user(url)}: {reason}"


def redis_user(url: ConnectionUrl) -> str:
    """``user NAME`` of the URL (never the password), or ``the default user``."""
    return f"user {url.username!r}" if url.username else "the default user"


async def pipelined_lenient(client: aioredis.Redis, commands: list[tuple]) -> list:
    """``pipelined``, except that a WRONGTYPE reply (a key of another type: data, not the server)
    comes back as None in its place; any other error reply is raised after all are read."""
    if not commands:
        return []
    replies = await send_packed(client, b"".join(pack_command(*c) for c in commands), len(commands))
    for reply in replies:
        if isinstance(reply, Exception) and not str(reply).startswith("WRONGTYPE"):
            raise reply
    return [None if isinstance(r, Exception) else r for r in replies]
