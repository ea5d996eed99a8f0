"""The Gello job record (both stores): parsing untrusted JSON, summaries, and the retried record.

A stored member that is not a JSON object with a string ``meta.id`` is *malformed*: it is listed
with the id ``malformed:<sha1 of the raw bytes>`` and its raw text as the failure reason, so that
it can be seen and purged (never retried) and never breaks a page.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from backends.blob import MAX_TIME_MS, ROW_LIMIT, to_blob
from backends.contract import JobSummary

BACKEND = "gello"
PRIORITIES = ("low", "normal", "high", "critical")
MALFORMED = "malformed:"


def malformed_id(raw: bytes) -> str:
    return MALFORMED + hashlib.sha1(raw).hexdigest()


def parse_iso_ms(value: Any) -> int | None:
    """ISO-8601 (``2024-01-02T03:04:05.678Z``) -> ms since the epoch; None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return int(parsed.timestamp() * 1000)


def iso_from_ms(ms: int) -> str:
    """ms since the epoch -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (what JavaScript's toISOString makes)."""
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@dataclass
class Record:
    """One stored member: the raw bytes and, when well formed, the parsed job."""

    raw: bytes
    job: dict | None  # the whole parsed object (meta, payload, lastError)
    problem: str | None = None  # why it is malformed

    @property
    def ok(self) -> bool:
        return self.job is not None

    @property
    def meta(self) -> dict:
        return self.job["meta"] if self.job is not None else {}

    @property
    def id(self) -> str:
        return self.meta["id"] if self.job is not None else malformed_id(self.raw)


def parse(raw: bytes | str) -> Record:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    try:
        job = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return Record(raw, None, "not valid JSON")
    if not isinstance(job, dict):
        return Record(raw, None, "not a JSON object")
    meta = job.get("meta")
    if not isinstance(meta, dict):
        return Record(raw, None, "no meta object")
    if not isinstance(meta.get("id"), str) or not meta["id"]:
        return Record(raw, None, "lacks meta.id")
    if meta["id"].startswith(MALFORMED):
        return Record(raw, None, "meta.id collides with the malformed: id space")
    return Record(raw, job)


def score_ms(score: float | None) -> int | None:
    """A sorted-set score as a time in ms, None when it is none (``inf``, ``-1e300``, ...)."""
    if score is None or not math.isfinite(score):
        return None
    value = int(score)
    return value if 0 <= value <= MAX_TIME_MS else None


def summary(rec: Record, state: str, native_state: str, score: float | None = None,
            reason_limit: int = ROW_LIMIT, key: str | None = None) -> JobSummary:
    """A list row. For a malformed member the raw text is the failure reason (the UI escapes it)."""
    where = f" in {key}" if key else ""
    bad_score = score is not None and score_ms(score) is None
    if not rec.ok:
        return JobSummary(id=rec.id, state=state, native_state=native_state, name="(malformed)",
                          finished_ms=score_ms(score) if native_state == "dead" else None,
                          failed_reason=to_blob(rec.raw, reason_limit),
                          malformed=f"member{where} is not a Gello job record ({rec.problem})")
    m = rec.meta
    created = parse_iso_ms(m.get("createdAt"))
    finished = parse_iso_ms(m.get("failedAt")) or parse_iso_ms(m.get("completedAt"))
    if native_state == "dead" and score is not None:
        finished = score_ms(score)  # the dead set's score is the failure time (what older-than uses)
    delay = None
    run_at = score_ms(score) if native_state == "scheduled" and score is not None else parse_iso_ms(m.get("scheduledAt"))
    if run_at is not None and created is not None and run_at > created:
        delay = run_at - created
    err = rec.job.get("lastError") if rec.job else None
    return JobSummary(
        id=rec.id, state=state, native_state=native_state,
        name=m.get("jobType") if isinstance(m.get("jobType"), str) else None,
        created_ms=created, processed_ms=parse_iso_ms(m.get("startedAt")), finished_ms=finished,
        attempts_made=_int(m.get("attempts")),
        priority=None,  # Gello priorities are names (low..critical): shown in the detail's extra
        delay_ms=delay,
        failed_reason=to_blob(err, reason_limit) if isinstance(err, str) else None,
        malformed=f"score {score!r}{where} is not a time" if bad_score else None,
    )


def extra(rec: Record) -> dict[str, str]:
    """Detail fields: priority and idempotency key first, then the record's dates."""
    if not rec.ok:
        return {"malformed": rec.problem or "malformed", "raw size": f"{len(rec.raw)} bytes"}
    m = rec.meta
    out: dict[str, str] = {}
    priority = m.get("priority")
    out["priority"] = str(priority) if priority is not None else "(none)"
    if priority is not None and priority not in PRIORITIES:
        out["priority"] += " (not one of low, normal, high, critical)"
    key = m.get("idempotencyKey")
    out["idempotency key"] = str(key) if key is not None else "(none)"
    for field in ("jobType", "queue", "attempts", "maxAttempts", "createdAt", "scheduledAt", "startedAt",
                  "completedAt", "failedAt"):
        if m.get(field) is not None:
            out[field] = str(m[field])[:ROW_LIMIT]
    return out


def retried(rec: Record, now_ms: int, run_at_ms: int | None = None) -> bytes:
    """The record a retry from outside pushes back (gello.md): attempts 0, failedAt and lastError
    cleared, scheduledAt set. Everything else (payload, priority, idempotency key) is kept."""
    assert rec.job is not None
    job = dict(rec.job)
    meta = dict(job["meta"])
    meta["attempts"] = 0
    meta["failedAt"] = None
    meta["scheduledAt"] = iso_from_ms(run_at_ms if run_at_ms is not None else now_ms)
    job["meta"] = meta
    job["lastError"] = None
    # ASCII with \u escapes: valid JSON for any parser, even for a payload with lone surrogates
    return json.dumps(job, ensure_ascii=True, separators=(",", ":")).encode("ascii")
