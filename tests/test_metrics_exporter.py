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
exporter 19100-19109 (tests/private_redis.py runs the redis-servers). With CI set, a missing
prometheus/promtool FAILS the test.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
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
from tests.private_redis import PrivateRedis, free_port, running

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
    reason = f"{name} is not installed (apt-get install -y prometheus; .ci/run does it)"
    if in_ci():
        pytest.fail(f"CI is set, so this may not be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


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
def private_redis(*args: str, password: str | None = None) -> contextlib.AbstractContextManager[PrivateRedis]:
    """A redis-server of this test's own (tests/private_redis.py) on a port of ours; gone afterwards."""
    return running(REDIS_PORTS, args, password)


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
                             worker_opts: dict | None = None):
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
    with private_redis("--requirepass", "s3cr3t-PW", password="s3cr3t-PW") as server:
        port = server.port
        good = f"redis://:s3cr3t-PW@127.0.0.1:{port}/0"
        wrong = f"redis://:wr0ng-PW@127.0.0.1:{port}/0"
        r = server.client()
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


@pytest.mark.timeout(120)
def test_down_connection_gives_up_zero_and_the_exporter_keeps_serving(redis_url, prefix):
    """A connection that is down reports up 0 (no stale queue numbers) while the others keep
    reporting; when its server comes up, it recovers; when the server dies, it goes to 0 again."""
    async def build() -> None:
        from bullmq import Queue

        q = Queue("alive", {"connection": redis_url, "prefix": prefix})
        await q.add("j", {})
        await q.close()
    run_async(build())
    with private_redis() as server:
        server.stop(save=False)  # down from the start
        down = server.url
        with running_exporter([redis_url, down], [prefix], interval=0.5) as url:
            text = scrape_after_polls(url, 2)
            assert value(text, "queue_console_up", connection=redact(down)) == 0
            assert value(text, "queue_console_up", connection=redact(redis_url)) == 1
            assert value(text, "queue_console_jobs", queue="alive", state="waiting", namespace=prefix) == 1
            server.start()  # the server comes up
            r = server.client()
            r.hset(f"{prefix}:later:meta", mapping={"version": "bullmq:6.7.0"})
            r.lpush(f"{prefix}:later:wait", "1", "2")
            r.close()
            text = wait_until("the late server to be up", lambda: (
                t if value(t := scrape(url), "queue_console_up", connection=redact(down)) == 1 else None), 60)
            assert value(text, "queue_console_jobs", connection=redact(down), queue="later", state="waiting") == 2
            server.proc.kill()  # the server dies under the exporter
            server.proc.wait(10)
            server.proc = None
            text = wait_until("the dead server to be down", lambda: (
                t if value(t := scrape(url), "queue_console_up", connection=redact(down)) == 0 else None), 60)
            # still serving, still polling the good connection; nothing stale from the dead one
            assert value(text, "queue_console_up", connection=redact(redis_url)) == 1
            assert not [s for s in samples(text)
                        if s.name == "queue_console_jobs" and s.labels["connection"] == redact(down)]
            before = polls(text)
            assert polls(scrape_after_polls(url, before + 2)) >= before + 2


def _commands_processed(r: redis.Redis) -> int:
    return int(r.info("stats")["total_commands_processed"])  # one client: no connection set-up counted


@pytest.mark.timeout(120)
def test_concurrent_scrapes_cause_no_poll():
    """The server sees no command at all while 40 scrapes (8 at a time) run: they read the last poll."""
    with private_redis() as server:
        port = server.port
        r = server.client()
        for name in ("a", "b", "c"):
            r.hset(f"sq:{name}:meta", mapping={"version": "bullmq:6.7.0"})
            r.lpush(f"sq:{name}:wait", "1")
        with running_exporter([f"redis://127.0.0.1:{port}/0"], ["sq"], interval=3600) as url:
            first = scrape_after_polls(url, 1)
            assert polls(first) == 1
            # two INFO calls back to back differ by exactly the first INFO: the baseline
            a, b = _commands_processed(r), _commands_processed(r)
            assert b - a == 1
            start = _commands_processed(r)
            with ThreadPoolExecutor(8) as pool:
                bodies = list(pool.map(lambda _: scrape(url), range(40)))
            end = _commands_processed(r)
        r.close()
    assert end - start == 1, f"the server processed {end - start - 1} commands during the scrapes"
    assert all(polls(body) == 1 for body in bodies)
    assert all(value(body, "queue_console_jobs", queue="a", state="waiting") == 1 for body in bodies)


