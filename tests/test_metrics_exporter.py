"""``queue-console metrics``: the Prometheus exporter, against real Redis servers, BullMQ for Python
and Debian's real Prometheus server.

- every metric present and equal to what BullMQ for Python itself reports (counts, workers);
- passwords never in the output (a private redis-server with requirepass);
- hostile queue names (quotes, backslashes, newlines, escape codes, invalid UTF-8) are valid labels;
- a down connection gives queue_console_up 0 and the exporter keeps serving, then recovers;
- concurrent scrapes cause no poll (a private redis-server counts every command it processes);
- read-only: MONITOR on a private redis-server sees no command flagged ``write``;
- the example rules pass ``promtool check rules`` and the dashboard uses only exported metrics;
- a real Prometheus (own config and storage, scrape interval 1 s) scrapes the exporter and its
  HTTP API gives the failed count that BullMQ for Python's getJobCounts gives.

Private servers use the ports given to this work: redis 6451-6459, Prometheus 19090-19099,
exporter 19100-19109. With CI set, a missing prometheus/promtool/redis-server FAILS the test.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
import redis
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from backends.urls import redact
from console.config import Settings
from console.metrics_exporter import build_metrics, label_text, serve

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "docs" / "prometheus-rules.yml"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
REDIS_PORTS = range(6451, 6460)
PROMETHEUS_PORTS = range(19090, 19100)
EXPORTER_PORTS = range(19100, 19110)
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
HOSTILE_NAMES = ['q"uote', "back\\slash", "new\nline", "esc\x1b[31mred\x1b[0m", 'all"\\\n\x1b]0;t\x07',
                 "ünï ✓", "\u202eevil"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path:
        return path
    reason = f"{name} is not installed (apt-get install -y {'redis-server' if name == 'redis-server' else 'prometheus'})"
    if in_ci():
        pytest.fail(f"CI is set, so this may not be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port(ports: range) -> int:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def wait_until(what: str, predicate, timeout_s: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- private servers, the exporter
@contextlib.contextmanager
def private_redis(*args: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """A redis-server of this test's own on a loopback port of ours; stopped afterwards."""
    server = require_tool("redis-server")
    port = free_port(REDIS_PORTS)
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
            return False
        wait_until(f"redis-server on port {port}", answers, 15)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def running_exporter(urls: list[str], prefixes: list[str], interval: float = 0.5) -> Iterator[str]:
    """``serve`` on a thread (the CLI's code path), listening on a port of ours; yields /metrics URL."""
    port = free_port(EXPORTER_PORTS)
    stop, ready, failed = threading.Event(), threading.Event(), []
    settings = Settings(urls=urls, prefixes=prefixes, connect_timeout=2, op_timeout=5)

    def run() -> None:
        try:
            serve(settings, f"127.0.0.1:{port}", None, interval, stop, on_ready=lambda _: ready.set())
        except BaseException as exc:  # surfaced to the test below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "exporter did not start"
        assert not failed, failed
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "exporter did not stop"


