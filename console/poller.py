"""Background polling: one backend thread with its own event loop, one poller per connection.

The UI never waits on the network: every backend call runs on the backend thread's loop, with a
timeout, and results come back as ``Snapshot`` objects through a callback (the TUI turns them into
Textual messages). No Textual import here.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from array import array
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from backends.contract import (Discovery, History, Latency, QueueGauges, QueueRef, QueueStatus, Reader, Throughput,
                               call_with_timeout)
from backends.errors import BackendError
from backends.registry import ConnectOptions, detect_readers, open_readers
from backends.urls import redact

T = TypeVar("T")
HISTORY = 180  # throughput samples kept per queue
#: points of history before the console started (the stores' per-minute points of the last hour)
HISTORY_POINTS = 60
HISTORY_SPAN_MS = 3_600_000
#: the first slice of discovery: the overview shows the queues found in it while discovery goes on
FIRST_DISCOVERY_S = 0.3
#: each later slice of background discovery (paced by the reader), between refreshes
DISCOVERY_SLICE_S = 1.0
#: after the first complete discovery, look again after these many seconds (each), then every
#: ``discover_every_s``: queues created while the console starts show within seconds
EARLY_REDISCOVERY_S = (2.0, 10.0)
#: with a focus set (the overview's rows on screen), every ``FULL_EVERY``-th tick reads every queue;
#: the ticks between read the focused queues and those never read yet
FULL_EVERY = 15
#: with an empty focus (a screen that has not said what it shows yet), latency is read for this
#: many queues first (in discovery order, as the overview lists them), not for all of them
LAUNCH_ROWS = 100


class RateHistory:
    """The last ``size`` throughput samples of one queue, as numbers in fixed arrays (a ring),
    after the points of the hour before the console started where the store keeps them
    (``prefill``: BullMQ's per-minute metrics, pg-boss finish times; at most ``HISTORY_POINTS``).

    Appended on the backend thread, read on the UI thread: both go through a lock, and readers
    get copies. About 3.4 KiB per queue (+1.4 KiB of history), where 180 Throughput models were
    ~190 KiB.

    ``source`` "counts" (a store that keeps no throughput, e.g. Gello): the two series are the
    waiting and failed counts as the console sampled them, not rates."""

    __slots__ = ("_at", "_done", "_fail", "_capped", "_next", "_len", "source", "_lock",
                 "_h_at", "_h_done", "_h_fail", "history_source", "unavailable", "history_note")

    def __init__(self, size: int = HISTORY) -> None:
        self._at = array("d", bytes(8 * size))
        self._done = array("d", bytes(8 * size))
        self._fail = array("d", bytes(8 * size))
        self._capped = array("b", bytes(size))
        self._next = 0
        self._len = 0
        self.source = "none"
        self._lock = threading.Lock()
        self._h_at = array("d")
        self._h_done = array("d")
        self._h_fail = array("d")
        self.history_source: str | None = None  # where the prefilled points come from
        self.unavailable: str | None = None  # why there are none (shown instead of an empty chart)
        self.history_note: str | None = None

    def prefill(self, history: History) -> None:
        """The points before the first sample (once per queue; a later call replaces them)."""
        n = min(len(history.at_ms), HISTORY_POINTS)
        with self._lock:
            self._h_at = array("d", history.at_ms[-n:] if n else [])
            self._h_done = array("d", history.completed_per_s[-n:] if n else [])
            self._h_fail = array("d", history.failed_per_s[-n:] if n else [])
            self.history_source = history.source if n else None
            self.unavailable = history.unavailable
            self.history_note = history.note

    def append(self, sample: Throughput) -> None:
        self.append_values(sample.at_ms, sample.completed_per_s, sample.failed_per_s, sample.capped, sample.source)

    def append_values(self, at_ms: float, done: float, fail: float, capped: bool, source: str) -> None:
        with self._lock:
            i = self._next
            self._at[i], self._done[i], self._fail[i] = at_ms, done, fail
            self._capped[i] = 1 if capped else 0
            self._next = (i + 1) % len(self._at)
            self._len = min(self._len + 1, len(self._at))
            self.source = source

    def __len__(self) -> int:
        return self._len + len(self._h_at)

    def _tail(self, arr: array, n: int | None) -> list:
        count = self._len if n is None else min(n, self._len)
        size = len(arr)
        start = (self._next - count) % size
        if start + count <= size:
            return arr[start:start + count].tolist()
        return arr[start:].tolist() + arr[:(start + count) - size].tolist()

    def _history_upto(self) -> int:
        """How many prefilled points come before the first live sample and within the hour
        before the newest point."""
        if not self._h_at:
            return 0
        first_live = self._at[(self._next - self._len) % len(self._at)] if self._len else None
        k = len(self._h_at)
        if first_live is not None:
            while k and self._h_at[k - 1] >= first_live:
                k -= 1
        return k

    def _merged(self, live: array, hist: array, n: int | None) -> list:
        if n is not None and self._len >= n:  # the overview's sparklines: the live ring alone
            return self._tail(live, n)
        k = self._history_upto()
        newest = self._at[(self._next - 1) % len(self._at)] if self._len else (self._h_at[k - 1] if k else 0)
        start = 0
        while start < k and self._h_at[start] < newest - HISTORY_SPAN_MS:
            start += 1
        out = hist[start:k].tolist() + self._tail(live, None)
        return out if n is None else out[-n:]

    def completed(self, n: int | None = None) -> list[float]:
        with self._lock:
            return self._merged(self._done, self._h_done, n)

    def failed(self, n: int | None = None) -> list[float]:
        with self._lock:
            return self._merged(self._fail, self._h_fail, n)

    def series(self) -> tuple[list[float], list[float], list[float]]:
        """(times in ms, completed/s, failed/s), oldest first, taken together: the prefilled
        history (the last hour) and then the live samples."""
        with self._lock:
            return (self._merged(self._at, self._h_at, None), self._merged(self._done, self._h_done, None),
                    self._merged(self._fail, self._h_fail, None))

    def live_count(self) -> int:
        return self._len

    def last(self) -> tuple[float, float, bool] | None:
        """(completed/s, failed/s, capped) of the newest sample (the newest history point before
        the first sample). None for sampled counts ("counts"): they are not rates."""
        with self._lock:
            if self.source == "counts":
                return None
            if not self._len:
                k = self._history_upto()
                return (self._h_done[k - 1], self._h_fail[k - 1], False) if k else None
            i = (self._next - 1) % len(self._at)
            return self._done[i], self._fail[i], bool(self._capped[i])

    def any_capped(self) -> bool:
        with self._lock:
            return any(self._tail(self._capped, None))


class BackendThread:
    """An asyncio loop on a daemon thread; ``submit`` runs a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="queue-console-backend", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 3.0) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            try:
                self.submit(_cancel_all()).result(timeout)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)


