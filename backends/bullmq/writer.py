"""State changes of BullMQ queues, through BullMQ's own Lua scripts (backends.bullmq.scripts).

``BullMQWriter`` is composed into ``BullMQReader`` (``reader.writer``), which hands the contract's
mutation calls to it. Each method is one bounded unit: a list of explicit job ids (one script call per job, each atomic),
or one batch of at most ``count`` jobs (one script call). The action layer (console.actions) loops,
reports progress, and can stop between batches. Legacy Bull queues are read-only.

Retry, bulk retry, promote, pause and resume first read the queue's evidence (one pipelined round
trip) and run the scripts of the generation that writes it (backends.bullmq.versions), or refuse
with the reason (Unsupported).
"""
from __future__ import annotations

import json

import redis.asyncio as aioredis

from backends.bullmq.keys import QueueKeys
from backends.bullmq import versions
from backends.bullmq.scripts import GENERATIONS, Scripts
from backends.contract import BatchOutcome, ConsoleStore, JobOutcome, QueueRef, Writer
from backends.limits import bulk_count
from backends.errors import BadRequest, Unsupported
from backends.redis_client import redis_errors
from backends.redis_console_store import RedisConsoleStore
from backends.urls import ConnectionUrl

_RETRY_STATUS = {1: "retried", -1: "not-found", -3: "not-in-state"}
_PROMOTE_STATUS = {0: "promoted", -3: "not-in-state"}
_REMOVE_STATUS = {1: "removed", 0: "locked", -8: "scheduler-owned"}


