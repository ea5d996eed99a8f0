"""A reference Gello producer and worker, written from docs/backends/gello.md (tests only).

Redis: producers LPUSH onto ``pending`` (or ZADD ``scheduled`` by run time); a worker first moves
due ``scheduled`` jobs to ``pending``, then LMOVEs the tail of ``pending`` to ``processing``
(BRPOPLPUSH semantics); success LREMs the member from ``processing``; a failure replaces it with a
record whose ``attempts`` grew by one, onto ``scheduled`` (retry later, ``lastError`` set) or, when
the attempts are used up, onto ``dead`` (score = failure ms, ``failedAt``/``lastError`` set).
Idempotency keys: ``<prefix>:idempotency:<key>`` = {status: processing|completed, ...} with a TTL.

PostgreSQL: the claim UPDATE of gello.md verbatim; success deletes the row; a retry sets
``started_at = NULL, scheduled_at, last_error``; a final failure inserts into ``failed_jobs`` and
deletes from ``jobs`` in one transaction.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

IDEMPOTENCY_TTL_S = 3600

PROMOTE_LUA = """
local moved = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)) do
  if redis.call('ZREM', KEYS[1], m) == 1 then redis.call('LPUSH', KEYS[2], m); moved = moved + 1 end
end
return moved
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None = None) -> str:
    ms = now_ms() if ms is None else ms
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def dumps(job: dict) -> bytes:
    return json.dumps(job, separators=(",", ":")).encode()


class RedisGello:
    """Producer + worker on a redis.asyncio client (bytes replies)."""

    def __init__(self, client, prefix: str = "gello") -> None:
        self.client = client
        self.prefix = prefix
        self._promote = client.register_script(PROMOTE_LUA)

    def key(self, queue: str, suffix: str) -> str:
        return f"{self.prefix}:queue:{queue}:{suffix}"

    def idem_key(self, key: str) -> str:
        return f"{self.prefix}:idempotency:{key}"

    # ------------------------------------------------------------------ producer
    async def enqueue(self, queue: str, job_type: str = "task", payload: Any = None, priority: str = "normal",
                      max_attempts: int = 3, idempotency_key: str | None = None, delay_ms: int = 0,
                      job_id: str | None = None) -> dict:
        t = now_ms()
        job = {
            "meta": {"id": job_id or uuid.uuid4().hex, "queue": queue, "jobType": job_type, "priority": priority,
                     "attempts": 0, "maxAttempts": max_attempts, "createdAt": iso(t), "scheduledAt": iso(t + delay_ms),
                     "startedAt": None, "completedAt": None, "failedAt": None, "idempotencyKey": idempotency_key},
            "payload": payload, "lastError": None,
        }
        if delay_ms > 0:
            await self.client.zadd(self.key(queue, "scheduled"), {dumps(job): t + delay_ms})
        else:
            await self.client.lpush(self.key(queue, "pending"), dumps(job))
        return job

    # ------------------------------------------------------------------ worker
    async def claim(self, queue: str) -> tuple[bytes, dict] | None:
        await self._promote(keys=[self.key(queue, "scheduled"), self.key(queue, "pending")], args=[now_ms()])
        raw = await self.client.lmove(self.key(queue, "pending"), self.key(queue, "processing"), "RIGHT", "LEFT")
        if raw is None:
            return None
        job = json.loads(raw)
        key = job["meta"].get("idempotencyKey")
        if key:
            await self.client.set(self.idem_key(key), json.dumps({"status": "processing", "acquiredAt": iso()}),
                                  ex=IDEMPOTENCY_TTL_S)
        return raw, job

    async def complete(self, queue: str, raw: bytes, job: dict) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.key(queue, "processing"), 1, raw)
        key = job["meta"].get("idempotencyKey")
        if key:
            pipe.set(self.idem_key(key), json.dumps({"status": "completed", "completedAt": iso()}), ex=IDEMPOTENCY_TTL_S)
        await pipe.execute()

    async def fail(self, queue: str, raw: bytes, job: dict, error: str, retry_delay_ms: int = 0) -> str:
        """Returns "scheduled" (retry later) or "dead"."""
        t = now_ms()
        job = json.loads(json.dumps(job))
        meta = job["meta"]
        meta["attempts"] = int(meta.get("attempts") or 0) + 1
        meta["startedAt"] = meta.get("startedAt") or iso(t)
        job["lastError"] = error
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.key(queue, "processing"), 1, raw)
        if meta["attempts"] < int(meta.get("maxAttempts") or 1):
            meta["scheduledAt"] = iso(t + retry_delay_ms)
            pipe.zadd(self.key(queue, "scheduled"), {dumps(job): t + retry_delay_ms})
            where = "scheduled"
        else:
            meta["failedAt"] = iso(t)
            pipe.zadd(self.key(queue, "dead"), {dumps(job): t})
            where = "dead"
        await pipe.execute()
        return where

    async def work(self, queue: str, handler, limit: int = 1000, retry_delay_ms: int = 60_000) -> list[tuple[str, str]]:
        """Claim and run jobs until none is ready; ``handler(job)`` raises to fail. Returns
        (job id, "completed" | "scheduled" | "dead") per job run."""
        out = []
        for _ in range(limit):
            claimed = await self.claim(queue)
            if claimed is None:
                break
            raw, job = claimed
            try:
                await handler(job)
            except Exception as exc:  # noqa: BLE001 - the job's failure
                out.append((job["meta"]["id"], await self.fail(queue, raw, job, str(exc), retry_delay_ms)))
            else:
                await self.complete(queue, raw, job)
                out.append((job["meta"]["id"], "completed"))
        return out

    # ------------------------------------------------------------------ what the reference sees
    async def members(self, queue: str) -> dict[str, list[bytes]]:
        """Every member per native state, oldest first as workers take them (dead: newest first)."""
        pending = await self.client.lrange(self.key(queue, "pending"), 0, -1)
        processing = await self.client.lrange(self.key(queue, "processing"), 0, -1)
        return {
            "pending": list(reversed(pending)),
            "processing": list(reversed(processing)),
            "scheduled": await self.client.zrange(self.key(queue, "scheduled"), 0, -1),
            "dead": await self.client.zrevrange(self.key(queue, "dead"), 0, -1),
        }

    async def ids(self, queue: str) -> dict[str, list[str]]:
        out = {}
        for state, members in (await self.members(queue)).items():
            ids = []
            for m in members:
                try:
                    ids.append(json.loads(m)["meta"]["id"])
                except (ValueError, KeyError, TypeError):
                    ids.append("<malformed>")
            out[state] = ids
        return out


