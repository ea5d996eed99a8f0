"""A live Gello workload for the demos: producers and workers written from docs/backends/gello.md.

Gello is a TypeScript (Effect) queue library; there is no Gello for Python, so this module writes
its storage layout directly, exactly as gello.md describes it (the readers in backends/gello read
the same layout, and tests/test_demo_gello.py shows a reference worker taking these jobs):

Redis (``<prefix>:queue:<q>:pending|processing|scheduled|dead``, prefix ``gello``):
  producers LPUSH serialized jobs onto ``pending`` (or ZADD ``scheduled`` with the run time in ms);
  a worker moves due ``scheduled`` members to ``pending`` (one Lua script), LMOVEs the tail of
  ``pending`` to ``processing``, and on success LREMs it; a failure replaces the member with a
  record whose ``attempts`` grew by one, onto ``scheduled`` (exponential backoff, ``lastError``
  set) or, once ``maxAttempts`` are used, onto ``dead`` (score = failure ms, ``failedAt`` set).
  Idempotency keys: ``<prefix>:idempotency:<key>`` = ``{status: processing|completed, ...}`` with a
  TTL; a job whose key is already ``completed`` is dropped by the worker without running again.

PostgreSQL (``jobs`` and ``failed_jobs`` in one schema, ``public`` unless given): the claim UPDATE
of gello.md, success deletes the row, a retry sets ``started_at = NULL, scheduled_at, last_error``,
a final failure moves the row to ``failed_jobs`` in one statement (one transaction).

What moves on the screen: four queues (``orders``, ``notifications``, ``invoices``, ``exports``),
priorities ``low``..``critical``, idempotency keys (some sent twice), completions, failures that
retry with backoff and end dead, scheduled jobs, and a job with hostile text in its error.
Rates are bounded (a producer skips while its queue's backlog is over ``max_backlog``; the Redis
``dead`` sets are trimmed to ``max_dead`` newest members) and ``stop()`` ends every task.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from backends.gello.record import iso_from_ms
from backends.postgres import quote_ident
from console.demo_runtime import ThreadedWorkload

DEMO_PREFIX = "gello"
DEMO_SCHEMA = "public"
PRIORITIES = ("low", "normal", "high", "critical")
IDEMPOTENCY_TTL_S = 3600

ERRORS = [
    "upstream 503 from inventory service (attempt {a})",
    "timeout after {ms}ms waiting for lock on order {n}",
    "customer {n} not found (id=cus_{hex})",
    "SMTP 421 too many connections from 10.0.{a}.{b}",
]

PROMOTE_LUA = """
local moved = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)) do
  if redis.call('ZREM', KEYS[1], m) == 1 then
    redis.call('LPUSH', KEYS[2], m)
    moved = moved + 1
  end
