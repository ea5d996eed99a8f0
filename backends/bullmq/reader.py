"""Read side of BullMQ (and legacy Bull) queues in Redis, exactly per docs/backends/bullmq.md.

Never writes: no scripts that write, no ``meta.version``. Counts run a read-only script per queue
(backends.bullmq.read_scripts: what ``getCounts-1.lua`` does, minus its RPOP of pre-v5 markers, which
it subtracts instead).
"""
from __future__ import annotations

import functools
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from backends.blob import ROW_LIMIT, to_blob, to_int, to_key, to_ms, to_str, to_text
from backends.bullmq import discovery, flows, versions
from backends.bullmq.declaration import DECLARATION
from backends.bullmq.read_scripts import HashFieldsReader, QueueCounter, RawCounts
from backends.bullmq.gauges import read_gauges
from backends.bullmq.keys import QueueKeys
from backends.bullmq.writer import BullMQWriter
from backends.contract import (
    CANONICAL_STATES,
    FLOW_CHILDREN_CAP,
    Capabilities,
    Discovery,
    FailedRow,
    FailedRows,
    Flow,
    JobDetail,
    JobSummary,
    History,
    Latency,
    LogLines,
    Page,
    QueueRef,
    QueueGauges,
    QueueStatus,
    ComposedReader,
    Throughput,
)
from backends.errors import BadCursor, Malformed, UnknownState
from backends.minute_metrics import HISTORY_MINUTES, history_of, minute_counts
from backends.page_cursor import ListCursor, ZsetCursor, decode_position, encode_position
from backends.redis_acl import acl_user, dryrun
from backends.redis_client import is_wrongtype, pipelined, redis_errors
from backends.redis_window import zset_window
from backends.urls import ConnectionUrl

if TYPE_CHECKING:
    from backends.bullmq.cluster import ClusterNode

#: native count names reported by BullMQ's getJobCounts() for all types (+ the legacy `paused`)
BULLMQ_NATIVE = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children", "paused")
BULL_NATIVE = ("active", "completed", "delayed", "failed", "waiting", "paused")

#: how a canonical state maps onto keys, in the order a worker takes them.
#: (segment key suffix, kind, order) -- order "asc" for zsets / "oldest" for lists
SEGMENTS: dict[str, list[tuple[str, str, str]]] = {
    "waiting": [("wait", "list", "oldest"), ("prioritized", "zset", "asc"), ("paused", "list", "oldest")],
    "delayed": [("delayed", "zset", "asc")],
    "active": [("active", "list", "oldest")],
    "completed": [("completed", "zset", "desc")],
    "failed": [("failed", "zset", "desc")],
    "waiting_children": [("waiting-children", "zset", "asc")],
}
BULL_SEGMENTS = {**SEGMENTS, "waiting": [("wait", "list", "oldest"), ("paused", "list", "oldest")]}
#: a job in the legacy ``paused`` list is "waiting" to BullMQ's getState (every version); the list
#: it sits in is shown beside it (JobDetail.extra["list"], the queue's "legacy paused list" info)
NATIVE_STATE_OF_SEGMENT = {"wait": "waiting", "paused": "waiting", "waiting-children": "waiting-children"}
PAUSED_LIST_NOTE = "paused (the legacy list of a BullMQ 4/5 pause; getJobs type 'paused')"

FAILED_ROW_FIELDS = ("name", "finishedOn", "failedReason")
ROW_FIELDS = ("name", "timestamp", "processedOn", "finishedOn", "failedReason", "atm", "attemptsMade", "priority", "delay")
LOG_TAIL = 200
#: at most this many LRANGE windows per page (markers are skipped without ending the page)
LIST_WINDOWS = 8
EVENTS_READ_CAP = 2000
LATENCY_SAMPLE = 50
#: background discovery sleeps this many times as long as each SCAN took (~1/5 of its time on the server)
DISCOVERY_PACE = 4.0


@dataclass
class _EventCursor:
    last_id: bytes
    at_ms: int


@dataclass
class _MetricsPoint:
    completed: int
    failed: int
    at_ms: int


