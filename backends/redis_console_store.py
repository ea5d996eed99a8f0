"""The console's own records in Redis, under a key prefix of its own (default ``queue-console``).

- ``<p>:audit``  stream, one entry per mutation (field ``record``: JSON), trimmed to ~100k entries
- ``<p>:paused`` hash, queue key -> JSON {by, at}: queues paused by a global pause
- ``<p>:ledger`` stream, one entry per manual requeue (field ``record``: JSON), trimmed to ~1M

Nothing here is a queue library's key; BullMQ discovery never matches them (no ``:meta``/``:id``).
"""
from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import redis.asyncio as aioredis

from backends.contract import ConsoleStore
from backends.redis_client import redis_errors
from backends.urls import ConnectionUrl

AUDIT_MAXLEN = 100_000
LEDGER_MAXLEN = 1_000_000


class RedisConsoleStore(ConsoleStore):
    def __init__(self, client: aioredis.Redis, prefix: str = "queue-console", url: ConnectionUrl | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.url = url
        self.location = f"Redis keys {prefix}:audit, {prefix}:paused, {prefix}:ledger"

    def _errors(self):
        """Redis errors as one-line contract errors (NOPERM: PermissionDenied naming the user)."""
        return redis_errors(self.url) if self.url is not None else contextlib.nullcontext()

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

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
        async with self._errors():
            if queue_keys:
                value = json.dumps({"by": by, "at": int(time.time() * 1000)})
                await self.client.hset(self._k("paused"), mapping={k: value for k in queue_keys})

    async def paused_remove(self, queue_keys: list[str]) -> None:
        async with self._errors():
            if queue_keys:
                await self.client.hdel(self._k("paused"), *queue_keys)

    async def paused_list(self) -> dict[str, str]:
        async with self._errors():
            raw = await self.client.hgetall(self._k("paused"))
            return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "replace") for k, v in raw.items()}

    async def ledger_append(self, records: list[dict[str, Any]]) -> None:
        async with self._errors():
            if not records:
                return
            pipe = self.client.pipeline(transaction=False)
            for record in records:
                pipe.xadd(self._k("ledger"), {"record": json.dumps(record, default=str)},
                          maxlen=LEDGER_MAXLEN, approximate=True)
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