end
return moved
"""


# ------------------------------------------------------------------------------------ the record
def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None = None) -> str:
    """ms since the epoch (default now) -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (JavaScript's toISOString)."""
    return iso_from_ms(now_ms() if ms is None else ms)


def new_job(queue: str, job_type: str, payload: Any, *, priority: str = "normal", max_attempts: int = 3,
            idempotency_key: str | None = None, run_at_ms: int | None = None, job_id: str | None = None) -> dict:
    """A fresh job record (gello.md, "The job record")."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    t = now_ms()
    return {
        "meta": {"id": job_id or str(uuid.uuid4()), "queue": queue, "jobType": job_type, "priority": priority,
                 "attempts": 0, "maxAttempts": int(max_attempts), "createdAt": iso(t),
                 "scheduledAt": iso(run_at_ms if run_at_ms is not None else t),
                 "startedAt": None, "completedAt": None, "failedAt": None, "idempotencyKey": idempotency_key},
        "payload": payload,
        "lastError": None,
    }


def dumps(job: dict) -> bytes:
    return json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def backoff_ms(attempts: int, base_ms: int, cap_ms: int = 60_000) -> int:
    """Exponential backoff after the ``attempts``-th failure: base, 2 x base, 4 x base, ... capped."""
    return int(min(cap_ms, base_ms * 2 ** max(0, attempts - 1)))


# ------------------------------------------------------------------------------------ Redis store
class GelloRedis:
    """Gello's Redis producer and worker calls on a redis.asyncio client (bytes replies)."""

    def __init__(self, client, prefix: str = DEMO_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._promote = client.register_script(PROMOTE_LUA)

    def key(self, queue: str, suffix: str) -> str:
        return f"{self.prefix}:queue:{queue}:{suffix}"

    def idem_key(self, key: str) -> str:
        return f"{self.prefix}:idempotency:{key}"

    async def enqueue(self, queue: str, job_type: str, payload: Any = None, *, priority: str = "normal",
                      max_attempts: int = 3, idempotency_key: str | None = None, delay_ms: int = 0) -> dict:
        """LPUSH onto ``pending``, or ZADD to ``scheduled`` (score = run time) when delayed."""
        t = now_ms()
        run_at = t + delay_ms if delay_ms > 0 else None
        job = new_job(queue, job_type, payload, priority=priority, max_attempts=max_attempts,
                      idempotency_key=idempotency_key, run_at_ms=run_at)
        if run_at is not None:
            await self.client.zadd(self.key(queue, "scheduled"), {dumps(job): run_at})
        else:
            await self.client.lpush(self.key(queue, "pending"), dumps(job))
        return job

    async def promote(self, queue: str) -> int:
        """Move the due members of ``scheduled`` to ``pending`` (atomic, at most 200 per call)."""
        return int(await self._promote(keys=[self.key(queue, "scheduled"), self.key(queue, "pending")],
                                       args=[now_ms()]))

    async def claim(self, queue: str) -> tuple[bytes, dict] | None:
        """Tail of ``pending`` -> head of ``processing`` (BRPOPLPUSH semantics, without blocking)."""
        raw = await self.client.lmove(self.key(queue, "pending"), self.key(queue, "processing"), "RIGHT", "LEFT")
        if raw is None:
            return None
        try:
            job = json.loads(raw)
            job["meta"]["id"]
        except (ValueError, KeyError, TypeError):
            # not a job this worker can run: leave it where a console can see it, never loop on it
            await self._bury(queue, raw, None, "malformed job record")
            return None
        return raw, job

    async def idempotency_status(self, key: str) -> str | None:
        value = await self.client.get(self.idem_key(key))
        if value is None:
            return None
        try:
            return json.loads(value).get("status")
        except (ValueError, AttributeError):
            return None

    async def mark_processing(self, key: str) -> None:
        await self.client.set(self.idem_key(key), json.dumps({"status": "processing", "acquiredAt": iso()}),
                              ex=IDEMPOTENCY_TTL_S)

    async def complete(self, queue: str, raw: bytes, job: dict) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.key(queue, "processing"), 1, raw)
        key = job["meta"].get("idempotencyKey")
        if key:
            pipe.set(self.idem_key(key), json.dumps({"status": "completed", "completedAt": iso()}),
                     ex=IDEMPOTENCY_TTL_S)
        await pipe.execute()

    async def drop(self, queue: str, raw: bytes) -> None:
        """A duplicate (its idempotency key is completed): take it off ``processing`` unrun."""
        await self.client.lrem(self.key(queue, "processing"), 1, raw)

    async def fail(self, queue: str, raw: bytes, job: dict, error: str, base_backoff_ms: int = 1000,
                   max_dead: int | None = None) -> str:
        """Back to ``scheduled`` after a backoff while attempts are left, else onto ``dead``.
        Returns ``"retry"`` or ``"dead"``."""
        t = now_ms()
        job = json.loads(json.dumps(job))
        meta = job["meta"]
        meta["attempts"] = int(meta.get("attempts") or 0) + 1
        meta["startedAt"] = meta.get("startedAt") or iso(t)
        job["lastError"] = error
        if meta["attempts"] < int(meta.get("maxAttempts") or 1):
            run_at = t + backoff_ms(meta["attempts"], base_backoff_ms)
            meta["scheduledAt"] = iso(run_at)
            pipe = self.client.pipeline(transaction=True)
            pipe.lrem(self.key(queue, "processing"), 1, raw)
            pipe.zadd(self.key(queue, "scheduled"), {dumps(job): run_at})
            await pipe.execute()
            return "retry"
        meta["failedAt"] = iso(t)
        await self._bury(queue, raw, job, error, max_dead=max_dead, at_ms=t)
        return "dead"

    async def _bury(self, queue: str, raw: bytes, job: dict | None, error: str, max_dead: int | None = None,
                    at_ms: int | None = None) -> None:
        t = at_ms or now_ms()
        pipe = self.client.pipeline(transaction=True)
        pipe.lrem(self.key(queue, "processing"), 1, raw)
        pipe.zadd(self.key(queue, "dead"), {dumps(job) if job is not None else raw: t})
        if max_dead:
            pipe.zremrangebyrank(self.key(queue, "dead"), 0, -(max_dead + 1))  # keep the newest max_dead
        await pipe.execute()

    async def backlog(self, queue: str) -> int:
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(self.key(queue, "pending"))
        pipe.zcard(self.key(queue, "scheduled"))
        pending, scheduled = await pipe.execute()
        return int(pending) + int(scheduled)


# ------------------------------------------------------------------------------- PostgreSQL store
def pg_ddl(schema: str = DEMO_SCHEMA) -> list[str]:
    """gello.md's two tables (IF NOT EXISTS: an existing Gello schema is used as it is)."""
    s = quote_ident(schema)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.jobs(id text primary key, queue text not null, job_type text not null,
             priority text not null default 'normal', payload jsonb not null,
             attempts int not null default 0, max_attempts int not null default 3,
             created_at timestamptz not null default now(), scheduled_at timestamptz not null default now(),
             started_at timestamptz, idempotency_key text, last_error text)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.failed_jobs(id bigserial primary key, job_id text not null,
             queue text not null, job_type text not null, payload jsonb not null, exception text not null,
             attempts int not null default 0, failed_at timestamptz not null default now())""",
    ]


class GelloPg:
    """Gello's PostgreSQL producer and worker statements on an asyncpg pool, in one schema.
    Only the (quoted) schema name is pasted into SQL; every value is a parameter."""

    def __init__(self, pool, schema: str = DEMO_SCHEMA) -> None:
        self.pool = pool
        self.schema = schema
        self.s = quote_ident(schema)

    async def install(self) -> None:
        async with self.pool.acquire() as conn:
            for stmt in pg_ddl(self.schema):
                await conn.execute(stmt)

    async def enqueue(self, queue: str, job_type: str, payload: Any = None, *, priority: str = "normal",
                      max_attempts: int = 3, idempotency_key: str | None = None, delay_ms: int = 0) -> str | None:
        """INSERT a job; None when a job with the same idempotency key is still in ``jobs``."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        job_id = str(uuid.uuid4())
        async with self.pool.acquire() as conn:
            got = await conn.fetchval(
                f"""INSERT INTO {self.s}.jobs (id, queue, job_type, priority, payload, max_attempts, idempotency_key,
                                               scheduled_at)
                    SELECT $1, $2, $3, $4, $5::jsonb, $6, $7, now() + make_interval(secs => $8::float8 / 1000)
                    WHERE $7::text IS NULL OR NOT EXISTS (
                        SELECT 1 FROM {self.s}.jobs WHERE idempotency_key = $7::text)
                    RETURNING id""",
                job_id, queue, job_type, priority, json.dumps(payload), int(max_attempts), idempotency_key,
                int(delay_ms))
        return got

    async def claim(self, queue: str):
        async with self.pool.acquire() as conn:
            return await conn.fetchrow(
                f"""UPDATE {self.s}.jobs SET started_at = now(), attempts = attempts + 1 WHERE id = (
                      SELECT id FROM {self.s}.jobs WHERE queue = $1 AND started_at IS NULL AND scheduled_at <= now()
                      ORDER BY priority, scheduled_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *""", queue)

    async def complete(self, row) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(f"DELETE FROM {self.s}.jobs WHERE id = $1", row["id"])

    async def fail(self, row, error: str, base_backoff_ms: int = 1000) -> str:
        """``"retry"`` (started_at NULL, scheduled_at after a backoff, last_error) or ``"dead"``
        (moved to failed_jobs and deleted from jobs, one statement)."""
        async with self.pool.acquire() as conn:
            if row["attempts"] < row["max_attempts"]:
                await conn.execute(
                    f"""UPDATE {self.s}.jobs SET started_at = NULL, last_error = $2,
                          scheduled_at = now() + make_interval(secs => $3::float8 / 1000) WHERE id = $1""",
                    row["id"], error, backoff_ms(row["attempts"], base_backoff_ms))
                return "retry"
            await conn.execute(
                f"""WITH gone AS (DELETE FROM {self.s}.jobs WHERE id = $1 RETURNING *)
                    INSERT INTO {self.s}.failed_jobs (job_id, queue, job_type, payload, exception, attempts)
                    SELECT id, queue, job_type, payload, $2, attempts FROM gone""", row["id"], error)
            return "dead"

    async def backlog(self, queue: str) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval(
                f"SELECT count(*) FROM {self.s}.jobs WHERE queue = $1 AND started_at IS NULL", queue))

    async def trim_dead(self, keep: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                f"""DELETE FROM {self.s}.failed_jobs WHERE id IN (
                      SELECT id FROM {self.s}.failed_jobs ORDER BY failed_at DESC, id DESC OFFSET $1)""", keep)