@dataclass
class _ThroughputState:
    events: dict[tuple, _EventCursor] = field(default_factory=dict)
    metrics: dict[tuple, _MetricsPoint] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class BullMQReader(ComposedReader):
    """BullMQ and Bull queues on one Redis connection."""

    backend = "bullmq"
    capabilities = Capabilities(
        states=CANONICAL_STATES[:5] + ("waiting_children",),
        job_logs=True,
        throughput=True,
        latency=True,
        pause=True,
        retry=True,
        purge=True,
        promote=True,
        flows=True,
        namespace_label="prefix",
    )

    def __init__(
        self,
        client: aioredis.Redis,
        url: ConnectionUrl,
        prefixes: list[str] | None = None,
        discovery_budget_s: float = 3.0,
        store_prefix: str = "queue-console",
        use_discovery_cache: bool = False,
        write_discovery_cache: bool = True,
        cluster_node: "ClusterNode | None" = None,
    ) -> None:
        #: on a Redis Cluster (backends/bullmq/cluster.py): which queues this node serves, and
        #: counts and event reads grouped by hash slot
        self.cluster_node = cluster_node
        self.store_prefix = store_prefix
        #: ``discover`` may list the queues of the last complete scan (discovery.read_cache) instead of
        #: scanning, saying so in its note; set by ``queue-console status`` unless ``--rescan``
        self.use_discovery_cache = use_discovery_cache
        #: complete passes are kept for that (not in read-only mode, nor where the server refuses writes)
        self.write_discovery_cache = write_discovery_cache
        #: the Gello detection's verdict on this connection (set by backends.registry), kept with a scan
        self.gello_detected: tuple[list[str], bool] | None = None  # (Gello prefixes looked for, seen)
        self._cached_scan: discovery.CachedScan | None | bool = False  # False: not read yet
        self.client = client
        self.url = url
        self.prefixes = prefixes
        self.discovery_budget_s = discovery_budget_s
        self._versions: dict[tuple, str | None] = {}
        #: queue key -> why this connection's ACL user may not change it (ACL DRYRUN, Redis 7+)
        self._acl_denied: dict[tuple, str] = {}
        #: per queue, as read at the last discovery: which generation writes it (versions.py)
        self._generations: dict[tuple, versions.Generation] = {}
        #: statuses(): the last queue list, its QueueKeys, QueueRef.key tuples and BullMQ flags (_keys_of)
        self._keys_cache: tuple[list[QueueRef], list[QueueKeys], list[tuple], list[bool]] | None = None
        self._tp = _ThroughputState()
        self._counter = QueueCounter(client, by_slot=cluster_node is not None)
        self._row_reader = HashFieldsReader(client)
        #: the write side (retry, purge, promote, pause, console store), composed
        self.writer = BullMQWriter(client, url, store_prefix)
        self._scanner: discovery.Scanner | None = None
        self._classified: dict[tuple[str, str], discovery.Found | None] = {}  # this pass's candidates

    def retry_notes(self, queue: QueueRef, bulk: bool, reset_attempts: bool) -> list[str]:
        notes = []
        gen = self._generations.get(queue.key)
        if gen is not None and gen.legacy:
            notes.append(f"{gen.label}: a retried job goes to the plain wait list (the paused list while the "
                         "queue is paused), as that version's retry does: its priority is not kept")
        elif bulk:
            notes.append("bulk retry moves jobs to the plain wait list (BullMQ's retryJobs): a job's priority is "
                         "not kept; retry marked jobs (--job) to keep priorities")
        if not reset_attempts:
            notes.append("attempts are not reset: each job gets one more attempt (use --reset-attempts for its "
                         "full retry budget)")
        return notes

    def queue_capabilities(self, queue: QueueRef) -> Capabilities:
        """From the last discovery; every mutation reads the evidence again before it runs."""
        if queue.backend == "bull":
            return self.capabilities.model_copy(update={"states": CANONICAL_STATES[:5], "flows": False}).read_only(
                "legacy Bull queues are read-only in queue-console")
        if queue.key in self._acl_denied:
            return self.capabilities.read_only(self._acl_denied[queue.key])
        gen = self._generations.get(queue.key)
        if gen is not None and gen.unknown:
            return self.capabilities.read_only(gen.reason or "unknown BullMQ version")
        if gen is not None and gen.scripts is None:
            # resume stays possible (and is the way out); purge does not move jobs between lists
            return self.capabilities.model_copy(update={"retry": False, "promote": False,
                                                        "read_only_reason": gen.reason})
        return self.capabilities

    # ------------------------------------------------------------------ discovery
    async def discover(self) -> Discovery:
        if self.use_discovery_cache:
            cached = await self._cached_discovery()
            if cached is not None:
                return cached
        async with redis_errors(self.url):
            result = await discovery.discover(self.client, self.prefixes, self.discovery_budget_s, self._serves)
        note = None
        if not result.complete:
            note = (f"discovery stopped after {self.discovery_budget_s:g} s ({result.keys_seen} keys matched): queues "
                    "not reached yet are missing (SCAN walks the whole keyspace; the console looks again later)")
        else:
            await self._keep_scan(result.candidates)
        return await self._discovery(result.found, result.patterns, result.complete, note)

    def _serves(self, candidate: tuple[str, str]) -> bool:
        """Whether this connection holds the queue's keys (always, but on a Redis Cluster node)."""
        return self.cluster_node is None or self.cluster_node.serves(*candidate)

    def _cache_key(self) -> str:
        return discovery.cache_key(self.store_prefix, self.prefixes)

    async def _keep_scan(self, candidates: set[tuple[str, str]]) -> None:
        """Best effort: a replica, an ACL or a full server refusing the write costs only the cache."""
        if not self.write_discovery_cache:
            return
        try:
            if await self.client.dbsize() < discovery.CACHE_MIN_KEYS:
                return  # nobody reads it there (cached_scan): a small keyspace is scanned afresh
            await discovery.write_cache(self.client, self._cache_key(), candidates, self.gello_detected)
        except Exception:
            pass

    async def cached_scan(self) -> discovery.CachedScan | None:
        """The kept scan (read once per reader: the Gello verdict and the queue list come from the
        same one)."""
        if self._cached_scan is False:
            async with redis_errors(self.url):
                if await self.client.dbsize() < discovery.CACHE_MIN_KEYS:
                    self._cached_scan = None
                else:
                    self._cached_scan = await discovery.read_cache(self.client, self._cache_key())
        return self._cached_scan  # type: ignore[return-value]

    async def _cached_discovery(self) -> Discovery | None:
        """The queues of the last complete scan (classified again now, so deleted queues drop out),
        with their age (``cached_age_s``: the caller says the list is a kept one); None when no scan
        is kept or the keyspace is small enough to scan now."""
        cached = await self.cached_scan()
        if cached is None:
            return None
        async with redis_errors(self.url):
            seconds, _ = await self.client.time()
            found = discovery.finish(await discovery.classify(self.client, sorted(cached.candidates)), self.prefixes)
        looked_for, _ = discovery.patterns_for(self.prefixes)
        result = await self._discovery(found, looked_for, False, None)
        result.cached_age_s = max(0.0, int(seconds) - cached.scanned_at_ms / 1000)
        return result

    async def discover_step(self, budget_s: float) -> Discovery:
        """Go on with a paced SCAN (discovery.Scanner, at most a fifth of the time on the server)
        for about ``budget_s`` and return every queue found so far."""
        seeding = self._scanner is None
        if seeding:
            self._scanner = discovery.Scanner(self.client, self.prefixes)
        scanner = self._scanner
        async with redis_errors(self.url):
            if seeding:  # the last complete scan's queues at once; this scanner's first pass replaces them
                cached = await self.cached_scan()
                if cached is not None:
                    scanner.seed(cached.candidates)
                    budget_s = 0.0  # no slice of SCAN before them (one SCAN call at most)
            just_completed = await scanner.run(time.monotonic() + budget_s, pace=DISCOVERY_PACE)
            candidates = scanner.candidates()
            if just_completed:
                self._classified = {}  # a complete pass: every candidate is classified afresh
            new = [c for c in candidates if c not in self._classified and self._serves(c)]
            for c in new:
                self._classified[c] = None
            for f in await discovery.classify(self.client, new):
                self._classified[(f.prefix, f.name)] = f
            found = discovery.finish([f for c in candidates if (f := self._classified.get(c)) is not None],
                                     self.prefixes)
        if just_completed:
            await self._keep_scan(scanner.last_complete or set())
        complete = just_completed or (scanner.last_complete is not None and not scanner.seeded)
        note = None if complete else ("discovering queues in the background: the list grows until the whole "
                                      "keyspace has been walked once")
        if scanner.seeded:
            note = ("discovering queues in the background: until the whole keyspace has been walked once, the list "
                    "is the last complete scan's (queues deleted since drop out; new ones appear as they are found)")
        return await self._discovery(found, scanner.patterns, complete, note, incremental=not just_completed)

    async def _discovery(self, found: list[discovery.Found], patterns: list[str], complete: bool,
                         note: str | None, incremental: bool = False) -> Discovery:
        """``incremental``: read the version evidence (and ask the ACL check) only of queues not seen
        before (every count refresh reads the evidence again for all of them anyway)."""
        queues = []
        for f in found:
            ref = QueueRef(connection=self.url.redacted, backend=f.backend, namespace=f.prefix, name=f.name)
            self._versions[ref.key] = f.version
            queues.append(ref)
        bullmq = [q for q in queues if q.backend == "bullmq" and not (incremental and q.key in self._generations)]
        async with redis_errors(self.url):
            evidence = await versions.read_evidence(self.client, [QueueKeys(q.namespace, q.name) for q in bullmq])
            denied = await self._acl_check(bullmq)
        generations = {q.key: versions.generation(ev) for q, ev in zip(bullmq, evidence)}
        if incremental:
            self._generations.update(generations)
            self._acl_denied.update(denied)
        else:
            self._generations = generations
            self._acl_denied = denied
        looked_for = [p.replace("\\", "") for p in patterns]
        return Discovery(queues=queues, looked_for=looked_for, complete=complete, note=note,
                         hint=DECLARATION.discovery_hint)

    async def lookup(self, names: list[str]) -> list[QueueRef]:
        """Queues named ``names`` under the pinned prefixes (or BullMQ's default prefix ``bull``),
        classified as discovery does, in one pipelined round trip: no SCAN."""
        prefixes = self.prefixes or [discovery.DEFAULT_PREFIX]
        candidates = [c for p in prefixes for n in dict.fromkeys(names) if n and self._serves(c := (p, n))]
        async with redis_errors(self.url):
            found = await discovery.classify(self.client, candidates)
            refs = []
            for f in found:
                ref = QueueRef(connection=self.url.redacted, backend=f.backend, namespace=f.prefix, name=f.name)
                self._versions[ref.key] = f.version
                refs.append(ref)
            bullmq = [q for q in refs if q.backend == "bullmq"]
            evidence = await versions.read_evidence(self.client, [QueueKeys(q.namespace, q.name) for q in bullmq])
            denied = await self._acl_check(bullmq)
        self._generations.update({q.key: versions.generation(ev) for q, ev in zip(bullmq, evidence)})
        for q in bullmq:  # the same read-only reason as a discovery gives
            self._acl_denied.pop(q.key, None)
        self._acl_denied.update(denied)
        return refs

    async def _acl_check(self, queues: list[QueueRef]) -> dict[tuple, str]:
        """Which queues this ACL user may not change, asked beforehand (empty when Redis cannot say).
        A change needs EVALSHA on the queue's keys, SCRIPT LOAD, and XADD to the audit stream."""
        user = acl_user(self.url)
        shared = [["SCRIPT", "LOAD", "return 1"], ["XADD", f"{self.store_prefix}:audit", "*", "record", "{}"]]
        per_queue = []
        for q in queues:
            k = QueueKeys(q.namespace, q.name)
            keys = [k("meta"), k("wait"), k("failed"), k("events"), k.job("0")]
            per_queue.append(["EVALSHA", "0" * 40, str(len(keys)), *keys])
        answers = await dryrun(self.client, user, shared + per_queue)
        if answers is None:
            return {}
        denied = {}
        shared_no = next((f"{cmd[0]}: {answer}" for cmd, answer in zip(shared, answers) if answer), None)
        for q, answer in zip(queues, answers[len(shared):]):
            if answer or shared_no:
                why = f"EVALSHA on {q.namespace}:{q.name}: {answer}" if answer else shared_no
                denied[q.key] = f"ACL: user {user!r} cannot run {why}"
        return denied

    # ------------------------------------------------------------------ counts
    async def statuses(self, queues: list[QueueRef]) -> list[QueueStatus]:
        """One pipelined round trip for every queue (plus the server clock): each queue is counted
        inside Redis by a short read-only script (backends.bullmq.read_scripts), one reply per queue."""
        if not queues:
            return []
        out: list = [None] * len(queues)
        keys, queue_keys, bullmq = self._keys_of(queues)
        status = self._status

        def counted(now_ms: int, i: int, raw: RawCounts) -> None:
            out[i] = status(queues[i], raw, now_ms, queue_keys[i])

        async with redis_errors(self.url):
            # each queue's record is built as its call's reply comes in, while Redis runs the next
            # calls: built after the last reply, the records were a third of a 1,000-queue refresh
            await self._counter.count(keys, counted, bullmq)
        return out

    def _keys_of(self, queues: list[QueueRef]) -> tuple[list[QueueKeys], list[tuple], list[bool]]:
        """Each queue's QueueKeys, ``QueueRef.key`` and whether it is a BullMQ (not Bull) queue,
        kept while the poller asks for the same queues again (the list compares its items by
        identity first, so the same refs cost microseconds)."""
        if self._keys_cache is None or self._keys_cache[0] != queues:
            self._keys_cache = (list(queues), [QueueKeys(q.namespace, q.name) for q in queues],
                                [q.key for q in queues], [q.backend == "bullmq" for q in queues])
        return self._keys_cache[1], self._keys_cache[2], self._keys_cache[3]

    def _status(self, q: QueueRef, raw: RawCounts, now_ms: int, queue_key: tuple | None = None) -> QueueStatus:
        """One queue's status from its counts as stored (QueueCounter). The values are the count
        script's integer replies (or the fallback's), so the record is built without validation."""
        if raw.wrong_types:
            # a key of the wrong type marks only its own queue (the script read every other one)
            return QueueStatus(queue=q, malformed=_wrong_type_message(QueueKeys(q.namespace, q.name), raw.wrong_types),
                               server_time_ms=now_ms)
        wait, paused_list, active, prioritized, delayed, completed, failed, waiting_children = raw[:8]
        meta_paused, version, concurrency, rate_max, rate_duration = raw.meta
        ttl = None
        if q.backend == "bull":
            native = {"active": active, "completed": completed, "delayed": delayed, "failed": failed,
                      "waiting": wait, "paused": paused_list}
            counts = {"waiting": wait + paused_list, "delayed": delayed, "active": active,
                      "completed": completed, "failed": failed, "cancelled": None}
            paused = raw.meta_paused_key or meta_paused == b"1"
            info = dict(_meta_facts(version, concurrency, rate_max, rate_duration, paused_list)[1])
        else:
            native = {"active": active, "completed": completed, "delayed": delayed, "failed": failed,
                      "prioritized": prioritized, "waiting": wait, "waiting-children": waiting_children,
                      "paused": paused_list}
            counts = {"waiting": wait + paused_list + prioritized, "delayed": delayed, "active": active,
                      "completed": completed, "failed": failed, "cancelled": None,
                      "waiting_children": waiting_children}
            paused = meta_paused is not None
            gen, facts = _meta_facts(version, concurrency, rate_max, rate_duration, paused_list)
            info = dict(facts)
            # the same evidence as versions.read_evidence, so capabilities follow every refresh
            self._generations[q.key if queue_key is None else queue_key] = gen
            # a limiter with no time left (or none: PTTL -2) holds nothing back, whatever its count
            ttl = rate_limit_ttl(rate_max, raw.limiter_count, raw.limiter_pttl) if raw.limiter_pttl > 0 else 0
            if ttl > 0:
                info["rate limited"] = f"{ttl} ms more (workers take no job until then)"
        return _built_status(q, paused, counts, native, info, now_ms, ttl)

    # ------------------------------------------------------------------ pages
    async def page(self, queue: QueueRef, state: str, cursor: str | None = None, limit: int = 50) -> Page:
        k = QueueKeys(queue.namespace, queue.name)
        async with redis_errors(self.url):
            picked, next_cursor, total = await self._pick(queue, k, state, cursor, limit)
            rows = await self._rows(k, picked, state)
        return Page(queue=queue, state=state, jobs=rows, next_cursor=next_cursor, total=total)

    async def failed_rows(self, queue: QueueRef, cursor: str | None = None, limit: int = 1000) -> FailedRows:
        """The window ``page`` reads, with three fields per job (HMGET inside a read-only script,
        100 hashes per call, one round trip) and no row validation: grouping 100,000 failures
        builds 100,000 small tuples instead of 100,000 checked rows."""
        k = QueueKeys(queue.namespace, queue.name)
        async with redis_errors(self.url):
            picked, next_cursor, total = await self._pick(queue, k, "failed", cursor, limit)
            values = await self._row_reader.read([k.job(job_id) for job_id, _ in picked], FAILED_ROW_FIELDS)
        rows = [FailedRow(job_id, to_str(name), to_ms(finished), to_text(reason))
                for (job_id, _), (name, finished, reason) in zip(picked, values)]
        return FailedRows(rows, next_cursor, total)

    async def _pick(self, queue: QueueRef, k: QueueKeys, state: str, cursor: str | None,
                    limit: int) -> tuple[list[tuple[str, str]], str | None, int]:
        """The (id, segment suffix) of one page's window, the cursor after it and the state's total."""
        table = BULL_SEGMENTS if queue.backend == "bull" else SEGMENTS
        segments = table.get(state)
        if segments is None or (queue.backend == "bull" and state == "waiting_children"):
            raise UnknownState(queue.backend, state,
                               [s for s in table if not (queue.backend == "bull" and s == "waiting_children")])
        limit = max(1, min(limit, 1000))
        seg_index, pos = decode_position(cursor)
        if not 0 <= seg_index < len(segments) or (
            pos is not None and isinstance(pos, ListCursor) != (segments[seg_index][1] == "list")
        ):
            raise BadCursor(f"bad page cursor {cursor!r} for {state} jobs")
        picked: list[tuple[str, str]] = []  # (id, segment suffix)
        next_cursor: str | None = None
        total = await self._total(k, segments)
        while seg_index < len(segments) and len(picked) < limit:
            suffix, kind, order = segments[seg_index]
            ids, more_pos = await self._window(k(suffix), kind, order, pos, limit - len(picked))
            picked.extend((i, suffix) for i in ids)
            if more_pos is not None:
                next_cursor = encode_position(seg_index, more_pos)
                break
            seg_index, pos = seg_index + 1, None
        if next_cursor is None and seg_index < len(segments):
            next_cursor = encode_position(seg_index, None)  # page full at a segment boundary
        return picked, next_cursor, total

    async def _total(self, k: QueueKeys, segments: list[tuple[str, str, str]]) -> int:
        """LLEN/ZCARD sums; a pre-v5 ``0:<ts>`` marker at a list's tail is no job (as in statuses)."""
        pipe = self.client.pipeline(transaction=False)
        for suffix, kind, _ in segments:
            if kind == "list":
                pipe.llen(k(suffix))
                pipe.lindex(k(suffix), -1)
            else:
                pipe.zcard(k(suffix))
        replies = await pipe.execute(raise_on_error=False)
        _raise_other_errors(replies)
        suffixes = [suffix for suffix, kind, _ in segments for _ in range(2 if kind == "list" else 1)]
        problem = _wrong_types(k, suffixes, replies)
        if problem is not None:
            raise Malformed(f"cannot list jobs: {problem}")
        total, i = 0, 0
        for _, kind, _ in segments:
            if kind == "list":
                length, tail = replies[i], replies[i + 1]
                total += max(length - 1, 0) if tail is not None and tail.startswith(b"0:") else length
                i += 2
            else:
                total += replies[i]
                i += 1
        return total

    async def _window(self, key: str, kind: str, order: str, pos, want: int) -> tuple[list[str], object | None]:
        """Ids of one server-side window and the position after it (None when the key is exhausted)."""
        if kind == "list":
            # oldest first = from the tail. The cursor counts list elements, not jobs: a pre-v5
            # "0:<ts>" marker is an element that is skipped, so it must still advance the offset.
            consumed = pos.offset if isinstance(pos, ListCursor) else 0
            ids: list[str] = []
            for _ in range(LIST_WINDOWS):
                need = want - len(ids)
                # indexes -(consumed+1) down to -(consumed+need+1): one more than needed, to see if more exist
                raw = await self.client.lrange(key, -(consumed + need + 1), -(consumed + 1))
                raw.reverse()
                for item in raw:
                    if len(ids) == want:
                        return ids, ListCursor(consumed)
                    consumed += 1
                    if not item.startswith(b"0:"):
                        ids.append(to_key(item))
                if len(raw) <= need:  # reached the head of the list
                    return ids, None
            return ids, ListCursor(consumed)  # a run of markers: a short page that continues
        zc = pos if isinstance(pos, ZsetCursor) else None
        raw, after = await zset_window(self.client, key, order != "asc", zc.score if zc else None,
                                       zc.skip if zc else 0, want)
        ids = [to_key(member) for member, _ in raw]
        return ids, (ZsetCursor(*after) if after else None)

    async def _rows(self, k: QueueKeys, picked: list[tuple[str, str]], state: str) -> list[JobSummary]:
        """One row per picked id, in order. An id whose key is missing, is not a hash, or holds no
        job (no name/timestamp) is still a row, marked ``malformed`` with the raw key: a page never
        hides what it could not read, and one bad key never fails the page."""
        if not picked:
            return []
        # each key's type comes with its fields (HashFieldsReader.read_typed): a row says why it holds no job
        typed = await self._row_reader.read_typed([k.job(job_id) for job_id, _ in picked], ROW_FIELDS)
        rows = []
        for (job_id, suffix), (key_type, values) in zip(picked, typed):
            native = NATIVE_STATE_OF_SEGMENT.get(suffix, suffix)
            problem = _key_problem(k.job(job_id), key_type, values)
            if problem is not None:
                rows.append(JobSummary(id=job_id, state=state, native_state=native, malformed=problem))
                continue
            rows.append(_summary(job_id, state, native, dict(zip(ROW_FIELDS, values)), key=k.job(job_id)))
        return rows

    async def summaries(self, queue: QueueRef, job_ids: list[str], state: str) -> dict[str, JobSummary]:
        """The rows' fields of every id in one round trip (no payload); the caller knows which state
        it expects. Ids that cannot be read as jobs (malformed) are absent, like missing ones: a plan never
        acts on them."""
        k = QueueKeys(queue.namespace, queue.name)
        async with redis_errors(self.url):
            rows = await self._rows(k, [(i, state) for i in job_ids], state)
        return {r.id: r for r in rows if r.malformed is None}

    # ------------------------------------------------------------------ detail
    async def job(self, queue: QueueRef, job_id: str) -> JobDetail | None:
        k = QueueKeys(queue.namespace, queue.name)
        pipe = self.client.pipeline(transaction=False)
        pipe.type(k.job(job_id))
        pipe.hgetall(k.job(job_id))
        pipe.lrange(k.logs(job_id), -LOG_TAIL, -1)
        pipe.llen(k.logs(job_id))
        for suffix in ("completed", "failed", "delayed", "prioritized", "waiting-children"):
            pipe.zscore(k(suffix), job_id)
        async with redis_errors(self.url):
            # a key of the wrong type answers WRONGTYPE for its own command only
            key_type, fields, logs, log_count, *scores = await pipe.execute(raise_on_error=False)
            if isinstance(key_type, Exception):
                raise key_type
            if key_type == b"none":
                return None
            native_state = None
            for suffix, score in zip(("completed", "failed", "delayed", "prioritized", "waiting-children"), scores):
                if score is not None and not isinstance(score, Exception):
                    native_state = suffix
                    break
            in_list = None
            if native_state is None:
                in_list = await self._list_state(k, job_id)
                native_state = "waiting" if in_list == "paused" else in_list
        state = _canonical(native_state)
        if key_type != b"hash" or isinstance(fields, Exception):
            summary = JobSummary(id=job_id, state=state, native_state=native_state,
                                 malformed=_key_problem(k.job(job_id), key_type, None))
            return JobDetail(summary=summary)
        if isinstance(logs, Exception) or isinstance(log_count, Exception):
            logs, log_count = [], 0
        f = {to_str(key): value for key, value in fields.items()}
        summary = _summary(job_id, state, native_state, f, reason_limit=ROW_LIMIT * 20, key=k.job(job_id))
        stack: list = []
        raw_stack = f.get("stacktrace")
        if raw_stack:
            try:
                parsed = json.loads(raw_stack)
                if isinstance(parsed, list):
                    stack = [to_blob(str(line)) for line in reversed(parsed)]
                else:
                    stack = [to_blob(raw_stack)]
            except ValueError:
                stack = [to_blob(raw_stack)]
        opts = f.get("opts")
        max_attempts = None
        if opts:
            try:
                parsed_opts = json.loads(opts)
                if isinstance(parsed_opts, dict):
                    max_attempts = to_int(parsed_opts.get("attempts"))
            except ValueError:
                pass
        extra = {}
        if in_list == "paused":
            extra["list"] = PAUSED_LIST_NOTE
        for name in ("parentKey", "parent", "deid", "rjk", "pb", "stc", "defa"):
            if f.get(name) is not None:
                extra[name] = (to_str(f[name]) or "")[:ROW_LIMIT]
        return JobDetail(
            summary=summary,
            data=to_blob(f.get("data")),
            options=to_blob(opts),
            return_value=to_blob(f.get("returnvalue")),
            progress=(to_str(f.get("progress")) or None) and (to_str(f.get("progress")) or "")[:ROW_LIMIT],
            stacktrace=[s for s in stack if s is not None],
            logs=LogLines(lines=[to_str(line) or "" for line in logs], total=int(log_count)),
            attempts_started=to_int(f.get("ats")),
            max_attempts=max_attempts,
            extra=extra,
        )

    async def flow(self, queue: QueueRef, job_id: str, cap: int = FLOW_CHILDREN_CAP) -> Flow | None:
        async with redis_errors(self.url):
            return await flows.read_flow(self.client, queue, job_id, cap, _canonical)

    async def _list_state(self, k: QueueKeys, job_id: str) -> str:
        """LPOS is O(N): bounded with MAXLEN so that a huge wait list never blocks the server."""
        pipe = self.client.pipeline(transaction=False)
        pipe.lpos(k("active"), job_id, maxlen=100_000)
        pipe.lpos(k("wait"), job_id, maxlen=100_000)
        pipe.lpos(k("paused"), job_id, maxlen=100_000)
        # a state key of the wrong type (WRONGTYPE) holds no job
        active, wait, paused = [None if isinstance(r, Exception) else r
                                for r in await pipe.execute(raise_on_error=False)]
        if active is not None:
            return "active"
        if wait is not None:
            return "waiting"
        if paused is not None:
            return "paused"
        return "unknown"

    # ------------------------------------------------------------------ throughput
    async def throughput(self, queues: list[QueueRef]) -> list[Throughput]:
        """Completions/failures per second since the last call.

        Exact from the ``metrics:*`` counters when workers keep metrics; else counted from the
        events stream (read from where the last call stopped, at most EVENTS_READ_CAP entries per
        queue and call: a rate that hit the cap is flagged as a lower bound).
        """
        qs = [q for q in queues if q.backend == "bullmq"]
        if not qs:
            return []
        commands: list[tuple] = [("TIME",)]
        for q in qs:
            k = QueueKeys(q.namespace, q.name)
            commands += [("HGET", k("metrics:completed"), "count"), ("HGET", k("metrics:failed"), "count")]
        async with redis_errors(self.url):
            # a metrics key of the wrong type counts as no metrics
            replies = await pipelined(self.client, commands, wrongtype_in_place=True)
            secs, micros, *metric_replies = _flatten_time([None if is_wrongtype(r) else r for r in replies])
            now_ms = int(secs) * 1000 + int(micros) // 1000
            # streams not yet tailed start at "now": only what happens from here on is counted
            streams = {}
            first_seen: set[tuple] = set()
            for q in qs:
                cur = self._tp.events.get(q.key)
                if cur is None:
                    self._tp.events[q.key] = _EventCursor(f"{now_ms}-0".encode(), now_ms)
                    first_seen.add(q.key)
                else:
                    streams[QueueKeys(q.namespace, q.name)("events")] = cur.last_id
            read = await self._xread(streams)
        by_stream = {to_str(name): entries for name, entries in read}
        out = []
        for i, q in enumerate(qs):
            k = QueueKeys(q.namespace, q.name)
            completed_total, failed_total = to_int(metric_replies[2 * i]), to_int(metric_replies[2 * i + 1])
            cur = self._tp.events[q.key]
            entries = by_stream.get(k("events"), [])
            done = fail = 0
            for entry_id, fields in entries:
                ev = fields.get(b"event")
                if ev == b"completed":
                    done += 1
                elif ev == b"failed":
                    fail += 1
            capped = len(entries) >= EVENTS_READ_CAP
            interval_s = max((now_ms - cur.at_ms) / 1000.0, 0.001)
            # (not "cur.at_ms == now_ms": two calls within one server millisecond are not a first call)
            first = q.key in first_seen
            if capped:
                # skip the backlog we did not read so the next sample is live; this one is a lower bound
                cur.last_id = f"{now_ms}-0".encode()
            elif entries:
                cur.last_id = entries[-1][0]
            cur.at_ms = now_ms
            source, c_rate, f_rate = "events", done / interval_s, fail / interval_s
            if completed_total is not None or failed_total is not None:
                prev = self._tp.metrics.get(q.key)
                point = _MetricsPoint(completed_total or 0, failed_total or 0, now_ms)
                self._tp.metrics[q.key] = point
                if prev is not None and point.completed >= prev.completed and point.failed >= prev.failed:
                    span = max((now_ms - prev.at_ms) / 1000.0, 0.001)
                    source = "metrics"
                    c_rate = (point.completed - prev.completed) / span
                    f_rate = (point.failed - prev.failed) / span
                    capped = False
            if first:
                continue
            out.append(Throughput(queue=q, at_ms=now_ms, interval_s=interval_s, completed_per_s=c_rate,
                                  failed_per_s=f_rate, source=source, capped=capped))
        return out

    async def _xread(self, streams: dict[str, bytes]) -> list:
        """XREAD of every queue's events stream in one call; when one of them is not a stream
        (WRONGTYPE fails the whole call), one XREAD each, skipping the malformed ones."""
        if not streams:
            return []
        if self.cluster_node is None:  # one XREAD may not span a cluster's slots (CROSSSLOT)
            try:
                return await self.client.xread(streams, count=EVENTS_READ_CAP)
            except ResponseError as exc:
                if not is_wrongtype(exc):
                    raise
        pipe = self.client.pipeline(transaction=False)
        for name, last_id in streams.items():
            pipe.xread({name: last_id}, count=EVENTS_READ_CAP)
        replies = await pipe.execute(raise_on_error=False)
        _raise_other_errors(replies)
        return [entry for reply in replies if reply and not isinstance(reply, Exception) for entry in reply]

    async def history(self, queues: list[QueueRef]) -> list[History]:
        """The last hour from the per-minute points workers keep with ``metrics`` enabled (what
        ``Queue.getMetrics`` reads: backends/minute_metrics.py), one round trip for every queue.
        A queue whose workers keep no metrics (or legacy Bull) says so instead."""
        if not queues:
            return []
        commands: list[tuple] = [("TIME",)]
        for q in queues:
            k = QueueKeys(q.namespace, q.name)
            for kind in ("completed", "failed"):
                commands += [("HMGET", k(f"metrics:{kind}"), "count", "prevTS", "prevCount"),
                             ("LRANGE", k(f"metrics:{kind}:data"), 0, HISTORY_MINUTES - 1)]
        async with redis_errors(self.url):
            # a metrics key of the wrong type counts as no metrics
            replies = await pipelined(self.client, commands, wrongtype_in_place=True)
        secs, micros, *rest = _flatten_time([None if is_wrongtype(r) else r for r in replies])
        now_ms = int(secs) * 1000 + int(micros) // 1000
        out = []
        for i, q in enumerate(queues):
            kinds = []
            for meta, data in (rest[4 * i:4 * i + 2], rest[4 * i + 2:4 * i + 4]):
                count, prev_ts, prev_count = (to_int(v) for v in (meta or (None, None, None)))
                kinds.append(minute_counts(count, prev_ts, prev_count, [to_int(v) or 0 for v in data or []], now_ms))
            out.append(history_of(q, *kinds) if q.backend == "bullmq" else
                       History(queue=q, unavailable="no history: legacy Bull keeps no metrics"))
        return out

    # ------------------------------------------------------------------ monitoring gauges
    async def gauges(self, queues: list[QueueRef]) -> list[QueueGauges]:
        """Oldest waiting age and workers (backends/bullmq/gauges.py): bounded, no scan."""
        async with redis_errors(self.url):
            return await read_gauges(self.client, queues)

    # ------------------------------------------------------------------ latency
    async def latency(self, queues: list[QueueRef]) -> list[Latency]:
        """Wait (processedOn - timestamp - delay) and run time (finishedOn - processedOn) of the
        LATENCY_SAMPLE most recently completed jobs of each queue: two round trips (the hashes read
        inside Redis by HashFieldsReader)."""
        if not queues:
            return []
        async with redis_errors(self.url):
            # a completed key of the wrong type is left out of the sample, and so is a job key of
            # the wrong type (HashFieldsReader reads it as no fields)
            id_lists = await pipelined(self.client, [
                ("ZREVRANGE", QueueKeys(q.namespace, q.name)("completed"), 0, LATENCY_SAMPLE - 1) for q in queues],
                wrongtype_in_place=True)
            id_lists = [[] if is_wrongtype(ids) else ids for ids in id_lists]
            keys = [QueueKeys(q.namespace, q.name).job(to_key(job_id)) for q, ids in zip(queues, id_lists)
                    for job_id in ids]
            # the job hashes' fields by the page-rows script: ~500 replies for 1,000 queues, not 50,000
            fields = await self._row_reader.read(keys, ("timestamp", "delay", "processedOn", "finishedOn"))
        out, pos = [], 0
        for q, ids in zip(queues, id_lists):
            waits, runs = [], []
            for ts, delay, started, finished in fields[pos:pos + len(ids)]:
                ts, delay, started, finished = to_ms(ts), to_int(delay) or 0, to_ms(started), to_ms(finished)
                if ts is not None and started is not None:
                    waits.append(float(max(started - ts - delay, 0)))
                if started is not None and finished is not None:
                    runs.append(float(max(finished - started, 0)))
            pos += len(ids)
            out.append(Latency(queue=q, sample_size=len(runs), wait_p50_ms=_percentile(waits, 50),
                               wait_p95_ms=_percentile(waits, 95), run_p50_ms=_percentile(runs, 50),
                               run_p95_ms=_percentile(runs, 95)))
        return out

    async def server_time_ms(self) -> int | None:
        async with redis_errors(self.url):
            secs, micros = await self.client.time()
        return int(secs) * 1000 + int(micros) // 1000

    # ------------------------------------------------------------------ mutations: ComposedReader forwards them to self.writer
    @property
    def scripts(self):
        return self.writer.scripts

    async def close(self) -> None:
        await self.client.aclose()