def scrape(url: str, openmetrics: bool = True) -> str:
    req = urllib.request.Request(url, headers={"Accept": OPENMETRICS} if openmetrics else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode("utf-8")


def samples(text: str, openmetrics: bool = True) -> list:
    """Every sample, parsed by prometheus_client's strict parser for the format."""
    families = parse_openmetrics(text) if openmetrics else parse_text(text)
    return [s for fam in families for s in fam.samples]


def value(text: str, name: str, **labels) -> float | None:
    found = [s.value for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, f"{name}{labels}: {len(found)} samples"
    return found[0] if found else None


def polls(text: str) -> float:
    return sum(s.value for s in samples(text) if s.name == "queue_console_polls_total")


def scrape_after_polls(url: str, n: int, timeout_s: float = 30.0) -> str:
    def enough() -> str | None:
        text = scrape(url)
        return text if polls(text) >= n else None
    return wait_until(f"{n} polls", enough, timeout_s)


# ---------------------------------------------------------------- BullMQ for Python helpers
def run_async(coro):
    return asyncio.run(coro)


async def _fail_and_complete(redis_url: str, prefix: str, name: str, ok: int, bad: int,
                             keep_worker: asyncio.Event | None = None, worker_opts: dict | None = None):
    """A real BullMQ for Python worker completes ``ok`` jobs and fails ``bad`` ones (1 attempt)."""
    from bullmq import Queue, Worker

    opts = {"connection": redis_url, "prefix": prefix}
    queue = Queue(name, opts)

    async def processor(job, token):
        await asyncio.sleep(0.01)
        if job.data.get("bad"):
            raise ValueError(f"boom {job.id}")
        return "ok"

    for i in range(ok):
        await queue.add("ok", {"i": i})
    for i in range(bad):
        await queue.add("bad", {"i": i, "bad": True})
    worker = Worker(name, processor, {**opts, **(worker_opts or {})})
    deadline = time.monotonic() + 60
    while True:
        counts = await queue.getJobCounts("completed", "failed")
        if counts["completed"] == ok and counts["failed"] == bad:
            break
        assert time.monotonic() < deadline, f"worker did not finish: {counts}"
        await asyncio.sleep(0.05)
    return queue, worker


# ---------------------------------------------------------------- tests
@pytest.mark.timeout(120)
def test_every_metric_present_and_equal_to_bullmq_for_python(redis_url, prefix):
    results: dict = {}
    hold = threading.Event()
    ready = threading.Event()

    def world() -> None:
        async def main() -> None:
            from bullmq import Queue

            queue, worker = await _fail_and_complete(redis_url, prefix, "main", ok=6, bad=3,
                                                     worker_opts={"name": "w1"})
            idle = Queue("idle", {"connection": redis_url, "prefix": prefix})
            for i in range(4):
                await idle.add("w", {"i": i})
            await idle.add("later", {"i": 9}, {"delay": 600_000})
            await idle.pause()
            results["counts"] = await queue.getJobCounts("completed", "failed", "wait", "active", "delayed")
            results["idle"] = await idle.getJobCounts("wait", "delayed", "paused", "prioritized")
            results["workers"] = await queue.get_workers_count()
            results["idle_workers"] = await idle.get_workers_count()
            results["added"] = time.time()
            ready.set()
            while not hold.is_set():
                await asyncio.sleep(0.05)
            await worker.close()
            await queue.close()
            await idle.close()
        asyncio.run(main())

    t = threading.Thread(target=world, daemon=True)
    t.start()
    try:
        assert ready.wait(90), "BullMQ world not built"
        with running_exporter([redis_url], [prefix], interval=0.5) as url:
            text = scrape_after_polls(url, 3)
            started = time.time()
            classic = scrape(url, openmetrics=False)
        names = {s.name for s in samples(text)}
        expected = {"queue_console_up", "queue_console_scrape_duration_seconds", "queue_console_polls_total",
                    "queue_console_last_success_timestamp_seconds", "queue_console_jobs", "queue_console_paused",
                    "queue_console_oldest_waiting_seconds", "queue_console_throughput_jobs_per_second",
                    "queue_console_job_duration_seconds", "queue_console_job_wait_seconds",
                    "queue_console_job_duration_sample_jobs", "queue_console_workers"}
        assert expected <= names, expected - names
        conn = redact(redis_url)
        assert value(text, "queue_console_up", connection=conn) == 1
        q = {"connection": conn, "backend": "bullmq", "namespace": prefix}
        c = results["counts"]
        for state, native in (("completed", "completed"), ("failed", "failed"), ("active", "active"),
                              ("delayed", "delayed")):
            assert value(text, "queue_console_jobs", queue="main", state=state, **q) == c[native]
        assert value(text, "queue_console_jobs", queue="main", state="failed", **q) == 3
        i = results["idle"]
        assert value(text, "queue_console_jobs", queue="idle", state="waiting", **q) == \
            i["wait"] + i["paused"] + i["prioritized"] == 4
        assert value(text, "queue_console_jobs", queue="idle", state="delayed", **q) == i["delayed"] == 1
        assert value(text, "queue_console_paused", queue="idle", **q) == 1
        assert value(text, "queue_console_paused", queue="main", **q) == 0
        # workers as the library counts them: the live named worker of main, none for idle
        assert results["workers"] >= 1
        assert value(text, "queue_console_workers", queue="main", **q) == results["workers"]
        assert value(text, "queue_console_workers", queue="idle", **q) == results["idle_workers"] == 0
        # oldest waiting: idle's jobs wait since they were added; main has nothing waiting
        age = value(text, "queue_console_oldest_waiting_seconds", queue="idle", **q)
        assert 0 < age <= started - results["added"] + 30
        assert value(text, "queue_console_oldest_waiting_seconds", queue="main", **q) == 0
        for quantile in ("0.5", "0.95"):
            assert value(text, "queue_console_job_duration_seconds", queue="main", quantile=quantile, **q) >= 0
        assert value(text, "queue_console_job_duration_sample_jobs", queue="main", **q) == 6
        for status in ("completed", "failed"):
            assert value(text, "queue_console_throughput_jobs_per_second", queue="main", status=status, **q) >= 0
        assert value(text, "queue_console_scrape_duration_seconds", connection=conn) > 0
        # the classic text format (what a client without an Accept header gets) parses too
        assert {s.name for s in samples(classic, openmetrics=False)} == names
    finally:
        hold.set()
        t.join(30)


@pytest.mark.timeout(120)
def test_labels_redacted_and_hostile_names_are_valid_labels():
    with private_redis("--requirepass", "s3cr3t-PW") as (port, _):
        good = f"redis://:s3cr3t-PW@127.0.0.1:{port}/0"
        wrong = f"redis://:wr0ng-PW@127.0.0.1:{port}/0"
        r = redis.Redis(port=port, password="s3cr3t-PW")
        prefix = "hq"
        raw_names = [n.encode() for n in HOSTILE_NAMES] + [b"bad\xff\xfeutf8"]
        for i, raw in enumerate(raw_names):
            base = prefix.encode() + b":" + raw
            r.hset(base + b":meta", mapping={b"version": b"bullmq:6.7.0"})
            r.lpush(base + b":wait", *[str(n).encode() for n in range(1, i + 2)])
            for n in range(1, i + 2):
                r.hset(base + b":" + str(n).encode(), mapping={b"name": b"j", b"timestamp": b"1", b"data": b"{}"})
        with running_exporter([good, wrong], [prefix]) as url:
            text = scrape_after_polls(url, 2)
            classic = scrape(url, openmetrics=False)
        r.close()
    for body in (text, classic):
        assert "s3cr3t-PW" not in body and "wr0ng-PW" not in body
        assert "\x1b" not in body and "\u202e" not in body  # escape codes are inert in the output
    # the two URLs redact alike: the second is numbered, and only the right password is up
    conn = f"redis://:***@127.0.0.1:{port}/0"
    assert redact(good) == redact(wrong) == conn
    ups = {s.labels["connection"]: s.value for s in samples(text) if s.name == "queue_console_up"}
    assert ups == {conn: 1.0, f"{conn}#2": 0.0}
    for openmetrics, body in ((True, text), (False, classic)):
        waiting = {s.labels["queue"]: s.value for s in samples(body, openmetrics)
                   if s.name == "queue_console_jobs" and s.labels["state"] == "waiting"}
        expected = {label_text(raw.decode("utf-8", "surrogateescape")): float(i + 1) for i, raw in enumerate(raw_names)}
        assert waiting == expected
    assert 'q"uote' in expected and "new\nline" in expected and "back\\slash" in expected
    assert "bad\\xff\\xfeutf8" in expected and "esc\\x1b[31mred\\x1b[0m" in expected