# -------------------------------------------------------------------------------------- the plan
class DemoError(Exception):
    pass


def _error(rng: random.Random) -> str:
    return rng.choice(ERRORS).format(n=rng.randint(1000, 99999), ms=rng.choice([3000, 5000, 10000]),
                                     a=rng.randint(0, 255), b=rng.randint(1, 254), hex=f"{rng.getrandbits(48):012x}")


@dataclass(frozen=True)
class QueuePlan:
    name: str
    job_type: str
    per_second: float  # producer rate at speed 1
    max_attempts: int
    fail_rate: float  # chance a run fails
    run_s: tuple[float, float]  # handler time at speed 1
    backoff_ms: int  # first retry delay (doubles per attempt)
    concurrency: int
    priorities: tuple[str, ...]  # drawn uniformly
    delays_ms: tuple[int, ...] = (0,)  # drawn uniformly; > 0 = a scheduled job
    idempotent: bool = False  # every job has an idempotency key; some are sent twice


PLANS = (
    QueuePlan("orders", "place-order", 4.0, 3, 0.2, (0.02, 0.2), 1000, 3, ("normal", "normal", "high", "critical"),
              idempotent=True),
    QueuePlan("notifications", "push", 8.0, 2, 0.3, (0.005, 0.05), 500, 4, ("low", "normal")),
    QueuePlan("invoices", "render-pdf", 1.5, 4, 0.25, (0.2, 0.8), 2000, 2, ("low", "normal", "high"),
              delays_ms=(0, 0, 0, 20_000, 60_000), idempotent=True),
    QueuePlan("exports", "csv-export", 0.5, 1, 0.15, (0.8, 2.5), 0, 1, ("low", "critical"),
              delays_ms=(0, 30_000, 120_000, 600_000)),
)
QUEUES = tuple(p.name for p in PLANS)