@pytest.mark.timeout(120)
def test_read_only_no_write_command_reaches_the_server():
    """MONITOR on a private server through several polls of BullMQ queues (jobs completed, failed,
    waiting, paused): no command the server flags as ``write`` is ever sent by the exporter."""
    with private_redis() as server:
        port, url = server.port, server.url

        async def build() -> None:
            queue, worker = await _fail_and_complete(url, "ro", "q", ok=3, bad=2)
            await worker.close()
            await queue.add("w", {})
            await queue.pause()
            await queue.close()
        run_async(build())
        seen: list[str] = []
        mon_client = redis.Redis(port=port)
        stop = threading.Event()

        def monitor() -> None:
            with mon_client.monitor() as m:
                for cmd in m.listen():
                    if stop.is_set():
                        return
                    seen.append(cmd["command"])

        t = threading.Thread(target=monitor, daemon=True)
        t.start()
        time.sleep(0.3)
        with running_exporter([url], ["ro"], interval=0.3) as metrics:
            text = scrape_after_polls(metrics, 4)
        stop.set()
        redis.Redis(port=port).ping()  # wakes the monitor so it sees stop
        t.join(10)
        assert value(text, "queue_console_jobs", queue="q", state="failed") == 2
        names = {c.split(" ")[0].upper() for c in seen if c}
        assert "LLEN" in names and "ZCARD" in names  # the monitor did see the polls
        r = redis.Redis(port=port)
        table = r.command()  # every command of this server with its flags
        r.close()
        flags = {n: set(table[n.lower()]["flags"]) for n in names if n.lower() in table}
        assert set(flags) == names - {"CLIENT"} or set(flags) == names
        writes = sorted(n for n, f in flags.items() if "write" in f)
        assert writes == [], f"write commands sent: {writes}"