# ---------------------------------------------------------------------- PostgreSQL
def ddl(schema: str) -> list[str]:
    s = '"' + schema.replace('"', '""') + '"'
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE {s}.jobs(id text primary key, queue text not null, job_type text not null,
             priority text not null default 'normal', payload jsonb not null,
             attempts int not null default 0, max_attempts int not null default 3,
             created_at timestamptz not null default now(), scheduled_at timestamptz not null default now(),
             started_at timestamptz, idempotency_key text, last_error text)""",
        f"""CREATE TABLE {s}.failed_jobs(id bigserial primary key, job_id text not null, queue text not null,
             job_type text not null, payload jsonb not null, exception text not null,
             attempts int not null default 0, failed_at timestamptz not null default now())""",
    ]


class PgGello:
    """Producer + worker on an asyncpg connection or pool, in one schema."""

    def __init__(self, db, schema: str) -> None:
        self.db = db
        self.schema = schema
        self.s = '"' + schema.replace('"', '""') + '"'

    async def install(self) -> None:
        for stmt in ddl(self.schema):
            await self.db.execute(stmt)

    async def enqueue(self, queue: str, job_type: str = "task", payload: Any = None, priority: str = "normal",
                      max_attempts: int = 3, idempotency_key: str | None = None, delay_ms: int = 0,
                      job_id: str | None = None) -> str:
        job_id = job_id or uuid.uuid4().hex
        await self.db.execute(
            f"""INSERT INTO {self.s}.jobs (id, queue, job_type, priority, payload, max_attempts, idempotency_key,
                                           scheduled_at)
                VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, now() + make_interval(secs => $8::float8 / 1000))""",
            job_id, queue, job_type, priority, json.dumps(payload), max_attempts, idempotency_key, delay_ms)
        return job_id

    async def claim(self, queue: str):
        return await self.db.fetchrow(
            f"""UPDATE {self.s}.jobs SET started_at = now(), attempts = attempts + 1 WHERE id = (
                  SELECT id FROM {self.s}.jobs WHERE queue = $1 AND started_at IS NULL AND scheduled_at <= now()
                  ORDER BY priority, scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *""", queue)

    async def complete(self, row) -> None:
        await self.db.execute(f"DELETE FROM {self.s}.jobs WHERE id = $1", row["id"])

    async def fail(self, row, error: str, retry_delay_ms: int = 0) -> str:
        if row["attempts"] < row["max_attempts"]:
            await self.db.execute(
                f"""UPDATE {self.s}.jobs SET started_at = NULL, last_error = $2,
                      scheduled_at = now() + make_interval(secs => $3::float8 / 1000) WHERE id = $1""",
                row["id"], error, retry_delay_ms)
            return "retry"
        await self.db.execute(
            f"""WITH gone AS (DELETE FROM {self.s}.jobs WHERE id = $1 RETURNING *)
                INSERT INTO {self.s}.failed_jobs (job_id, queue, job_type, payload, exception, attempts)
                SELECT id, queue, job_type, payload, $2, attempts FROM gone""", row["id"], error)
        return "dead"

    async def work(self, queue: str, handler, limit: int = 1000, retry_delay_ms: int = 60_000) -> list[tuple[str, str]]:
        out = []
        for _ in range(limit):
            row = await self.claim(queue)
            if row is None:
                break
            try:
                await handler(row)
            except Exception as exc:  # noqa: BLE001
                out.append((row["id"], await self.fail(row, str(exc), retry_delay_ms)))
            else:
                await self.complete(row)
                out.append((row["id"], "completed"))
        return out

    async def ids(self, queue: str) -> dict[str, list[str]]:
        """Job ids per SQL state, in the reader's page orders."""
        q = f"SELECT id FROM {self.s}.jobs WHERE queue = $1 AND "
        rows = {
            "waiting": await self.db.fetch(q + "started_at IS NULL AND scheduled_at <= now() ORDER BY priority, scheduled_at, id", queue),
            "delayed": await self.db.fetch(q + "started_at IS NULL AND scheduled_at > now() ORDER BY scheduled_at, id", queue),
            "active": await self.db.fetch(q + "started_at IS NOT NULL ORDER BY started_at, id", queue),
        }
        out = {k: [r["id"] for r in v] for k, v in rows.items()}
        failed = await self.db.fetch(f"SELECT job_id FROM {self.s}.failed_jobs WHERE queue = $1 ORDER BY failed_at DESC, id DESC", queue)
        out["failed"] = [r["job_id"] for r in failed]
        return out