def _payload(plan: QueuePlan, i: int, rng: random.Random) -> dict:
    if plan.name == "orders":
        return {"order": f"ord_{i:06d}", "customer": f"cus_{rng.getrandbits(32):08x}",
                "total": round(rng.uniform(5, 900), 2), "currency": "EUR"}
    if plan.name == "notifications":
        return {"device": f"dev_{rng.getrandbits(40):010x}", "title": rng.choice(["Order shipped", "Sale!", "Reminder"])}
    if plan.name == "invoices":
        return {"invoice": f"inv_{i:06d}", "pages": rng.randint(1, 12)}
    return {"report": rng.choice(["sales", "churn", "inventory"]), "rows": rng.randint(100, 200_000)}


@dataclass(kw_only=True)
class _Base(ThreadedWorkload):
    """Settings shared by both Gello workloads (thread and loop plumbing: ThreadedWorkload)."""

    speed: float = 1.0
    seed: int = 11
    producers: bool = True
    workers: bool = True
    max_backlog: int = 500
    max_dead: int = 2000
    poll_s: float = 0.2
    # counts: "sent", "skipped" (backlog full), "duplicate" (idempotency), "completed", "retry", "dead"

    thread_name = "queue-console-demo-gello"
    what = "the Gello workload"

    async def _seed(self, g, rng: random.Random) -> None:
        """A few jobs from the start so every state shows at once (the same for both stores): one per
        priority, scheduled exports, and a job whose failure text is hostile."""
        for i, priority in enumerate(PRIORITIES):
            await g.enqueue("orders", "place-order", _payload(self._plan("orders"), i, rng), priority=priority,
                            idempotency_key=self._seed_key(i, rng))
        for i in range(8):
            await g.enqueue("exports", "csv-export", _payload(self._plan("exports"), i, rng),
                            priority=rng.choice(("low", "critical")), max_attempts=1,
                            delay_ms=rng.choice((60_000, 300_000, 900_000)))
        await g.enqueue("notifications", "webhook", {"url": "https://example.invalid/hook", "hostile": True,
                                                     "note": "\x1b[2J\x1b]0;pwned\x07[red]markup[/red]"},
                        priority="high", max_attempts=1)
        # every queue exists before the console starts (issue 12 item 16: one was missing from the
        # first frame until the next discovery)
        await g.enqueue("invoices", "render-pdf", _payload(self._plan("invoices"), 0, rng), priority="normal")

    async def _start(self, g, rng: random.Random) -> list[asyncio.Task]:
        """Seed, then start the producers and workers this workload runs (either store)."""
        tasks: list[asyncio.Task] = []
        if self.producers:
            await self._seed(g, rng)
            tasks += [asyncio.create_task(self._produce(p, rng, g.enqueue, g.backlog), name=f"produce {p.name}")
                      for p in PLANS]
        if self.workers:
            tasks += [asyncio.create_task(self._work(g, p, rng), name=f"work {p.name} {k}")
                      for p in PLANS for k in range(p.concurrency)]
        return tasks

    def _seed_key(self, i: int, rng: random.Random) -> str:
        return f"orders-seed-{i}"


    async def _pause(self, seconds: float) -> None:
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _run_tasks(self, tasks: list[asyncio.Task]) -> None:
        """Ready, wait for stop; producers stop at once, workers finish the job in hand."""
        assert self._stop is not None
        self._ready.set()
        await self._stop.wait()
        for task in tasks:
            if task.get_name().startswith("produce"):
                task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce(self, plan: QueuePlan, rng: random.Random, send: Callable, backlog: Callable) -> None:
        i = 0
        sent_keys: list[str] = []
        while True:
            # bursts: the rate swings so the sparklines have a shape
            rate = plan.per_second * self.speed * (0.4 + 1.2 * (0.5 + 0.5 * ((time.time() / 20) % 2 - 1) ** 2))
            await asyncio.sleep(rng.expovariate(rate))
            i += 1
            try:
                if await backlog(plan.name) >= self.max_backlog:
                    self._count("skipped")
                    continue
                key = None
                if plan.idempotent:
                    # about one in ten is a resend of a recent key (a client that retried its request)
                    if sent_keys and rng.random() < 0.1:
                        key = rng.choice(sent_keys)
                    else:
                        key = f"{plan.name}-{i:06d}-{rng.getrandbits(24):06x}"
                        sent_keys = (sent_keys + [key])[-50:]
                got = await send(plan.name, plan.job_type, _payload(plan, i, rng), priority=rng.choice(plan.priorities),
                                 max_attempts=plan.max_attempts, idempotency_key=key,
                                 delay_ms=rng.choice(plan.delays_ms))
                self._count("sent" if got else "duplicate")
            except Exception:
                await asyncio.sleep(1)

    async def _handle(self, plan: QueuePlan, payload: Any, rng: random.Random) -> None:
        await asyncio.sleep(rng.uniform(*plan.run_s) / self.speed)
        if isinstance(payload, dict) and payload.get("hostile"):
            # untrusted text from a remote server, with escape codes and Rich markup in it
            raise ConnectionError(f"HTTP 502 from {payload.get('url')}: \x1b[31m<html>[bold]Bad gateway[/bold]\x1b[0m")
        if rng.random() < plan.fail_rate:
            raise DemoError(_error(rng))

    @staticmethod
    def _plan(name: str) -> QueuePlan:
        return next(p for p in PLANS if p.name == name)