class BullMQWriter(Writer):
    """The write side of one Redis connection's BullMQ queues."""

    backend = "bullmq"

    def __init__(self, client: aioredis.Redis, url: ConnectionUrl, store_prefix: str) -> None:
        self.client = client
        self.url = url
        self.store_prefix = store_prefix
        self._script_sets: dict[str, Scripts] = {}

    @property
    def scripts(self) -> Scripts:
        """BullMQ 6's scripts (BullMQ for Python 3.4.4): purge, and v6 queues."""
        return self.scripts_for("v6")

    def scripts_for(self, generation: str) -> Scripts:
        if generation not in self._script_sets:
            if generation not in GENERATIONS:
                raise Unsupported(f"no BullMQ scripts for generation {generation!r}")
            self._script_sets[generation] = Scripts(self.client, generation)
        return self._script_sets[generation]

    async def _writable(self, queue: QueueRef, what: str) -> QueueKeys:
        if queue.backend != "bullmq":
            raise Unsupported(f"{queue.backend} queues are read-only in queue-console (legacy Bull layout)")
        return QueueKeys(queue.namespace, queue.name)

    async def _evidence(self, k: QueueKeys) -> tuple[versions.Evidence, versions.Generation]:
        [ev] = await versions.read_evidence(self.client, [k])
        gen = versions.generation(ev)
        if gen.unknown:
            raise Unsupported(gen.reason or "unknown BullMQ version")
        return ev, gen

    async def _movers(self, k: QueueKeys, what: str) -> Scripts:
        """The scripts that move jobs of this queue the way its own generation does, or refuse."""
        _, gen = await self._evidence(k)
        return self.scripts_for(versions.require_moves(gen, what))

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        if state not in ("failed", "completed"):
            raise BadRequest(f"{state!r} is not a finished state (failed or completed)")
        k = QueueKeys(queue.namespace, queue.name)
        async with redis_errors(self.url):
            return int(await self.client.zcount(k(state), 0, before_ms))

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        """reprocessJob per job (atomic per job), all of a chunk sent in one pipelined round trip."""
        if job_timeout_s is not None:
            raise Unsupported("BullMQ jobs have no per-run timeout to set on a retry")
        if run_at_ms is not None:
            raise Unsupported("BullMQ has no script that retries a failed job into `delayed`")
        if state not in ("failed", "completed"):
            raise BadRequest(f"cannot retry jobs in state {state!r} (failed or completed)")
        k = await self._writable(queue, "retry")
        async with redis_errors(self.url):
            scripts = await self._movers(k, "retry")
            opts = await self._opts(k, job_ids)
            codes = await scripts.reprocess_many(
                k, [(job_id, bool(opts.get(job_id, {}).get("lifo"))) for job_id in job_ids], state, reset_attempts)
        return [JobOutcome(job_id=job_id, ok=code == 1, status=_RETRY_STATUS.get(code, f"code {code}"))
                for job_id, code in zip(job_ids, codes)]

    async def _opts(self, k: QueueKeys, job_ids: list[str]) -> dict[str, dict]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(k.job(job_id), "opts")
        out = {}
        for job_id, raw in zip(job_ids, await pipe.execute()):
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = {}
            out[job_id] = parsed if isinstance(parsed, dict) else {}
        return out

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        if state not in ("failed", "completed"):
            raise BadRequest(f"cannot retry jobs in state {state!r} (failed or completed)")
        k = await self._writable(queue, "retry")
        count = bulk_count(count)
        async with redis_errors(self.url):
            scripts = await self._movers(k, "retry")
            moved, more = await scripts.move_jobs_to_wait(k, state, count, before_ms)
        return BatchOutcome(done=moved, more=bool(more) and moved > 0)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        """Remove jobs (removeJob refuses active ones). With ``state`` (failed/completed), a job
        not in that state is left alone ("not-in-state")."""
        k = await self._writable(queue, "purge")
        out = []
        async with redis_errors(self.url):
            pipe = self.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.exists(k.job(job_id))
                if state is not None:
                    pipe.zscore(k(state), job_id)
            replies = await pipe.execute()
            step = 2 if state is not None else 1
            for i, job_id in enumerate(job_ids):
                present = replies[i * step]
                if not present:
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-found"))
                    continue
                if state is not None and replies[i * step + 1] is None:
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-in-state"))
                    continue
                code = await self.scripts.remove(k, job_id)
                out.append(JobOutcome(job_id=job_id, ok=code == 1, status=_REMOVE_STATUS.get(code, f"code {code}")))
        return out

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        if state not in ("failed", "completed"):
            raise BadRequest(f"bulk purge covers failed or completed jobs, not {state!r}")
        k = await self._writable(queue, "purge")
        # at most 1,000 a call, the limit BullMQ's own clean(0, 1000, state) is called with: about
        # 7 ms of server time a call (docs/performance.md); 500 a call doubled the calls, and the
        # fixed cost of each (a round trip, the script's ZRANGEBYSCORE and XADD) cost 0.85x of clean
        count = bulk_count(count)
        async with redis_errors(self.url):
            removed = await self.scripts.clean(k, state, before_ms, count)
        # cleanJobsInSet removes every job of ZRANGEBYSCORE 0 before_ms LIMIT 0 count from a
        # finished set: fewer than ``count`` means none is left (no ZCOUNT round trip per batch)
        return BatchOutcome(done=len(removed), more=len(removed) == count, ids=removed)

    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        """promoteJob per job. Its -3 covers a job that does not exist too: a job without a hash
        is reported "not-found", as the other mutations do."""
        k = await self._writable(queue, "promote")
        out = []
        async with redis_errors(self.url):
            scripts = await self._movers(k, "promote")
            pipe = self.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.exists(k.job(job_id))
            for job_id, present in zip(job_ids, await pipe.execute()):
                if not present:
                    out.append(JobOutcome(job_id=job_id, ok=False, status="not-found"))
                    continue
                code = await scripts.promote(k, job_id)
                out.append(JobOutcome(job_id=job_id, ok=code == 0, status=_PROMOTE_STATUS.get(code, f"code {code}")))
        return out

    async def set_paused(self, queue: QueueRef, paused: bool) -> None:
        """Pause or resume in the representation the queue's writers use (backends.bullmq.versions):
        v4/v5 RENAME wait to paused and back; v6 sets/clears ``meta.paused``. A pause of a paused
        queue does nothing. When both lists hold jobs, or the generation cannot be told, resume is
        BullMQ 6's, which merges the legacy list into wait instead of RENAMEing over it, looping
        until it is drained (7000 ids per call) and emitting the event once, as Queue.resume() does."""
        k = await self._writable(queue, "pause")
        async with redis_errors(self.url):
            ev, gen = await self._evidence(k)
            if paused:
                generation = versions.pause_plan(ev, gen)
                if generation is not None:
                    await self.scripts_for(generation).pause(k, True)
                return
            scripts = self.scripts_for(versions.resume_plan(ev, gen))
            remaining = await scripts.pause(k, False, emit=True)
            while remaining > 0:
                remaining = await scripts.pause(k, False, emit=False)

    def console_store(self) -> ConsoleStore:
        return RedisConsoleStore(self.client, self.store_prefix, self.url)
