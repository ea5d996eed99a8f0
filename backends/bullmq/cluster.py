"""BullMQ on a Redis Cluster: one BullMQReader per master, each serving the queues of its slots.

BullMQ runs on a cluster only when every key of a queue is in one hash slot, i.e. its prefix (or
the queue name) holds a hash tag: ``{bull}`` (every queue of the prefix in one slot) or
``bull:{orders}``-style names (one slot per queue). Then each queue lives whole on one master, and:

- discovery SCANs every master (a SCAN sees one node's keys), each node classifying only the queues
  whose slot it serves;
- counts, pages, job detail, logs, metrics and every mutation (the vendored per-version Lua
  included) go to the master of the queue's slot; the count script groups queues by slot
  (``read_scripts.calls_by_slot``), and a bulk action's batches are single-slot scripts, so nothing
  ever needs a cross-slot transaction;
- the console's own keys (audit stream, pause memory, policy ledger) get a hash-tagged prefix
  (``{queue-console}`` by default: ``redis_cluster.tagged``), so they live in one slot.

Queue-looking keys whose prefix has no hash tag cannot belong to a working BullMQ queue on a
cluster (BullMQ's scripts use several of a queue's keys at once and Redis refuses them with
CROSSSLOT): discovery does not list them, and says so in its note, naming them.

The slot map is read again at every full discovery and at least once a minute by the background
discovery (a resharding or a failover moves slots); a read that meets MOVED / ASK / CLUSTERDOWN in
between is sent again on the map read again, a mutation stops with one line saying so.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, TypeVar

import redis.asyncio as aioredis

from backends.bullmq.reader import BullMQReader
from backends.contract import (
    BatchOutcome, ConsoleStore, Discovery, History, JobDetail, JobOutcome, JobSummary, Latency, Page, QueueGauges, QueueRef,
    QueueStatus, Reader, Throughput,
)
from backends.errors import BackendError
from backends.redis_client import redis_errors
from backends.redis_cluster import SlotMap, hash_tag, moved, node_client, read_slot_map, tagged
from backends.redis_console_store import RedisConsoleStore
from backends.urls import ConnectionUrl

T = TypeVar("T")
#: queue-looking prefixes without a hash tag named in the discovery note (the rest are counted)
SPLIT_NAMED = 5
#: the TUI's background discovery reads the slot map again at least this often (seconds)
SLOT_MAP_MAX_AGE_S = 60.0


class ClusterNode:
    """One master as its BullMQReader sees it: which queues it serves."""

    def __init__(self, topology: "ClusterTopology", address: tuple[str, int]) -> None:
        self.topology = topology
        self.address = address

    def serves(self, prefix: str, name: str) -> bool:
        base = f"{prefix}:{name}"
        if hash_tag(base) is None:
            self.topology.split.add((prefix, name))
            return False
        return self.topology.owner_of(base) == self.address


class ClusterTopology:
    """The slot map, and the queue-looking keys seen without a hash tag."""

    def __init__(self, slots: SlotMap) -> None:
        self.slots = slots
        self.split: set[tuple[str, str]] = set()
        self.stale = False  # a MOVED/ASK/CLUSTERDOWN was met: read the map again before the next call

    def owner_of(self, base: str) -> tuple[str, int]:
        index = self.slots.owner(base + ":meta")
        if index < 0:
            raise BackendError(f"no master serves the hash slot of {base} (the cluster is not fully covered)")
        return self.slots.masters[index]


async def open_cluster_reader(seed: aioredis.Redis, url: ConnectionUrl, options) -> "BullMQClusterReader":
    from backends.contract import call_with_timeout

    try:
        async with redis_errors(url):
            slots = await call_with_timeout(read_slot_map(seed, seed.connection_pool.connection_kwargs.get("host", "127.0.0.1")), options.connect_timeout,
                                            f"asking Redis at {url.host_label} for the cluster's slots")
    except BaseException:
        await seed.aclose()
        raise
    return BullMQClusterReader(seed, url, options, ClusterTopology(slots))


class BullMQClusterReader(Reader):
    """The Reader of a cluster: every call is routed to the BullMQReader of the queue's master."""

    backend = "bullmq"
    capabilities = BullMQReader.capabilities
    #: Gello's detection skips a cluster (backends/gello/declaration.py)
    cluster = True

    def __init__(self, seed: aioredis.Redis, url: ConnectionUrl, options, topology: ClusterTopology) -> None:
        self.seed = seed
        self.url = url
        self.options = options
        self.topology = topology
        self.gello_detected = None
        self.nodes: dict[tuple[str, int], BullMQReader] = {}
        self.store_prefix = tagged(options.store_prefix)
        self._refreshed_at = time.monotonic()
        self._sync_nodes()

    # ------------------------------------------------------------------ nodes and routing
    def _sync_nodes(self) -> list[BullMQReader]:
        """A reader for every master of the slot map (kept for masters already known); returns the
        readers of addresses that serve no slot any more, for the caller to close."""
        gone = [a for a in self.nodes if a not in self.topology.slots.masters]
        for host, port in self.topology.slots.masters:
            if (host, port) not in self.nodes:
                self.nodes[(host, port)] = BullMQReader(
                    node_client(self.seed, host, port), self.url, prefixes=self.options.prefixes or None,
                    discovery_budget_s=self.options.discovery_budget_s, store_prefix=self.store_prefix,
                    use_discovery_cache=False, write_discovery_cache=False,
                    cluster_node=ClusterNode(self.topology, (host, port)))
        return [self.nodes.pop(a) for a in gone]

    async def _refresh(self) -> None:
        """Read the slot map again (from any master that answers) and open readers for new masters."""
        errors = []
        for reader in [*self.nodes.values()]:
            try:
                async with redis_errors(self.url):
                    self.topology.slots = await read_slot_map(reader.client, reader.cluster_node.address[0])
                break
            except BackendError as exc:
                errors.append(str(exc))
        else:
            raise BackendError(f"no master of the Redis Cluster at {self.url.host_label} answered: {errors[0]}")
        self.topology.stale = False
        self._refreshed_at = time.monotonic()
        for reader in self._sync_nodes():
            await reader.close()

    def _owner(self, queue: QueueRef) -> tuple[str, int]:
        return self.topology.owner_of(f"{queue.namespace}:{queue.name}")

    def _known_node(self, queue: QueueRef) -> BullMQReader:
        """The owner as last read (for the synchronous questions: capabilities, notes)."""
        return self.nodes[self._owner(queue)]

    async def _routed(self, what: str, call: Callable[[], Awaitable[T]], read: bool) -> T:
        """``call`` with a fresh slot map if the last one is known stale. A MOVED / ASK /
        CLUSTERDOWN reply marks the map stale: a read is sent once more on the map read again (a
        MOVED command was not run), a mutation stops with one line (the action reports how far it
        got, and running it again goes to the new master)."""
        for attempt in (1, 2):
            if self.topology.stale:
                await self._refresh()
            try:
                return await call()
            except BackendError as exc:
                if not moved(exc.__cause__):
                    raise
                self.topology.stale = True
                if not read or attempt == 2:
                    cause = exc.__cause__
                    where = f"moved to {cause.host}:{cause.port}" if hasattr(cause, "host") else f"moved ({cause})"
                    raise BackendError(f"Redis Cluster at {self.url.host_label}: the slot of {what} {where}; "
                                       "the slot map is read again on the next call") from exc
        raise AssertionError("unreachable")

    async def _on(self, queue: QueueRef, call: Callable[[BullMQReader], Awaitable[T]], read: bool = True) -> T:
        return await self._routed(queue.qualified, lambda: call(self.nodes[self._owner(queue)]), read)

    async def _each(self, queues: list[QueueRef], call: Callable[[BullMQReader, list[QueueRef]], Awaitable[list]],
                    aligned: bool) -> list:
        """``call`` on every master with its own queues, all masters at once; the results in the
        queues' order (``aligned``: one result per queue, else results that name their queue)."""
        async def run() -> list:
            groups: dict[tuple[str, int], list[QueueRef]] = {}
            for q in queues:
                groups.setdefault(self._owner(q), []).append(q)
            results = await asyncio.gather(*(call(self.nodes[a], qs) for a, qs in groups.items()))
            if aligned:
                by_key = {q.key: r for qs, rs in zip(groups.values(), results) for q, r in zip(qs, rs)}
            else:
                by_key = {r.queue.key: r for rs in results for r in rs}
            return [by_key[q.key] for q in queues if q.key in by_key]

        return await self._routed(f"{len(queues)} queues", run, read=True)

    # ------------------------------------------------------------------ discovery
    async def discover(self) -> Discovery:
        await self._refresh()
        self.topology.split = set()
        return self._merge(await asyncio.gather(*(n.discover() for n in self.nodes.values())))

    async def discover_step(self, budget_s: float) -> Discovery:
        if self.topology.stale or time.monotonic() - self._refreshed_at > SLOT_MAP_MAX_AGE_S:
            await self._refresh()
        self.topology.split = set()  # every step checks each candidate not yet classified again
        return self._merge(await asyncio.gather(*(n.discover_step(budget_s) for n in self.nodes.values())))

    def _merge(self, parts: list[Discovery]) -> Discovery:
        queues = sorted({q.key: q for d in parts for q in d.queues}.values(), key=lambda q: (q.namespace, q.name))
        notes = list(dict.fromkeys(d.note for d in parts if d.note))
        split = sorted(self.topology.split)
        if split:
            named = ", ".join(f"{p}:{n}" for p, n in split[:SPLIT_NAMED])
            more = f" and {len(split) - SPLIT_NAMED} more" if len(split) > SPLIT_NAMED else ""
            notes.append(f"not listed: {named}{more}: queue keys without a hash tag on a Redis Cluster, where BullMQ "
                         "cannot run them (its scripts use several keys of a queue: CROSSSLOT); use a prefix such as "
                         "{bull} or queue names such as {orders}")
        return Discovery(queues=queues, looked_for=parts[0].looked_for if parts else [],
                         complete=all(d.complete for d in parts), note=" ".join(notes) or None,
                         hint=parts[0].hint if parts else None)

    async def lookup(self, names: list[str]) -> list[QueueRef]:
        if self.topology.stale:
            await self._refresh()
        found = await asyncio.gather(*(n.lookup(names) for n in self.nodes.values()))
        return [q for refs in found for q in refs]

    async def cached_scan(self):
        return None  # no kept scan on a cluster: every master is scanned afresh

    # ------------------------------------------------------------------ reads
    def retry_notes(self, queue: QueueRef, bulk: bool, reset_attempts: bool) -> list[str]:
        return self._known_node(queue).retry_notes(queue, bulk, reset_attempts)

    def queue_capabilities(self, queue: QueueRef):
        return self._known_node(queue).queue_capabilities(queue)

    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        return await self._each(queues, lambda n, qs: n.statuses(qs), aligned=True)

    async def throughput(self, queues: list[QueueRef]) -> list[Throughput]:
        return await self._each(queues, lambda n, qs: n.throughput(qs), aligned=False)

    async def latency(self, queues: list[QueueRef]) -> list[Latency]:
        return await self._each(queues, lambda n, qs: n.latency(qs), aligned=False)

    async def history(self, queues: list[QueueRef]) -> list[History]:
        return await self._each(queues, lambda n, qs: n.history(qs), aligned=False)

    async def gauges(self, queues: list[QueueRef]) -> list[QueueGauges]:
        return await self._each(queues, lambda n, qs: n.gauges(qs), aligned=False)

    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        return await self._on(queue, lambda n: n.page(queue, state, cursor, limit))

    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        return await self._on(queue, lambda n: n.job(queue, job_id))

    async def summaries(self, queue: QueueRef, job_ids: list[str], state: str) -> dict[str, JobSummary]:
        return await self._on(queue, lambda n: n.summaries(queue, job_ids, state))

    async def server_time_ms(self) -> int | None:
        return await next(iter(self.nodes.values())).server_time_ms()

    async def count_finished_before(self, queue: QueueRef, state: str, before_ms: int) -> int:
        return await self._on(queue, lambda n: n.count_finished_before(queue, state, before_ms))

    # ------------------------------------------------------------------ mutations
    async def retry_jobs(self, queue: QueueRef, job_ids: list[str], state: str = "failed",
                         reset_attempts: bool = False, run_at_ms: int | None = None,
                         job_timeout_s: float | None = None) -> list[JobOutcome]:
        return await self._on(queue, lambda n: n.retry_jobs(queue, job_ids, state, reset_attempts, run_at_ms,
                                                            job_timeout_s), read=False)

    async def retry_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        return await self._on(queue, lambda n: n.retry_batch(queue, state, before_ms, count), read=False)

    async def remove_jobs(self, queue: QueueRef, job_ids: list[str], state: str | None = None) -> list[JobOutcome]:
        return await self._on(queue, lambda n: n.remove_jobs(queue, job_ids, state), read=False)

    async def purge_batch(self, queue: QueueRef, state: str, before_ms: int, count: int) -> BatchOutcome:
        return await self._on(queue, lambda n: n.purge_batch(queue, state, before_ms, count), read=False)

    async def promote_jobs(self, queue: QueueRef, job_ids: list[str]) -> list[JobOutcome]:
        return await self._on(queue, lambda n: n.promote_jobs(queue, job_ids), read=False)

    async def set_paused(self, queue: QueueRef, paused: bool) -> None:
        await self._on(queue, lambda n: n.set_paused(queue, paused), read=False)

    async def pause_notes(self, queue: QueueRef, paused: bool) -> list[str]:
        return await self._on(queue, lambda n: n.pause_notes(queue, paused))

    def console_store(self) -> ConsoleStore:
        """The console's keys under the hash-tagged prefix, on the master of that slot."""
        address = self.topology.owner_of(f"{self.store_prefix}:audit")
        return RedisConsoleStore(self.nodes[address].client, self.store_prefix, self.url)

    async def close(self) -> None:
        for reader in self.nodes.values():
            await reader.close()
        await self.seed.aclose()
