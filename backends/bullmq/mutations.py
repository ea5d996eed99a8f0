"""State changes of BullMQ queues, through BullMQ's own Lua scripts (backends.bullmq.scripts).

Each method is one bounded unit: a list of explicit job ids (one script call per job, each atomic),
or one batch of at most ``count`` jobs (one script call). The action layer (console.actions) loops,
reports progress, and can stop between batches. Legacy Bull queues are read-only.
"""
from __future__ import annotations

import json

from backends.bullmq.keys import QueueKeys
from backends.bullmq.scripts import Scripts
from backends.contract import BatchOutcome, ConsoleStore, JobOutcome, QueueRef
from backends.errors import BackendError, Unsupported
from backends.redis_client import redis_errors
from backends.redis_console_store import RedisConsoleStore

MAX_BATCH = 1000
_RETRY_STATUS = {1: "retried", -1: "not-found", -3: "not-in-state"}
_PROMOTE_STATUS = {0: "promoted", -3: "not-in-state"}
_REMOVE_STATUS = {1: "removed", 0: "locked", -8: "scheduler-owned"}


class BullMQMutations:
    """Mixed into BullMQReader: needs ``self.client`` and ``self.url``."""

    _scripts: Scripts | None = None

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            self._scripts = Scripts(self.client)  # type: ignore[attr-defined]
        return self._scripts

    def _writable(self, queue: QueueRef) -> QueueKeys:
        if queue.backend != "bullmq":
            raise Unsupported(f"{queue.backend} queues are read-only in queue-console (legacy Bull layout)")
        return QueueKeys(queue.namespace, queue.name)

    async def server_time_ms(self) -> int | None:
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            secs, micros = await self.client.time()  # type: ignore[attr-defined]
        return int(secs) * 1000 + int(micros) // 1000

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        if state not in ("failed", "completed"):
            raise BackendError(f"{state!r} is not a finished state (failed or completed)")
        k = QueueKeys(queue.namespace, queue.name)
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            return int(await self.client.zcount(k(state), 0, before_ms))  # type: ignore[attr-defined]

    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None) -> list[JobOutcome]:
        """reprocessJob per job (atomic per job), all of a chunk sent in one pipelined round trip."""
        if run_at_ms is not None:
            raise Unsupported("BullMQ has no script that retries a failed job into `delayed`")
        if state not in ("failed", "completed"):
            raise BackendError(f"cannot retry jobs in state {state!r} (failed or completed)")
        k = self._writable(queue)
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            opts = await self._opts(k, job_ids)
            codes = await self.scripts.reprocess_many(
                k, [(job_id, bool(opts.get(job_id, {}).get("lifo"))) for job_id in job_ids], state, reset_attempts)
        return [JobOutcome(job_id=job_id, ok=code == 1, status=_RETRY_STATUS.get(code, f"code {code}"))
                for job_id, code in zip(job_ids, codes)]

    async def _opts(self, k: QueueKeys, job_ids: list[str]) -> dict[str, dict]:
        pipe = self.client.pipeline(transaction=False)  # type: ignore[attr-defined]
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
            raise BackendError(f"cannot retry jobs in state {state!r} (failed or completed)")
        k = self._writable(queue)
        count = max(1, min(count, MAX_BATCH))
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            moved, more = await self.scripts.move_jobs_to_wait(k, state, count, before_ms)
        return BatchOutcome(done=moved, more=bool(more) and moved > 0)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        """Remove jobs (removeJob refuses active ones). With ``state`` (failed/completed), a job
        not in that state is left alone ("not-in-state")."""
        k = self._writable(queue)
        out = []
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            pipe = self.client.pipeline(transaction=False)  # type: ignore[attr-defined]
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
            raise BackendError(f"bulk purge covers failed or completed jobs, not {state!r}")
        k = self._writable(queue)
        count = max(1, min(count, MAX_BATCH))
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            removed = await self.scripts.clean(k, state, before_ms, count)
            more = bool(removed) and await self.client.zcount(k(state), 0, before_ms) > 0  # type: ignore[attr-defined]
        return BatchOutcome(done=len(removed), more=more, ids=removed)

    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        k = self._writable(queue)
        out = []
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            for job_id in job_ids:
                code = await self.scripts.promote(k, job_id)
                out.append(JobOutcome(job_id=job_id, ok=code == 0, status=_PROMOTE_STATUS.get(code, f"code {code}")))
        return out

    async def set_paused(self, queue: QueueRef, paused: bool) -> None:
        """BullMQ's pause script; resume loops until the legacy ``paused`` list is drained
        (7000 ids per call), emitting the event only once, as Queue.resume() in Node does."""
        k = self._writable(queue)
        async with redis_errors(self.url):  # type: ignore[attr-defined]
            if paused:
                await self.scripts.pause(k, True)
                return
            remaining = await self.scripts.pause(k, False, emit=True)
            while remaining > 0:
                remaining = await self.scripts.pause(k, False, emit=False)

    def console_store(self) -> ConsoleStore:
        return RedisConsoleStore(self.client, self.store_prefix, self.url)  # type: ignore[attr-defined]
