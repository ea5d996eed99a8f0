"""The BullMQ-on-PostgreSQL workload of ``queue-console demo --backend postgres``.

BullMQ for Python 3.4.4's own PostgreSQL backend (``{"backend": "postgres"}``; it runs BullMQ's
migrations into schema ``bullmq``) produces and works two queues, so that every state of
docs/backends/bullmq-postgres.md shows: waiting (some prioritized), delayed, active, completed,
failed (after retries, with logs and stack traces) and waiting-children (a small flow now and then).
No Node is needed.
"""
from __future__ import annotations

import asyncio
import random
import time

from console.demo_runtime import ThreadedWorkload

DEMO_SCHEMA = "bullmq"
#: queue -> (jobs per second, worker concurrency, failure rate)
PLANS = {"invoices": (3.0, 2, 0.15), "image-resize": (5.0, 3, 0.08)}
ERRORS = ("ECONNRESET talking to the payment provider", "render timed out after 30000 ms",
          "422 Unprocessable Entity: currency missing", "out of memory while decoding image")


class BullMQPostgresWorkload(ThreadedWorkload):
    """Producers and workers of BullMQ for Python on PostgreSQL, on their own thread."""

    def __init__(self, url: str, schema: str = DEMO_SCHEMA, speed: float = 1.0, seed: int = 6,
                 max_backlog: int = 300) -> None:
        super().__init__()
        self.url, self.schema, self.speed, self.seed, self.max_backlog = url, schema, speed, seed, max_backlog

    thread_name = "queue-console-demo-bullmq-pg"
    what = "the BullMQ-on-PostgreSQL workload"

    def opts(self, **extra) -> dict:
        return {"backend": "postgres", "connection": self.url, "schema": self.schema, **extra}

    async def _run(self) -> None:
        from bullmq import FlowProducer, Queue, Worker

        self._stop = asyncio.Event()
        rng = random.Random(self.seed)
        queues = {name: Queue(name, self.opts()) for name in PLANS}
        flows = FlowProducer(self.opts())
        workers = []
        tasks: list[asyncio.Task] = []
        try:
            for name, (_, concurrency, fail_rate) in PLANS.items():
                workers.append(Worker(name, self._processor(fail_rate, rng), self.opts(concurrency=concurrency)))
            await self._seed(queues, flows, rng)
            tasks = [asyncio.create_task(self._produce(name, queues[name], flows, rng)) for name in PLANS]
            self._ready.set()
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for closer in [w.close() for w in workers] + [flows.close()] + [q.close() for q in queues.values()]:
                try:
                    await asyncio.wait_for(closer, 5)
                except Exception:
                    pass

    def _processor(self, fail_rate: float, rng: random.Random):
        async def process(job, token):
            await job.log(f"started attempt {job.attemptsMade + 1}")
            await asyncio.sleep(rng.uniform(0.05, 0.4) / self.speed)
            await job.updateProgress(100)
            if job.data.get("poison") or rng.random() < fail_rate:
                self._count("failed")
                raise RuntimeError(rng.choice(ERRORS))
            self._count("completed")
            return {"ok": True, "took_ms": rng.randint(20, 900)}
        return process

    async def _seed(self, queues, flows, rng: random.Random) -> None:
        """Every state at once: delayed jobs, a prioritized one, a flow whose parent waits."""
        q = queues["invoices"]
        for i in range(5):
            await q.add("send-reminder", {"customer": f"c-{i}"}, {"delay": rng.choice((60_000, 600_000))})
        await q.add("refund", {"amount": 12.5, "poison": True}, {"attempts": 1, "priority": 2})
        await self._flow(flows, 0)

    async def _flow(self, flows, i: int) -> None:
        await flows.add({"name": "month-report", "queueName": "invoices", "data": {"report": i},
                         "children": [{"name": "collect", "queueName": "image-resize", "data": {"part": k},
                                       "opts": {"delay": 120_000}} for k in range(2)]})

    async def _produce(self, name: str, queue, flows, rng: random.Random) -> None:
        per_second, _, _ = PLANS[name]
        i = 0
        while True:
            rate = per_second * self.speed * (0.5 + 0.5 * abs(((time.time() / 15) % 2) - 1) * 2)
            await asyncio.sleep(1.0 / max(rate, 0.1))
            counts = await queue.getJobCounts("waiting", "prioritized")
            if sum(int(v) for v in counts.values()) >= self.max_backlog:
                continue
            i += 1
            opts = {"attempts": rng.choice((1, 2, 3)), "backoff": {"type": "fixed", "delay": 2000},
                    "removeOnComplete": 500, "removeOnFail": 1000}
            if rng.random() < 0.1:
                opts["priority"] = rng.randint(1, 5)
            if rng.random() < 0.05:
                opts["delay"] = rng.choice((30_000, 300_000))
            await queue.add("job", {"n": i, "source": "demo"}, opts)
            self._count("sent")
            if name == "invoices" and i % 200 == 0:
                await self._flow(flows, i)
