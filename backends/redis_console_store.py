"""The console's own records in Redis, under a key prefix of its own (default ``queue-console``).

- ``<p>:audit``  stream, one entry per mutation (field ``record``: JSON), trimmed to ~100k entries
- ``<p>:paused`` hash, queue key -> JSON {by, at}: queues paused by a global pause
- ``<p>:ledger`` stream, one entry per manual requeue (field ``record``: JSON), trimmed to ~1M
- ``<p>:discovered:<spec>`` string with a TTL: BullMQ's kept scan (backends/bullmq/discovery.py)

Nothing here is a queue library's key; BullMQ discovery never matches them (no ``:meta``/``:id``).
On a Redis Cluster the prefix carries a hash tag (``{queue-console}``: ``redis_cluster.tagged``), so
the keys share one slot and live on one master (backends/bullmq/cluster.py).
"""
from __future__ import annotations

import contextlib
import json
import time
from typing import Any, AsyncIterator

import redis.asyncio as aioredis
from redis import exceptions as rexc

from backends.contract import ConsoleStore
from backends.errors import BackendError, BackendTimeout, ConnectError, PermissionDenied
from backends.redis_client import permission_message
from backends.urls import ConnectionUrl

AUDIT_MAXLEN = 100_000
LEDGER_MAXLEN = 1_000_000


class RedisConsoleStore(ConsoleStore):
    def __init__(self, client: aioredis.Redis, prefix: str = "queue-console", url: ConnectionUrl | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.url = url  # names the ACL user in a permission error
        self.location = f"Redis keys {prefix}:audit, {prefix}:paused, {prefix}:ledger"

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """redis-py errors as contract errors (a dropped connection must not escape as a raw
        ConnectionError: the action layer reports it and writes the audit record later)."""
        try:
            yield
        except rexc.NoPermissionError as exc:  # an ACL user that may not write: one line naming it
            if self.url is not None:
                raise PermissionDenied(permission_message(self.url, exc)) from exc
            raise PermissionDenied(f"Redis at {self._where()} refused: {exc}") from exc
        except (rexc.TimeoutError, TimeoutError) as exc:
            raise BackendTimeout(f"Redis at {self._where()} did not answer in time") from exc
        except (rexc.ConnectionError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConnectError(f"cannot connect to Redis at {self._where()}: {reason}") from exc
        except rexc.RedisError as exc:
            raise BackendError(f"Redis at {self._where()}: {exc}") from exc

    def _where(self) -> str:
        """host:port or socket path, never a password."""
        pool = getattr(self.client, "connection_pool", None)
        if getattr(pool, "service_name", None):  # Sentinel (backends/redis_topology.py)
            return f"the master of {pool.service_name} (sentinel)"
        kw = getattr(pool, "connection_kwargs", {}) or {}
        if kw.get("path"):
            return str(kw["path"])
        return f"{kw.get('host', '?')}:{kw.get('port', '?')}"

    async def audit_append(self, record: dict[str, Any]) -> str:
        async with self._errors():
            entry_id = await self.client.xadd(self._k("audit"), {"record": json.dumps(record, default=str)},
                                              maxlen=AUDIT_MAXLEN, approximate=True)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def audit_read(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self._errors():
            entries = await self.client.xrevrange(self._k("audit"), count=limit)
        return [_decode(entry_id, fields) for entry_id, fields in entries]

    async def paused_add(self, queue_keys: list[str], by: str) -> None:
        if queue_keys:
            value = json.dumps({"by": by, "at": int(time.time() * 1000)})
            async with self._errors():
                await self.client.hset(self._k("paused"), mapping={k: value for k in queue_keys})

    async def paused_remove(self, queue_keys: list[str]) -> None:
        if queue_keys:
            async with self._errors():
                await self.client.hdel(self._k("paused"), *queue_keys)

    async def paused_list(self) -> dict[str, str]:
        async with self._errors():
            raw = await self.client.hgetall(self._k("paused"))
        return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "replace") for k, v in raw.items()}

    async def ledger_append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            pipe.xadd(self._k("ledger"), {"record": json.dumps(record, default=str)},
                      maxlen=LEDGER_MAXLEN, approximate=True)
        async with self._errors():
            await pipe.execute()

    async def ledger_read(self, since_ms: int, limit: int = 100_000) -> list[dict[str, Any]]:
        async with self._errors():
            entries = await self.client.xrange(self._k("ledger"), min=f"{max(since_ms, 0)}-0", count=limit)
        return [_decode(entry_id, fields) for entry_id, fields in entries]


def _decode(entry_id: bytes, fields: dict) -> dict[str, Any]:
    raw = fields.get(b"record", b"{}")
    try:
        record = json.loads(raw)
    except ValueError:
        record = {"unreadable": raw.decode("utf-8", "replace")}
    if not isinstance(record, dict):
        record = {"value": record}
    record["_id"] = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return record
