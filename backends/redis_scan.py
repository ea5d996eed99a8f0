"""Looking through Redis keys: glob escaping for SCAN MATCH, and the time-boxed SCAN loop.

BullMQ's discovery keeps its own SCAN cursor between paced steps (``backends.bullmq.discovery``);
every other loop over the keyspace is a ``KeyScan``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterator

import redis.asyncio as aioredis

SCAN_COUNT = 1000


def glob_escape(text: str) -> str:
    """Escape Redis glob specials so a prefix is matched literally by SCAN MATCH."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


@dataclass
class KeyScan:
    """One pass of ``SCAN MATCH match COUNT count`` that stops after the step in which
    ``deadline`` (time.monotonic) passes; ``complete`` tells whether the pass reached the end."""

    client: aioredis.Redis
    match: str
    count: int = SCAN_COUNT
    deadline: float | None = None
    complete: bool = False

    async def batches(self) -> AsyncIterator[list[bytes]]:
        cursor = 0
        while True:
            cursor, keys = await self.client.scan(cursor=cursor, match=self.match, count=self.count)
            yield keys
            if cursor == 0:
                self.complete = True
                return
            if self.deadline is not None and time.monotonic() > self.deadline:
                return
