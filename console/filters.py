"""The filter language of the dead-letter view and ``dlq list --filter``. Pure, no I/O.

    queue:emails name:send id:4211 error:"mailbox unavailable" age:>2h age:<7d data.customer:42 timeout

Qualifiers: ``queue:`` (name, or backend:name), ``name:`` (job name, substring), ``id:`` (exact),
``error:`` (substring of the failure reason, case-insensitive), ``age:>D`` / ``age:<D`` (time since
the job failed; D like 90s, 15m, 2h, 7d), ``data.<path>:<value>`` (a field of the JSON payload,
compared as text). Bare words match the id, the name or the error. All terms must match.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from backends.contract import FailedRow, JobSummary, QueueRef
from console.actions import parse_duration


class FilterError(ValueError):
    pass


@dataclass
class Filter:
    queues: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    older_than_ms: int | None = None
    newer_than_ms: int | None = None
    data: list[tuple[list[str], str]] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    text: str = ""

    @property
    def needs_payload(self) -> bool:
        return bool(self.data)

    @property
    def checks_jobs(self) -> bool:
        """Whether any term looks at the job itself (every job of a matching queue matches otherwise)."""
        return bool(self.names or self.ids or self.errors or self.data or self.words
                    or self.older_than_ms is not None or self.newer_than_ms is not None)

    def queue_matches(self, q: QueueRef) -> bool:
        return not self.queues or any(s in (q.name, q.qualified) for s in self.queues)

    def matches(self, q: QueueRef, job: JobSummary | FailedRow, now_ms: int, payload: Any = None) -> bool:
        if not self.queue_matches(q):
            return False
        if self.ids and job.id not in self.ids:
            return False
        name = (job.name or "").lower()
        if any(n not in name for n in self.names):
            return False
        reason = job.reason_text.lower()
        if any(e not in reason for e in self.errors):
            return False
        age = now_ms - job.finished_ms if job.finished_ms is not None else None
        if self.older_than_ms is not None and (age is None or age < self.older_than_ms):
            return False
        if self.newer_than_ms is not None and (age is None or age > self.newer_than_ms):
            return False
        for w in self.words:
            if w not in job.id.lower() and w not in name and w not in reason:
                return False
        for path, value in self.data:
            if _lookup(payload, path) != value:
                return False
        return True


def _lookup(payload: Any, path: list[str]) -> str | None:
    cur = payload
    for part in path:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    if isinstance(cur, str):
        return cur
    return json.dumps(cur)


def parse_filter(text: str) -> Filter:
    f = Filter(text=text.strip())
    try:
        terms = shlex.split(text)
    except ValueError as exc:
        raise FilterError(f"bad filter {text!r}: {exc}") from None
    for term in terms:
        key, sep, value = term.partition(":")
        if not sep:
            f.words.append(term.lower())
            continue
        if not value:
            raise FilterError(f"{key}: needs a value")
        if key == "queue":
            f.queues.append(value)
        elif key == "name":
            f.names.append(value.lower())
        elif key == "id":
            f.ids.append(value)
        elif key == "error":
            f.errors.append(value.lower())
        elif key == "age":
            if value[0] not in "<>":
                raise FilterError(f"age: takes >DURATION or <DURATION, got {value!r}")
            try:
                ms = parse_duration(value[1:])
            except ValueError as exc:
                raise FilterError(str(exc)) from None
            if value[0] == ">":
                f.older_than_ms = ms
            else:
                f.newer_than_ms = ms
        elif key.startswith("data.") and len(key) > 5:
            f.data.append((key[5:].split("."), value))
        else:
            raise FilterError(f"unknown qualifier {key!r} (queue:, name:, id:, error:, age:, data.<path>:)")
    return f
