"""Opening a redis.asyncio client with timeouts, and turning its errors into contract errors."""
from __future__ import annotations

import contextlib
import re
from typing import AsyncIterator
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis import exceptions as rexc

from backends.errors import BackendError, BackendTimeout, ConnectError, PermissionDenied
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
    raw = url.raw
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
        reason = str(exc).split("\n")[0]
        reason = reason.replace(url.raw, url.redacted)
        raise ConnectError(f"cannot connect to Redis at {url.host_label}: {reason}") from exc
    except rexc.NoPermissionError as exc:
        raise PermissionDenied(permission_message(url, exc)) from exc
    except rexc.ResponseError as exc:
        raise BackendError(f"Redis at {url.host_label} answered with an error: {exc}") from exc
    except rexc.RedisError as exc:
        raise BackendError(f"Redis at {url.host_label}: {exc}") from exc


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
    user = urlsplit(url.raw).username
    return f"user {unquote(user)!r}" if user else "the default user"
