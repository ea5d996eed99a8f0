"""The ledger of past manual requeues: a pure data structure with add/query and a JSON form.

Persistence is the action layer's job (it stores the records on the backend, where every operator
of that server sees them); this module only turns entries into plain records and back.

A job is identified by ``(connection, backend, namespace, queue, job_id)``: the namespace (BullMQ
key prefix, pg-boss schema) is part of a queue's identity, so two queues of the same name under
different prefixes on one server never share a budget.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

from backends.contract import QueueRef

JobKey = tuple[str, str, str, str, str]  # connection, backend, namespace, queue name, job id
QueueKey = tuple[str, str, str, str]  # QueueRef.key: connection, backend, namespace, queue name

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


class LedgerError(ValueError):
    """A ledger record that cannot be read (names the record and the field)."""


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (integer arithmetic). ``moment`` must be aware."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware time (UTC)")
    return (moment - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def iso(moment: datetime | None) -> str | None:
    """``2025-01-02T03:04:05.678Z``: UTC, millisecond precision, stable."""
    if moment is None:
        return None
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def job_key(queue: QueueRef, job_id: str) -> JobKey:
    return (queue.connection, queue.backend, queue.namespace, queue.name, str(job_id))


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One manual requeue that happened: who, when it was done, when the job was due to start."""

    connection: str
    backend: str
    namespace: str
    queue: str
    job_id: str
    at: datetime  # when the requeue was executed
    run_at: datetime  # when the job was scheduled to start (== at for an immediate retry)
    operator: str = ""

    @classmethod
    def make(
        cls, queue: QueueRef, job_id: str, at: datetime, *, run_at: datetime | None = None, operator: str = ""
    ) -> "LedgerEntry":
        return cls(queue.connection, queue.backend, queue.namespace, queue.name, str(job_id), at,
                   run_at if run_at is not None else at, operator)

    @property
    def job_key(self) -> JobKey:
        return (self.connection, self.backend, self.namespace, self.queue, self.job_id)

    @property
    def queue_key(self) -> QueueKey:
        return (self.connection, self.backend, self.namespace, self.queue)

    def to_record(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "backend": self.backend,
            "namespace": self.namespace,
            "queue": self.queue,
            "job_id": self.job_id,
            "at": iso(self.at),
            "run_at": iso(self.run_at),
            "operator": self.operator,
        }


_REQUIRED = ("connection", "backend", "namespace", "queue", "job_id", "at")