@dataclass
class Snapshot:
    """What one connection looks like now. ``statuses`` may be stale when ``error`` is set."""

    connection: str  # redacted
    statuses: list[QueueStatus] = field(default_factory=list)
    throughput: dict[tuple, RateHistory] = field(default_factory=dict)  # history per queue key (shared, not copied)
    latency: dict[tuple, Latency] = field(default_factory=dict)
    discoveries: list[Discovery] = field(default_factory=list)
    error: str | None = None
    last_ok: float | None = None  # time.time() of the last good refresh
    connected: bool = False
    refresh_ms: float | None = None  # duration of the last counts round trip
    gauges: dict[tuple, QueueGauges] = field(default_factory=dict)  # only when the poller reads them
    poll_s: float | None = None  # duration of the last poll (connect if needed, counts, rates, latency, gauges)
    polls: int = 0  # polls done so far, good or failed (a failed connect is one)
    #: queue keys whose counts the last refresh read (all of them unless the poller has a focus)
    fresh: frozenset = frozenset()
    #: time.time() of the last read of each queue's counts
    read_at: dict[tuple, float] = field(default_factory=dict)
    standby: dict | None = None  # PostgreSQL: {"standby", "replica_lag_s", ...} (backends/postgres_topology)
    interval: float | None = None  # seconds between refreshes (what "late" is measured against)

    def stale_for(self, now: float | None = None, late_after: float = 2.0) -> float | None:
        """Age in seconds of the data shown when a refresh is late (no good refresh for
        ``late_after`` refresh intervals), else None. Known long before an op timeout fires."""
        if self.last_ok is None or not self.interval:
            return None
        age = (time.time() if now is None else now) - self.last_ok
        return age if age > late_after * self.interval else None