@dataclass
class GelloRedisWorkload(_Base):
    """Producers and workers on Gello's Redis layout under ``prefix``, on their own thread."""

    url: str
    prefix: str = DEMO_PREFIX

    thread_name = "queue-console-demo-gello-redis"

    async def _run(self) -> None:
        import redis.asyncio as aioredis

        self._stop = asyncio.Event()
        client = aioredis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=10,
                                         client_name="queue-console-demo-gello")
        try:
            g = GelloRedis(client, self.prefix)
            await self._run_tasks(await self._start(g, random.Random(self.seed)))
        finally:
            try:
                await asyncio.wait_for(client.aclose(), 5)
            except Exception:
                pass

    async def _work(self, g: GelloRedis, plan: QueuePlan, rng: random.Random) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await g.promote(plan.name)
                claimed = await g.claim(plan.name)
            except Exception:
                await self._pause(1.0)
                continue
            if claimed is None:
                await self._pause(self.poll_s / self.speed)
                continue
            raw, job = claimed
            try:
                key = job["meta"].get("idempotencyKey")
                if key:
                    if await g.idempotency_status(key) == "completed":
                        await g.drop(plan.name, raw)
                        self._count("duplicate")
                        continue
                    await g.mark_processing(key)
                try:
                    await self._handle(plan, job.get("payload"), rng)
                except Exception as exc:  # the job's failure
                    self._count(await g.fail(plan.name, raw, job, str(exc), int(plan.backoff_ms / self.speed), self.max_dead))
                else:
                    await g.complete(plan.name, raw, job)
                    self._count("completed")
            except Exception:
                await self._pause(1.0)