def _parse_time(value: Any, where: str) -> datetime:
    if isinstance(value, bool):
        raise LedgerError(f"{where}: bad value {value!r}: not a time")
    if isinstance(value, (int, float)):
        return from_ms(int(value))  # epoch milliseconds
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise LedgerError(f"{where}: bad value {value!r}: not an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise LedgerError(f"{where}: bad value {value!r}: time without a timezone")
        return moment.astimezone(timezone.utc)
    raise LedgerError(f"{where}: bad value {value!r}: not a time")


class Ledger:
    """Past requeues, indexed by job and by queue. Add-only; ``prune`` returns a smaller copy."""

    def __init__(self, entries: Iterable[LedgerEntry] = ()) -> None:
        self._entries: list[LedgerEntry] = []
        self._job_at: dict[JobKey, list[int]] = defaultdict(list)  # sorted `at` ms per job
        self._queue_run: dict[QueueKey, list[int]] = defaultdict(list)  # sorted `run_at` ms per queue
        self.extend(entries)

    # ---------------------------------------------------------------------------- building
    def add(self, entry: LedgerEntry) -> None:
        at_ms = to_ms(entry.at)
        run_ms = to_ms(entry.run_at)
        self._entries.append(entry)
        insort(self._job_at[entry.job_key], at_ms)
        insort(self._queue_run[entry.queue_key], run_ms)

    def extend(self, entries: Iterable[LedgerEntry]) -> None:
        for entry in entries:
            self.add(entry)

    def record(self, queue: QueueRef, job_id: str, at: datetime, *, run_at: datetime | None = None,
               operator: str = "") -> LedgerEntry:
        """Add the requeue of one job (``run_at``: its scheduled start, default ``at``)."""
        entry = LedgerEntry.make(queue, job_id, at, run_at=run_at, operator=operator)
        self.add(entry)
        return entry

    def copy(self) -> "Ledger":
        return Ledger(self._entries)

    def prune(self, before: datetime) -> "Ledger":
        """A copy without the entries executed and due before ``before`` (see Policy.ledger_retention)."""
        cut = to_ms(before)
        return Ledger(e for e in self._entries if to_ms(e.at) >= cut or to_ms(e.run_at) >= cut)

    # ---------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ledger) and self._entries == other._entries

    def entries(self, *, queue: QueueRef | None = None, job_id: str | None = None,
                since: datetime | None = None) -> list[LedgerEntry]:
        """Entries (in insertion order) of a queue, a job of that queue, executed at or after ``since``."""
        out = []
        since_ms = to_ms(since) if since is not None else None
        for e in self._entries:
            if queue is not None and e.queue_key != queue.key:
                continue
            if job_id is not None and e.job_id != str(job_id):
                continue
            if since_ms is not None and to_ms(e.at) < since_ms:
                continue
            out.append(e)
        return out

    def job_count(self, queue: QueueRef, job_id: str, since: datetime | None = None) -> int:
        """How many times this job was requeued (executed at or after ``since``)."""
        return self.job_count_ms(job_key(queue, job_id), to_ms(since) if since is not None else None)

    def job_count_ms(self, key: JobKey, since_ms: int | None = None) -> int:
        times = self._job_at.get(key)
        if not times:
            return 0
        return len(times) if since_ms is None else len(times) - bisect_left(times, since_ms)

    def queue_count(self, queue: QueueRef, start: datetime, end: datetime) -> int:
        """Requeues of a queue due to start in ``[start, end)``."""
        times = self._queue_run.get(queue.key, [])
        return bisect_left(times, to_ms(end)) - bisect_left(times, to_ms(start))

    def queue_run_ms(self, key: QueueKey, after_ms: int | None = None) -> list[int]:
        """Sorted start times (ms) of a queue's requeues, those > ``after_ms`` when given (a copy)."""
        times = self._queue_run.get(key, [])
        if after_ms is None:
            return list(times)
        return times[bisect_right(times, after_ms):]

    # ---------------------------------------------------------------------------- JSON form
    def to_records(self) -> list[dict[str, Any]]:
        """Plain JSON-serialisable records, in insertion order."""
        return [e.to_record() for e in self._entries]

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], *, connection: str | None = None) -> "Ledger":
        """Read records back. ``connection`` (when given) replaces every record's connection: a
        ledger read from a server is that server's, whatever URL spelling the writer used."""
        entries = []
        for i, rec in enumerate(records):
            where = f"ledger record {i}"
            if not isinstance(rec, dict):
                raise LedgerError(f"{where}: not an object")
            for field in _REQUIRED:
                if field not in rec:
                    raise LedgerError(f"{where}: missing field {field!r}")
            for field in ("connection", "backend", "namespace", "queue", "job_id"):
                if not isinstance(rec[field], (str, int)) or isinstance(rec[field], bool):
                    raise LedgerError(f"{where}: field {field!r}: bad value {rec[field]!r}: not a string")
            at = _parse_time(rec["at"], f"{where}: field 'at'")
            run_raw = rec.get("run_at")
            run_at = at if run_raw is None else _parse_time(run_raw, f"{where}: field 'run_at'")
            entries.append(LedgerEntry(
                connection=connection if connection is not None else str(rec["connection"]),
                backend=str(rec["backend"]),
                namespace=str(rec["namespace"]),
                queue=str(rec["queue"]),
                job_id=str(rec["job_id"]),
                at=at,
                run_at=run_at,
                operator=str(rec.get("operator") or ""),
            ))
        return cls(entries)
