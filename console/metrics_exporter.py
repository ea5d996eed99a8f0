"""``queue-console metrics``: a Prometheus exporter over the same readers and pollers as the TUI.

One ``Poller`` per connection (console.poller) runs on the backend thread every ``interval``
seconds, read-only. Scrapes never reach a server: ``collect`` turns the last snapshot of each
connection into metric families, so any number of concurrent scrapes costs one poll per interval.
Plain Python and prometheus_client; no Textual, no action layer (nothing here can write).

Label values are the redacted connection URL and the queue's backend, namespace (BullMQ key
prefix / pg-boss schema) and name. Queue names are untrusted: bytes that are not UTF-8 become
``\\xNN`` and control/bidi characters become visible escapes (``console.safe_text.clean``);
quotes, backslashes and newlines are escaped by the exposition format itself.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from backends.errors import BadRequest
from backends.urls import parse
from console.config import Settings
from console.connections import connect_options
from console.poller import BackendThread, Poller, Snapshot
from console.safe_text import clean

log = logging.getLogger("queue-console.metrics")
DEFAULT_LISTEN = "127.0.0.1:9466"
DEFAULT_INTERVAL_S = 15.0
#: the latency sample (up to 50 job hashes per queue) is re-read about this often, not every poll:
#: measured, it is most of a poll's cost (200 BullMQ queues: latency 1.16 s, counts 0.11 s,
#: oldest-waiting + workers 0.10 s, throughput 0.02 s; redis-py parsing 10,000 replies)
LATENCY_EVERY_S = 60.0
QUEUE_LABELS = ("connection", "backend", "namespace", "queue")
QUANTILES = (("0.5", "run_p50_ms", "wait_p50_ms"), ("0.95", "run_p95_ms", "wait_p95_ms"))


def label_text(value: str) -> str:
    """A label value for an untrusted string: valid UTF-8, no raw control or bidi characters."""
    return clean(value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


class Exporter:
    """Polls every connection in the background; a prometheus_client collector over the results."""

    def __init__(self, settings: Settings, interval: float) -> None:
        # read-only by construction: the options say so (no background writes such as pg-boss's
        # re-park sweep), and this module only ever calls the readers' read methods
        self.options = dataclasses.replace(connect_options(settings), read_only=True)
        self.interval = interval
        self.urls = settings.effective_urls()
        for raw in self.urls:
            parse(raw)  # a bad URL is a usage error before anything starts
        self._lock = threading.Lock()
        self._snapshots: dict[int, Snapshot] = {}
        self.reports = 0  # snapshots received so far (a failed connect reports too)
        self.polled = threading.Condition(self._lock)  # notified on every snapshot
        self._pollers = [
            Poller(raw, self.options, interval, self._on_snapshot_of(i), read_gauges=True, read_history=False,
                   latency_every=max(1, round(LATENCY_EVERY_S / interval)))
            for i, raw in enumerate(self.urls)
        ]
        self._thread: BackendThread | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = BackendThread()
        for poller in self._pollers:
            self._thread.submit(poller.run())

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _on_snapshot_of(self, index: int):
        def on_snapshot(snap: Snapshot) -> None:  # on the backend thread
            before = self._snapshots.get(index)
            if snap.error and snap.error != (before.error if before else None):
                log.warning("%s down: %s", snap.connection, clean(snap.error))
            elif not snap.error and (before is None or before.error):
                log.info("%s up", snap.connection)
            with self.polled:
                self._snapshots[index] = snap
                self.reports += 1
                self.polled.notify_all()
        return on_snapshot

    def snapshots(self) -> list[Snapshot]:
        """The last snapshot of every connection (an empty, disconnected one before its first poll)."""
        with self._lock:
            return [self._snapshots.get(i) or Snapshot(connection=p.url) for i, p in enumerate(self._pollers)]

    # -- the collector -----------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        return iter(build_metrics(self.snapshots()))


def build_metrics(snapshots: Iterable[Snapshot]) -> list[Metric]:
    """Metric families for the given snapshots (no I/O)."""
    up = GaugeMetricFamily("queue_console_up", "1 when the last poll of the connection succeeded, else 0",
                           labels=["connection"])
    scrape = GaugeMetricFamily("queue_console_scrape_duration_seconds",
                               "Seconds the last poll of the connection took (connect if needed, counts, rates, latency, gauges)",
                               labels=["connection"])
    polls = CounterMetricFamily("queue_console_polls", "Polls of the connection so far (good or failed)",
                                labels=["connection"])
    last_ok = GaugeMetricFamily("queue_console_last_success_timestamp_seconds",
                                "Unix time of the last good poll of the connection", labels=["connection"])
    jobs = GaugeMetricFamily("queue_console_jobs", "Jobs of the queue per canonical state",
                             labels=[*QUEUE_LABELS, "state"])
    paused = GaugeMetricFamily("queue_console_paused", "1 when the queue is paused", labels=list(QUEUE_LABELS))
    oldest = GaugeMetricFamily("queue_console_oldest_waiting_seconds",
                               "Seconds the job next in line has been waiting (0 when none waits)",
                               labels=list(QUEUE_LABELS))
    throughput = GaugeMetricFamily("queue_console_throughput_jobs_per_second",
                                   "Jobs finished per second over the last poll interval, by status",
                                   labels=[*QUEUE_LABELS, "status"])
    duration = GaugeMetricFamily("queue_console_job_duration_seconds",
                                 "Processing time (finished - started) over the most recent completed jobs",
                                 labels=[*QUEUE_LABELS, "quantile"])
    wait = GaugeMetricFamily("queue_console_job_wait_seconds",
                             "Wait before processing (started - enqueued) over the most recent completed jobs",
                             labels=[*QUEUE_LABELS, "quantile"])
    sample = GaugeMetricFamily("queue_console_job_duration_sample_jobs",
                               "Completed jobs in the latency sample behind the quantiles", labels=list(QUEUE_LABELS))
    workers = GaugeMetricFamily("queue_console_workers", "Workers connected for the queue (where the store knows)",
                                labels=list(QUEUE_LABELS))
    conns: set[str] = set()
    for snap in snapshots:
        conn = label_text(snap.connection)
        # two --url values may redact alike (same host, different passwords): number the later ones
        n = 1
        while conn in conns:
            n += 1
            conn = f"{label_text(snap.connection)}#{n}"
        conns.add(conn)
        up.add_metric([conn], 1.0 if snap.connected and snap.error is None else 0.0)
        polls.add_metric([conn], float(snap.polls))
        if snap.poll_s is not None:
            scrape.add_metric([conn], snap.poll_s)
        if snap.last_ok is not None:
            last_ok.add_metric([conn], snap.last_ok)
        if not snap.connected or snap.error is not None:
            continue  # no stale queue numbers: Prometheus marks the series stale, alerts use queue_console_up
        seen: set[tuple[str, ...]] = set()
        for status in snap.statuses:
            q = status.queue
            labels = [conn, label_text(q.backend), label_text(q.namespace), label_text(q.name)]
            if tuple(labels) in seen:
                continue  # two raw names that escape alike: the first one only (duplicate series are invalid)
            seen.add(tuple(labels))
            for state, count in status.counts.items():
                if count is not None:
                    jobs.add_metric([*labels, state], float(count))
            paused.add_metric(labels, 1.0 if status.paused else 0.0)
            history = snap.throughput.get(q.key)  # a RateHistory (console.poller)
            last = history.last() if history is not None else None
            if last is not None:
                completed_per_s, failed_per_s, _capped = last
                throughput.add_metric([*labels, "completed"], completed_per_s)
                throughput.add_metric([*labels, "failed"], failed_per_s)
            lat = snap.latency.get(q.key)
            if lat is not None and lat.sample_size:
                sample.add_metric(labels, float(lat.sample_size))
                for quantile, run_field, wait_field in QUANTILES:
                    run_ms, wait_ms = getattr(lat, run_field), getattr(lat, wait_field)
                    if run_ms is not None:
                        duration.add_metric([*labels, quantile], run_ms / 1000.0)
                    if wait_ms is not None:
                        wait.add_metric([*labels, quantile], wait_ms / 1000.0)
            g = snap.gauges.get(q.key)
            if g is not None and g.oldest_waiting_s is not None:
                oldest.add_metric(labels, g.oldest_waiting_s)
            if g is not None and g.workers is not None:
                workers.add_metric(labels, float(g.workers))
    return [up, scrape, polls, last_ok, jobs, paused, oldest, throughput, duration, wait, sample, workers]


def add_parser(sub, connection_flags) -> None:
    """The ``metrics`` subcommand (registered by console.cli)."""
    p = sub.add_parser("metrics", help="serve queue metrics to Prometheus (OpenMetrics), read-only")
    connection_flags(p)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help=f"serve /metrics here (default {DEFAULT_LISTEN} unless --textfile is given alone)")
    p.add_argument("--textfile", metavar="PATH",
                   help="also (or only) rewrite this .prom file after every poll (node_exporter textfile collector)")
    p.add_argument("--interval", type=float, metavar="S", default=DEFAULT_INTERVAL_S,
                   help=f"seconds between polls of each connection (default {DEFAULT_INTERVAL_S:g})")


def run_cli(args, settings: Settings) -> None:
    """``queue-console metrics``: runs until SIGINT/SIGTERM."""
    import signal
    import sys

    if not 0.5 <= args.interval <= 3600:
        raise BadRequest(f"--interval must be between 0.5 and 3600 seconds, got {args.interval:g}")
    listen = args.listen or (None if args.textfile else DEFAULT_LISTEN)
    logging.basicConfig(level=logging.INFO, format="queue-console metrics: %(message)s", stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    serve(settings, listen, args.textfile, args.interval, stop,
          on_ready=lambda where: print(f"queue-console metrics: {where}", file=sys.stderr, flush=True))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``; ``:PORT`` listens on every address) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"--listen expects HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def serve(settings: Settings, listen: str | None, textfile: str | None, interval: float,
          stop: threading.Event | None = None, on_ready=None) -> None:
    """Run until ``stop`` is set (or forever): poll, serve ``listen`` and/or rewrite ``textfile``."""
    from prometheus_client import start_http_server, write_to_textfile

    exporter = Exporter(settings, interval)
    stop = stop or threading.Event()
    server = None
    address = parse_listen(listen) if listen else None
    exporter.start()
    try:
        if address:
            try:
                server, _ = start_http_server(address[1], addr=address[0], registry=exporter.registry)
            except OSError as exc:
                raise BadRequest(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        if on_ready:
            where = [f"serving http://{listen}/metrics" if address else None,
                     f"writing {textfile} after every poll" if textfile else None]
            on_ready("; ".join(w for w in where if w) + f", polling every {interval:g} s (read-only)")
        seen = -1
        while not stop.is_set():
            with exporter.polled:
                exporter.polled.wait(0.5)
            if textfile and exporter.reports != seen:
                seen = exporter.reports
                try:
                    write_to_textfile(textfile, exporter.registry)  # temp file + rename: never half a file
                except OSError as exc:  # a full disk or a changed permission: say so and keep polling
                    log.warning("cannot write %s: %s", textfile, exc.strerror or exc)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        exporter.stop()