#: what each state key must be (anything else a malformed queue names is a sorted set)
_KINDS = {"meta": "hash", "wait": "list", "paused": "list", "active": "list", "limiter": "string"}


def _raise_other_errors(replies: list) -> None:
    """Re-raise the first error reply that is not about a key's type (NOPERM, ...): redis_errors maps it."""
    for reply in replies:
        if isinstance(reply, Exception) and not is_wrongtype(reply):
            raise reply


def _wrong_types(k: QueueKeys, suffixes: list[str] | tuple[str, ...], replies: list) -> str | None:
    """``bull:q:wait is not a list`` for every key whose command answered WRONGTYPE, else None."""
    bad = list(dict.fromkeys(suffix for suffix, reply in zip(suffixes, replies) if is_wrongtype(reply)))
    if not bad:
        return None
    return _wrong_type_message(k, bad)


def _wrong_type_message(k: QueueKeys, suffixes) -> str:
    return "; ".join(f"{k(suffix)} is not a {_KINDS.get(suffix, 'sorted set')}" for suffix in suffixes)


@functools.lru_cache(maxsize=1024)
def _meta_facts(version: bytes | None, concurrency: bytes | None, rate_max: bytes | None,
                rate_duration: bytes | None, paused_list: int) -> tuple[versions.Generation, tuple]:
    """A queue's generation (versions.generation, as from versions.read_evidence) and the info
    lines of its ``meta`` fields and legacy paused list. The same few values come back for every
    queue on every refresh; deciding the generation and decoding the fields each time was a fifth
    of a 1,000-queue refresh. Bounded: the values are untrusted data."""
    gen = versions.generation(versions.Evidence(
        version=to_str(version) if version is not None else None, paused=False, legacy_jobs=paused_list,
        wait_items=0))
    info = []
    if version:
        info.append(("version", to_str(version) or ""))
    if concurrency:
        info.append(("global concurrency", to_str(concurrency) or ""))
    if rate_max:
        info.append(("rate limit", f"{to_str(rate_max)} per {to_str(rate_duration)} ms"))
    if paused_list:
        info.append(("legacy paused list", f"{paused_list} jobs (counted as waiting)"))
    return gen, tuple(info)