def test_exporter_module_is_headless_and_never_loads_the_action_layer():
    code = ("import sys, json\nimport console.metrics_exporter\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') "
            "or m in ('console.actions', 'console.cli_actions', 'console.requeue_planning'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


@pytest.mark.timeout(120)
def test_cli_textfile_mode_and_bad_listen(redis_url, prefix, tmp_path):
    """The real command: --textfile is rewritten after polls (complete files only); SIGTERM stops it
    with exit 0; a bad --listen is a usage error (exit 2)."""
    bad = subprocess.run([sys.executable, "-m", "console", "metrics", "--url", redis_url, "--listen", "nohost"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    r = redis.Redis.from_url(redis_url)
    r.hset(f"{prefix}:tf:meta", mapping={"version": "bullmq:6.7.0"})
    r.lpush(f"{prefix}:tf:wait", "1", "2", "3")
    r.close()
    out = tmp_path / "queue_console.prom"
    down = f"redis://:pw-SECRET-1@127.0.0.1:{free_port(REDIS_PORTS)}/0"  # nothing listens there
    proc = subprocess.Popen([sys.executable, "-m", "console", "metrics", "--url", redis_url, "--url", down,
                             "--prefix", prefix, "--textfile", str(out), "--interval", "0.5"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = wait_until("the textfile", lambda: out.exists() and "queue_console_jobs{" in (t := out.read_text()) and t, 60)
        assert value_text(body, "queue_console_jobs", queue="tf", state="waiting") == 3
        assert value_text(body, "queue_console_up", connection=redact(down)) == 0
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "writing" in err and "read-only" in err
    assert f"{redact(down)} down: " in err  # the reason is logged, the password is not
    assert "pw-SECRET-1" not in err and "pw-SECRET-1" not in body


def value_text(text: str, name: str, **labels) -> float | None:
    found = [s.value for s in samples(text, openmetrics=False)
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0] if len(found) == 1 else None


def exported_metric_names() -> set[str]:
    """Every sample name the exporter can emit (families' names; counters with _total)."""
    out = set()
    for fam in build_metrics([]):
        out.add(fam.name + "_total" if fam.type == "counter" else fam.name)
    return out


def test_rules_file_is_valid_and_uses_exported_metrics():
    promtool = require_tool("promtool")
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    tests = ROOT / "tests" / "prometheus_rules_test.yml"
    proc = subprocess.run([promtool, "test", "rules", str(tests)], cwd=tests.parent, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import re
    text = RULES.read_text()
    used = set(re.findall(r"\bqueue_console_[a-z_]+", text))
    assert used and used <= exported_metric_names(), used - exported_metric_names()
    for alert in ("QueueDepthGrowing", "QueueFailureRate", "QueueOldestWaiting", "QueueNoWorkers",
                  "QueueConsoleConnectionDown"):
        assert f"alert: {alert}" in text


def test_grafana_dashboard_uses_only_exported_metrics():
    import re
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 6
    used = {m for e in exprs for m in re.findall(r"\bqueue_console_[a-z_]+", e)}
    assert used <= exported_metric_names(), used - exported_metric_names()
    for must in ("queue_console_jobs", "queue_console_oldest_waiting_seconds", "queue_console_workers",
                 "queue_console_up", "queue_console_throughput_jobs_per_second", "queue_console_job_duration_seconds"):
        assert must in used


@contextlib.contextmanager
def prometheus_server(targets: list[str], tmp: Path) -> Iterator[str]:
    """Debian's prometheus on a loopback port of ours, with its own config and storage, scraping
    ``targets`` every second; stopped afterwards. Yields its base URL."""
    binary = require_tool("prometheus")
    port = free_port(PROMETHEUS_PORTS)
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: queue-console\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n")
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
                    return resp.status == 200
            return False
        wait_until("prometheus to be ready", ready, 60, 0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def prom_query(base: str, query: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.timeout(240)
def test_prometheus_scrapes_the_failed_count_bullmq_for_python_reports(redis_url, prefix, tmp_path):
    require_tool("prometheus")
    # a worker's CLIENT SETNAME refuses spaces, newlines and non-ASCII, so the worker-served queue
    # holds quotes and a backslash; the other hostile queue gets its failed entries written raw
    evil = 'pay"\\me'
    raw_evil = "nl\nesc\x1b[2J\u202e"
    counts: dict[str, int] = {}

    async def build() -> None:
        from bullmq import Queue

        for name, ok, bad in (("pay", 2, 5), (evil, 1, 3)):
            queue, worker = await _fail_and_complete(redis_url, prefix, name, ok=ok, bad=bad)
            await worker.close()
            counts[name] = (await queue.getJobCounts("failed"))["failed"]  # the library's own count
            await queue.close()
        queue = Queue(raw_evil, {"connection": redis_url, "prefix": prefix})
        for i in range(4):
            await queue.add("x", {"i": i})
        r = redis.Redis.from_url(redis_url)
        r.zadd(f"{prefix}:{raw_evil}:failed", {"1": 1, "2": 2})
        r.close()
        counts[raw_evil] = (await queue.getJobCounts("failed"))["failed"]
        await queue.close()
    run_async(build())
    assert counts == {"pay": 5, evil: 3, raw_evil: 2}
    with running_exporter([redis_url], [prefix], interval=0.5) as url, \
            prometheus_server([urllib.parse.urlsplit(url).netloc], tmp_path) as prom:
        selector = f'queue_console_jobs{{namespace="{prefix}",state="failed"}}'

        def both_series():
            result = prom_query(prom, selector)
            return result if len(result) == 3 else None
        result = wait_until("Prometheus to hold the three failed series", both_series, 90, 0.5)
        got = {r["metric"]["queue"]: float(r["value"][1]) for r in result}
        assert got == {label_text(name): count for name, count in counts.items()}
        assert label_text(evil) == evil and label_text(raw_evil) == "nl\nesc\\x1b[2J\\u202e"
        one = prom_query(prom, f'queue_console_jobs{{namespace="{prefix}",queue="pay",state="failed"}}')
        assert [float(r["value"][1]) for r in one] == [counts["pay"]]
        # Prometheus's own view of the scrape: healthy (a malformed exposition would make it 0)
        assert [float(r["value"][1]) for r in prom_query(prom, 'up{job="queue-console"}')] == [1.0]
        assert [float(r["value"][1]) for r in prom_query(prom, "queue_console_up")] == [1.0]
        # every dashboard query is valid PromQL for this Prometheus and finds data for our queues
        dashboard = json.loads(DASHBOARD.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$connection", ".*").replace("$queue", "pay")
                result = prom_query(prom, expr)  # asserts status "success"
                if panel["title"] in ("Waiting jobs", "Failed jobs kept", "Workers", "Oldest waiting job",
                                      "Connections up", "Processing time (p50, p95)"):
                    assert result, f"panel {panel['title']!r}: no data for {expr}"


@pytest.mark.timeout(120)
def test_runs_as_a_read_only_acl_user_and_leaves_workers_out_without_client_list():
    """On a private server, a Redis ACL user with read commands only (plus TIME and CLIENT SETNAME,
    no CLIENT LIST): every poll succeeds (no write is ever attempted), counts are there, and
    queue_console_workers is absent (unknown), not 0."""
    with private_redis() as server:
        port = server.port
        r = server.client()
        r.hset("aq:a:meta", mapping={"version": "bullmq:6.7.0"})
        r.lpush("aq:a:wait", "1", "2")
        r.hset("aq:a:1", mapping={"name": "j", "timestamp": str(int(time.time() * 1000) - 5000), "data": "{}"})
        r.execute_command("ACL", "SETUSER", "mon", "on", ">monpw", "~*", "&*",
                          "+@read", "+@connection", "-client", "+client|setname", "+time")
        r.close()
        url = f"redis://mon:monpw@127.0.0.1:{port}/0"
        with running_exporter([url], ["aq"], interval=0.3) as metrics:
            text = scrape_after_polls(metrics, 3)
    assert value(text, "queue_console_up", connection=redact(url)) == 1
    assert value(text, "queue_console_jobs", queue="a", state="waiting") == 2
    assert value(text, "queue_console_oldest_waiting_seconds", queue="a") >= 5
    assert not [s for s in samples(text) if s.name == "queue_console_workers"]


@pytest.mark.interop
@pytest.mark.timeout(240)
@pytest.mark.parametrize("lib", ["v6", "v5"])
def test_workers_equal_bullmq_for_node_get_workers_count(redis_url, prefix, lib):
    """Live BullMQ for Node workers (one unnamed, one named): queue_console_workers equals Node's
    own getWorkersCount(), which reads the base64 client names."""
    from tests.interop.node_env import INTEROP_DIR, NodeFixture, require_node

    env = require_node()
    fixture = NodeFixture(env, redis_url, prefix, "nodeq", lib)
    fixture.args = [env.node, str(INTEROP_DIR / "workers.js"), redis_url, prefix, "nodeq", lib]
    try:
        report = fixture.start(60)
        assert report["workers"] == 2, report
        with running_exporter([redis_url], [prefix]) as url:
            text = scrape_after_polls(url, 1)
        assert value(text, "queue_console_workers", queue="nodeq", namespace=prefix) == report["workers"]
    finally:
        fixture.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("major", ["v10", "v12"])
def test_pgboss_oldest_waiting_and_counts(postgres_url, major):
    """pg-boss (schemas made by the real pg-boss DDL): the oldest ready job's age comes from the
    counts statement; a delayed job does not count; no workers series (pg-boss does not know)."""
    from tests import pgboss_helpers as h

    schema = h.new_schema(f"m{major}")

    async def build() -> None:
        await h.install(postgres_url, major, schema)
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, schema, "pq")
            await h.create_queue(conn, schema, "calm")
            await h.add_job(conn, schema, "pq", "created", start_after_s=-120, created_s=-120)
            await h.add_job(conn, schema, "pq", "created", start_after_s=-30, created_s=-30)
            await h.add_job(conn, schema, "pq", "retry", start_after_s=-10, retry_count=1, started_s=-60)
            await h.add_job(conn, schema, "pq", "created", start_after_s=3600)  # delayed
            await h.add_job(conn, schema, "calm", "created", start_after_s=3600)  # delayed only
    run_async(build())
    try:
        with running_exporter([postgres_url], []) as url:
            text = scrape_after_polls(url, 1)
    finally:
        run_async(h.drop(postgres_url, schema))
    q = {"backend": "pgboss", "namespace": schema}
    assert value(text, "queue_console_jobs", queue="pq", state="waiting", **q) == 3
    assert value(text, "queue_console_jobs", queue="pq", state="delayed", **q) == 1
    age = value(text, "queue_console_oldest_waiting_seconds", queue="pq", **q)
    assert 120 <= age < 180
    assert value(text, "queue_console_oldest_waiting_seconds", queue="calm", **q) == 0
    assert not [s for s in samples(text) if s.name == "queue_console_workers" and s.labels["namespace"] == schema]
