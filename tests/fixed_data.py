"""A BullMQ queue written key by key in BullMQ v6's layout with fixed ids and timestamps.

For screens whose pixels must not change between runs (SVG snapshots). Whether the layout is
right is checked elsewhere against the real libraries (tests/test_interop_*).
"""
from __future__ import annotations

import json

import redis

T0 = 1_790_000_000_000  # 2026-09-21, a fixed instant


def write_fixed_queue(client: redis.Redis, prefix: str, name: str, failed: int = 12, completed: int = 8,
                      waiting: int = 5, delayed: int = 3, paused: bool = False) -> None:
    base = f"{prefix}:{name}"
    pipe = client.pipeline(transaction=False)
    pipe.hset(f"{base}:meta", mapping={"opts.maxLenEvents": "10000", "version": "bullmq:6.7.0",
                                       **({"paused": "1"} if paused else {})})
    n = 0

    def job(fields: dict) -> str:
        """Write job n+1; ``fields`` values that are ints are offsets (ms) from its timestamp."""
        nonlocal n
        n += 1
        jid = str(n)
        fields = {k: str(T0 + n * 1000 + v) if isinstance(v, int) else v for k, v in fields.items()}
        data = {"customer": 1000 + n, "note": "fixed"}
        pipe.hset(f"{base}:{jid}", mapping={"name": "send", "data": json.dumps(data),
                                            "opts": json.dumps({"attempts": 3}), "timestamp": str(T0 + n * 1000),
                                            "delay": "0", "priority": "0", **fields})
        return jid

    for i in range(waiting):
        pipe.lpush(f"{base}:wait", job({}))
    for i in range(delayed):
        jid = job({"delay": "60000"})
        pipe.zadd(f"{base}:delayed", {jid: (T0 + n * 1000 + 60000) * 4096 + n})
    for i in range(completed):
        jid = job({"processedOn": 50, "finishedOn": 250,
                   "atm": "1", "ats": "1", "returnvalue": json.dumps({"ok": True})})
        pipe.zadd(f"{base}:completed", {jid: T0 + n * 1000 + 250})
    for i in range(failed):
        reason = f"SMTP 550 mailbox unavailable for user {4000 + i}" if i % 3 else "timeout after 5000ms"
        jid = job({"processedOn": 50, "finishedOn": 90,
                   "atm": "3", "ats": "3", "failedReason": reason,
                   "stacktrace": json.dumps([f"Error: attempt {k}\n    at send (mailer.js:{10 + k}:5)" for k in (1, 2, 3)])})
        pipe.zadd(f"{base}:failed", {jid: T0 + n * 1000 + 90})
        pipe.rpush(f"{base}:{jid}:logs", "connecting", f"attempt 3 of 3 for user {4000 + i}")
    pipe.set(f"{base}:id", str(n))
    pipe.execute()