@dataclass
class GelloPgWorkload(_Base):
    """Producers and workers on Gello's PostgreSQL tables in ``schema``, on their own thread."""

    url: str
    schema: str = DEMO_SCHEMA

    thread_name = "queue-console-demo-gello-pg"

    def _seed_key(self, i: int, rng: random.Random) -> str:
        # the PostgreSQL layout has no unique index on idempotency keys: unique per run
        return f"orders-seed-{i}-{rng.getrandbits(24):06x}"

    async def _run(self) -> None:
        import asyncpg

        self._stop = asyncio.Event()
        pool = await asyncpg.create_pool(self.url, min_size=1, max_size=6, timeout=15,
                                         server_settings={"application_name": "queue-console-demo-gello"})
        try:
            g = GelloPg(pool, self.schema)
            await g.install()
            tasks = await self._start(g, random.Random(self.seed))
            if self.workers:
                tasks.append(asyncio.create_task(self._trim(g), name="trim dead"))
            await self._run_tasks(tasks)
        finally:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except Exception:
                pool.terminate()

    async def _work(self, g: GelloPg, plan: QueuePlan, rng: random.Random) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                row = await g.claim(plan.name)
            except Exception:
                await self._pause(1.0)
                continue
            if row is None:
                await self._pause(self.poll_s / self.speed)
                continue
            try:
                payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]
                try:
                    await self._handle(plan, payload, rng)
                except Exception as exc:  # the job's failure
                    self._count(await g.fail(row, str(exc), int(plan.backoff_ms / self.speed)))
                else:
                    await g.complete(row)
                    self._count("completed")
            except Exception:
                await self._pause(1.0)

    async def _trim(self, g: GelloPg) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            await self._pause(30.0)
            try:
                await g.trim_dead(self.max_dead)
            except Exception:
                pass