_STATUS_FIELDS = frozenset(("queue", "paused", "counts", "native", "info", "server_time_ms", "rate_limit_ttl_ms"))


def _built_status(q: QueueRef, paused: bool, counts: dict, native: dict, info: dict, now_ms: int,
                  ttl: int | None) -> QueueStatus:
    """QueueStatus from values that are already of its types (ints from the count script), without
    validation: what pydantic's ``model_construct`` does, minus its generic per-field work
    (``QueueStatus(...)`` validated 1,000 records a refresh, ``model_construct`` was slower still)."""
    status = QueueStatus.__new__(QueueStatus)
    _set = object.__setattr__
    _set(status, "__dict__", {"queue": q, "paused": paused, "counts": counts, "native": native, "estimated": [],
                              "info": info, "server_time_ms": now_ms, "malformed": None, "rate_limit_ttl_ms": ttl})
    _set(status, "__pydantic_fields_set__", set(_STATUS_FIELDS))
    _set(status, "__pydantic_extra__", None)
    _set(status, "__pydantic_private__", None)
    return status


def rate_limit_ttl(rate_max: bytes | None, count: bytes | None, pttl: int) -> int:
    """What BullMQ's Queue.getRateLimitTtl() answers (getRateLimitTtl-2.lua with maxJobs 0), read
    without its write (it DELs a limiter whose PTTL is 0): with a global ``meta.max``, the
    limiter's PTTL once its count reached max; without, the limiter's PTTL. Negative PTTLs (no key,
    no expiry) and an unreached max are 0: a worker is not held back then."""
    limit = to_int(rate_max)
    if limit is not None and limit > (to_int(count) or 0):
        return 0
    return max(int(pttl), 0)