class Poller:
    """Polls one connection: counts and throughput every tick, latency and discovery less often.

    With a focus (``set_focus``: the queues on screen), a tick reads counts and throughput of the
    focused queues (and of queues never read yet) only, and every ``full_every``-th tick reads all
    of them: Redis work follows what is shown, not how many queues there are."""

    def __init__(
        self,
        raw_url: str,
        options: ConnectOptions,
        interval: float,
        on_snapshot: Callable[[Snapshot], None],
        latency_every: int = 30,
        discover_every_s: float = 60.0,
        read_gauges: bool = False,
        read_history: bool = True,
    ) -> None:
        self.raw_url = raw_url
        self.url = redact(raw_url)
        self.options = options
        self.interval = interval
        self.on_snapshot = on_snapshot
        self.latency_every = latency_every
        self.discover_every_s = discover_every_s
        self.early_rediscovery_s: tuple[float, ...] = EARLY_REDISCOVERY_S
        self.read_gauges = read_gauges  # oldest waiting age and workers (the metrics exporter)
        self.read_history = read_history  # the hour before the start, for charts (not the exporter)
        self.readers: list[Reader] = []
        self.snapshot = Snapshot(connection=self.url, interval=interval)
        self._history: dict[tuple, RateHistory] = {}
        self._reader_of: dict[tuple, Reader] = {}
        self._discovery_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._last_discovery = 0.0
        self._tick = 0
        self.frozen = False
        self.full_every = FULL_EVERY
        self._focus: frozenset | None = None  # None: every queue every tick
        self._status_of: dict[tuple, QueueStatus] = {}
        self._read_at: dict[tuple, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``run`` runs on
        self._latency_read: set[tuple] = set()  # queues whose latency has been read
        self._history_read: set[tuple] = set()  # queues whose history (Reader.history) has been read

    # -- helpers used by screens through the backend thread --------------------------------
    def reader_for(self, queue: QueueRef) -> Reader | None:
        return self._reader_of.get(queue.key)

    def _set_discoveries(self, discoveries: list[Discovery]) -> None:
        self._reader_of = {q.key: reader for reader, disc in zip(self.readers, discoveries) for q in disc.queues}
        self.snapshot.discoveries = discoveries

    def refresh_now(self) -> None:
        self._wake.set()

    @property
    def focus(self) -> frozenset | None:
        return self._focus

    def set_focus(self, keys: frozenset | None) -> None:
        """The queues to read every tick (None: all). Called from the UI thread: one reference
        assignment; a focused queue the last refresh did not read (or whose latency was never read)
        brings the next refresh forward."""
        if keys == self._focus:
            return
        self._focus = keys
        loop = self._loop
        behind = keys is not None and not (keys <= self.snapshot.fresh and keys <= self._latency_read)
        if behind and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.refresh_now)  # asyncio.Event is not thread-safe

    async def call(self, queue: QueueRef, fn: Callable[[Reader], Awaitable[T]], what: str) -> T:
        reader = self.reader_for(queue)
        if reader is None:
            raise BackendError(f"not connected to {self.url}")
        return await call_with_timeout(fn(reader), self.options.op_timeout, what)

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Poll until cancelled; a cancel (quitting, a context switch) closes the readers whatever
        the loop was doing, so no connection is left open, and no transaction idle, behind it."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._poll_forever()
        except asyncio.CancelledError:
            await self._close_readers()
            raise

    async def _poll_forever(self) -> None:
        backoff = 1.0
        while True:
            started = time.perf_counter()
            try:
                if not self.readers:
                    await self._connect()
                    backoff = 1.0
                if not self.frozen:
                    await self._refresh()
                self.snapshot.error = None
                self.snapshot.connected = True
            except Exception as exc:  # the loop must survive anything a server does
                self.snapshot.error = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
                self.snapshot.connected = False
                await self._close_readers()
                self._polled(started)
                self._emit()
                await self._sleep(min(backoff, 30.0))
                backoff *= 2
                continue
            self._polled(started)
            self._emit()
            await self._sleep(self.interval)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _connect(self) -> None:
        # the primary system's reader only: detecting the others (Gello: a time-boxed SCAN, a second
        # on a 2M-key keyspace, unless the kept scan holds its verdict) runs in the background after
        # the first rows, and their readers join the next discovery slice
        options = replace(self.options, discovery_cache=True)
        self.readers = await open_readers(self.raw_url, options, detect=False)
        # a first short slice, so that the first rows show at once; the rest goes on in the background
        complete = await self._discover_step(FIRST_DISCOVERY_S)
        self._discovery_task = asyncio.get_running_loop().create_task(self._discover_in_background(complete, options))

    async def _discover_step(self, budget_s: float) -> bool:
        """One slice of discovery on every reader; True when every reader has been through once."""
        timeout = self.options.op_timeout + max(budget_s, self.options.discovery_budget_s)
        discoveries = []
        for reader in self.readers:
            discoveries.append(await call_with_timeout(reader.discover_step(budget_s), timeout,
                                                       f"discovering queues at {self.url}"))
        self._set_discoveries(discoveries)
        return all(d.complete for d in discoveries)

    async def _discover_in_background(self, complete: bool, options: ConnectOptions) -> None:
        """Other systems' detection first, then paced discovery beside the refreshes: slice after
        slice until a pass is complete, then again after each of ``early_rediscovery_s`` and from
        then on every ``discover_every_s``. The early passes catch queues created while the console
        started (an application, or the demo, creating its queues then: issue 12 item 16, 8 of 9
        demo queues until the 60 s pass). A failure here is left to the refresh loop to report."""
        early = list(self.early_rediscovery_s)
        try:
            others = await detect_readers(self.readers, self.raw_url, options)
        except asyncio.CancelledError:
            raise
        except Exception:
            others = []  # the primary system's queues stay on screen; a reconnect detects again
        if others:
            self.readers.extend(others)
            try:
                complete = await self._discover_step(FIRST_DISCOVERY_S)
                self.refresh_now()  # their first queues, without waiting for the next tick
            except asyncio.CancelledError:
                raise
            except Exception:
                complete = False
        while True:
            if complete:
                self._last_discovery = time.monotonic()
                await asyncio.sleep(early.pop(0) if early else self.discover_every_s)
            known = set(self._reader_of)
            try:
                complete = await self._discover_step(DISCOVERY_SLICE_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                complete = False
                await asyncio.sleep(self.interval)
                continue
            if not set(self._reader_of) <= known:
                self.refresh_now()  # new queues: show them without waiting for the next tick

    def _history_of(self, key: tuple) -> RateHistory:
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = RateHistory()
        return history

    async def _read_history(self, reader: Reader, queues: list[QueueRef], focus: frozenset | None) -> None:
        """The hour before the console started, read once per queue when it is first on screen
        (with an empty focus, the first LAUNCH_ROWS in discovery order, as the overview lists
        them): so the first frame of a chart is not empty. A failure leaves it said, not retried."""
        if focus is None:
            wanted = [q for q in queues if q.key not in self._history_read]
        elif not focus:
            wanted = [q for q in queues[:LAUNCH_ROWS] if q.key not in self._history_read]
        else:
            wanted = [q for q in queues if q.key in focus and q.key not in self._history_read]
        if not wanted or not self.read_history:
            return
        self._history_read.update(q.key for q in wanted)
        try:
            records = await call_with_timeout(reader.history(wanted), self.options.op_timeout,
                                              f"reading throughput history at {self.url}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # history is a nicety: the refresh goes on without it
            reason = str(exc) if isinstance(exc, BackendError) else type(exc).__name__
            records = [History(queue=q, unavailable=f"no history: {reason}") for q in wanted]
        for record in records:
            self._history_of(record.queue.key).prefill(record)

    def _polled(self, started: float) -> None:
        self.snapshot.polls += 1
        self.snapshot.poll_s = time.perf_counter() - started

    async def _refresh(self) -> None:
        focus = self._focus
        full = focus is None or self._tick % self.full_every == 0
        picked = []  # per reader, the queues this tick reads
        for disc in self.snapshot.discoveries:
            if full:
                picked.append(list(disc.queues))
            else:
                picked.append([q for q in disc.queues if q.key in focus or q.key not in self._status_of])
        started = time.perf_counter()
        now = time.time()
        read: list[QueueStatus] = []
        for reader, queues in zip(self.readers, picked):
            read.extend(await call_with_timeout(reader.statuses(queues), self.options.op_timeout,
                                                f"reading counts at {self.url}"))
        self.snapshot.refresh_ms = (time.perf_counter() - started) * 1000
        for reader, disc, queues in zip(self.readers, self.snapshot.discoveries, picked):
            if reader.capabilities.throughput:
                samples = await call_with_timeout(reader.throughput(queues), self.options.op_timeout,
                                                  f"reading throughput at {self.url}")
                for s in samples:
                    self._history_of(s.queue.key).append(s)
                await self._read_history(reader, queues, focus)
            else:  # no throughput in this store: the waiting and failed counts as sampled here
                for st in read:
                    if self._reader_of.get(st.queue.key) is reader and not st.malformed:
                        self._history_of(st.queue.key).append_values(
                            now * 1000, st.counts.get("waiting") or 0, st.counts.get("failed") or 0, False, "counts")
            if reader.capabilities.latency:
                latency_tick = self._tick % self.latency_every == 0
                if focus is None:
                    lat_queues = queues if latency_tick else []
                elif not focus:  # nothing on screen yet: the first rows a screen shows
                    lat_queues = queues[:LAUNCH_ROWS] if latency_tick else []
                else:  # the focused queues, and a queue coming into focus at once
                    lat_queues = [q for q in queues if q.key in focus
                                  and (latency_tick or q.key not in self._latency_read)]
                if lat_queues:
                    for lat in await call_with_timeout(reader.latency(lat_queues), self.options.op_timeout,
                                                       f"reading latency at {self.url}"):
                        self.snapshot.latency[lat.queue.key] = lat
                    self._latency_read.update(q.key for q in lat_queues)
            if self.read_gauges:
                for g in await call_with_timeout(reader.gauges(disc.queues), self.options.op_timeout,
                                                 f"reading waiting age and workers at {self.url}"):
                    self.snapshot.gauges[g.queue.key] = g
        if any(getattr(getattr(r, "url", None), "kind", None) == "postgres" for r in self.readers):
            # imported here: it imports asyncpg (~1.4 MiB), which a console on Redis alone never needs
            from backends.postgres_topology import standby_state

            self.snapshot.standby = await standby_state(self.readers, self.options.op_timeout)
        else:
            self.snapshot.standby = None
        self._tick += 1
        listed = {q.key for disc in self.snapshot.discoveries for q in disc.queues}
        if full:  # queues no discovery lists any more go, with their histories
            self._status_of = {}
            for gone in [k for k in self._history if k not in listed]:
                del self._history[gone]
            for gone in [k for k in self.snapshot.latency if k not in listed]:
                del self.snapshot.latency[gone]
            self._read_at = {k: t for k, t in self._read_at.items() if k in listed}
            self._latency_read &= listed
            self._history_read &= listed
        for st in read:
            self._status_of[st.queue.key] = st
            self._read_at[st.queue.key] = now
        self.snapshot.statuses = [st for disc in self.snapshot.discoveries for q in disc.queues
                                  if (st := self._status_of.get(q.key)) is not None]
        self.snapshot.fresh = frozenset(st.queue.key for st in read)
        self.snapshot.throughput = self._history
        self.snapshot.last_ok = time.time()

    def _emit(self) -> None:
        snap = self.snapshot
        self.on_snapshot(Snapshot(
            connection=snap.connection, statuses=list(snap.statuses), throughput=dict(snap.throughput),
            latency=dict(snap.latency), discoveries=list(snap.discoveries), error=snap.error,
            last_ok=snap.last_ok, connected=snap.connected, refresh_ms=snap.refresh_ms, interval=snap.interval,
            gauges=dict(snap.gauges), poll_s=snap.poll_s, polls=snap.polls, fresh=snap.fresh,
            read_at=dict(self._read_at), standby=snap.standby,
        ))

    async def _close_readers(self) -> None:
        task, self._discovery_task = self._discovery_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        readers, self.readers = self.readers, []
        for reader in readers:
            try:
                await reader.close()
            except Exception:
                pass