def _flatten_time(replies: list) -> list:
    (secs, micros), *rest = replies
    return [secs, micros, *rest]


def _canonical(native_state: str) -> str:
    return {
        "waiting": "waiting", "prioritized": "waiting", "paused": "waiting", "delayed": "delayed",
        "active": "active", "completed": "completed", "failed": "failed",
        "waiting-children": "waiting_children",
    }.get(native_state, native_state)


#: fields every job hash of BullMQ and Bull holds (addJob writes them); a hash without them is no job
REQUIRED_FIELDS = ("name", "timestamp")
TIME_FIELDS = ("timestamp", "processedOn", "finishedOn")
NUMBER_FIELDS = ("atm", "attemptsMade", "priority", "delay")


def _key_problem(key: str, key_type: object, values: object) -> str | None:
    """Why the job key cannot be a job (None when it is a hash holding the required fields).
    ``values`` are the ROW_FIELDS values (None, or an exception, for a key of the wrong type)."""
    if key_type == b"none":
        return f"no job hash at {key} (a dangling id, or removed while the page was read)"
    if key_type != b"hash" or isinstance(values, Exception):
        return f"{key} is a {to_str(key_type) if isinstance(key_type, bytes) else 'key'}, not a job hash"
    if values is None:
        return None
    fields = dict(zip(ROW_FIELDS, values))  # type: ignore[call-overload]
    missing = [name for name in REQUIRED_FIELDS if fields.get(name) is None]
    if missing:
        return f"job hash {key} has no {' or '.join(missing)} field"
    return None


def _bad_numbers(f: dict) -> list[str]:
    bad = [name for name in TIME_FIELDS if f.get(name) is not None and to_ms(f[name]) is None]
    bad += [name for name in NUMBER_FIELDS if f.get(name) is not None and to_int(f[name]) is None]
    return bad


def _summary(job_id: str, state: str, native_state: str, f: dict, reason_limit: int = ROW_LIMIT,
             key: str | None = None) -> JobSummary:
    # as BullMQ's own decoder: parseInt(raw.attemptsMade || raw.atm || '0')
    attempts = to_int(f.get("attemptsMade"))
    if attempts is None:
        attempts = to_int(f.get("atm"))
    if attempts is None:
        attempts = 0
    malformed = None
    bad = _bad_numbers(f)
    if bad:
        shown = ", ".join(f"{name}={(to_str(f[name]) or '')[:40]!r}" for name in bad)
        malformed = f"job hash {key or job_id} has fields that are not numbers or times: {shown}"
    return JobSummary(
        id=job_id,
        state=state,
        native_state=native_state,
        name=to_str(f.get("name")),
        created_ms=to_ms(f.get("timestamp")),
        processed_ms=to_ms(f.get("processedOn")),
        finished_ms=to_ms(f.get("finishedOn")),
        attempts_made=attempts,
        priority=to_int(f.get("priority")),
        delay_ms=to_int(f.get("delay")),
        failed_reason=to_blob(f.get("failedReason"), reason_limit),
        malformed=malformed,
    )
