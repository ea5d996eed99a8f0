"""The planner: (selected jobs, policy, ledger, now) -> a plan with one decision per job.

Pure and deterministic: the same inputs (including ``now`` and ``rng_seed``) give the same plan,
decision for decision and line for line. See docs/policy.md.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backends.contract import JobSummary, QueueRef
from console.policy.backoff import backoff_ms, jitter_fraction
from console.policy.config import Policy, Rules, format_duration
from console.policy.ledger import JobKey, Ledger, LedgerEntry, QueueKey, from_ms, iso, job_key, to_ms
from console.policy.slots import RateSlots, WindowBudget, gap_ms
from console.safe_text import clean

# ------------------------------------------------------------------------------------ vocabulary

#: refusal reasons, in the order they are checked and listed
DUPLICATE = "duplicate"  # the same job appears earlier in the selection
FATAL = "fatal"  # failure class fatal (force="fatal" overrides)
PERMANENT = "permanent"  # failure class permanent (force=True overrides)
TOO_OLD = "too_old"  # failed longer ago than timeouts.max_age (force=True overrides)
JOB_BUDGET = "job_budget"  # budgets.per_job manual requeues already used
QUEUE_BUDGET = "queue_budget"  # the queue's window budget has no room within max_delay (or is 0)
MAX_DELAY = "max_delay"  # rate limit / backoff would start it later than max_delay
REFUSALS = (DUPLICATE, FATAL, PERMANENT, TOO_OLD, JOB_BUDGET, QUEUE_BUDGET, MAX_DELAY)

#: why a job starts later than now (the last rule that moved its start)
BACKOFF = "backoff"
RATE = "rate"
DELAYS = (BACKOFF, RATE, QUEUE_BUDGET)

Action = Literal["now", "later", "refuse"]


class Force(str, Enum):
    """How hard the operator insists. Force overrides judgments about the job itself (its failure
    class, its age), never capacity limits (budgets, rates, max_delay) or duplicates."""

    NONE = "none"
    PERMANENT = "permanent"  # force=True: permanent failures and failures older than max_age
    FATAL = "fatal"  # additionally fatal failures

    @classmethod
    def parse(cls, value: "Force | bool | str | None") -> "Force":
        if isinstance(value, Force):
            return value
        if value is None or value is False:
            return cls.NONE
        if value is True:
            return cls.PERMANENT
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("", "none", "no", "false"):
                return cls.NONE
            if text in ("permanent", "true", "yes"):
                return cls.PERMANENT
            if text == "fatal":
                return cls.FATAL
        raise ValueError(f"bad force {value!r}: use False, True (= 'permanent') or 'fatal'")

    def overrides(self, reason: str) -> bool:
        return reason in _OVERRIDES[self]


_OVERRIDES: dict[Force, frozenset[str]] = {
    Force.NONE: frozenset(),
    Force.PERMANENT: frozenset({PERMANENT, TOO_OLD}),
    Force.FATAL: frozenset({PERMANENT, TOO_OLD, FATAL}),
}


@dataclass(frozen=True)
class BackendCaps:
    """What the backend can do when it requeues (flags passed in by the action layer)."""

    delay: bool = True  # can schedule a requeue for later (BullMQ delayed set, pg-boss start_after)
    job_timeout: bool = False  # can set a job timeout on requeue (pg-boss expire_in / expire_seconds)
    retention: bool = False  # can set how long the job is kept (pg-boss keep_until)


CapsArg = BackendCaps | Mapping[str, BackendCaps] | Callable[[QueueRef], BackendCaps] | None


def _caps_lookup(arg: CapsArg) -> Callable[[QueueRef], BackendCaps]:
    if arg is None:
        return lambda q: BackendCaps()
    if isinstance(arg, BackendCaps):
        return lambda q: arg
    if isinstance(arg, Mapping):
        return lambda q: arg.get(q.qualified) or arg.get(q.backend) or BackendCaps()
    return arg


class Candidate(BaseModel):
    """One selected job, as the planner needs it."""

    model_config = ConfigDict(frozen=True)

    queue: QueueRef
    job_id: str
    failed_reason: str | None = None
    failed_at: datetime | None = None
    attempts_made: int = Field(default=0, ge=0)
    #: the job's data, parsed (a dict for the fairness key; None when not loaded)
    payload: Any = None

    @field_validator("failed_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError("failed_at must be timezone-aware (UTC)")
        return value

    @property
    def key(self) -> JobKey:
        return job_key(self.queue, self.job_id)

    @classmethod
    def from_summary(cls, queue: QueueRef, summary: JobSummary, payload: Any = None) -> "Candidate":
        """From a reader's job row: reason, finish time and attempts of a failed job."""
        return cls(
            queue=queue,
            job_id=summary.id,
            failed_reason=summary.failed_reason.text if summary.failed_reason is not None else None,
            failed_at=from_ms(summary.finished_ms) if summary.finished_ms is not None else None,
            attempts_made=summary.attempts_made or 0,
            payload=payload,
        )


# ------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one selected job."""

    index: int  # position in the input list
    queue: QueueRef
    job_id: str
    action: Action
    at: datetime | None  # start time (None when refused)
    delay_ms: int | None  # at - plan.now in ms (None when refused)
    why: str | None  # for "later": backoff | rate | queue_budget (the rule that set the time)
    refused: tuple[str, ...]  # every refusal reason that applies (first = the main one)
    forced: tuple[str, ...]  # refusal reasons overridden by force
    detail: str  # one human-readable line
    failure_class: str
    pattern: str | None  # the failure-class pattern that matched
    group: str | None  # fairness key value ("tenant.id=42")
    requeues_before: int  # manual requeues of this job in the ledger (within per_job_window)
    backoff_ms: int  # the backoff (after jitter) that applied
    position: int | None  # slot in the interleaved order (None when refused before scheduling)
    mode: str | None  # immediate | delayed (backend schedules it) | paced (action layer waits)
    job_timeout_s: float | None  # to set on requeue (only when the backend can)
    keep_until: datetime | None  # retention to set on requeue (only when the backend can)
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> JobKey:
        return job_key(self.queue, self.job_id)

    @property
    def accepted(self) -> bool:
        return self.action != "refuse"

    @property
    def reason(self) -> str | None:
        """The main refusal reason (None when accepted)."""
        return self.refused[0] if self.refused else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "position": self.position,
            "connection": self.queue.connection,
            "backend": self.queue.backend,
            "namespace": self.queue.namespace,
            "queue": self.queue.name,
            "job_id": self.job_id,
            "action": self.action,
            "at": iso(self.at),
            "delay_ms": self.delay_ms,
            "why": self.why,
            "mode": self.mode,
            "refused": list(self.refused),
            "forced": list(self.forced),
            "detail": self.detail,
            "failure_class": self.failure_class,
            "pattern": self.pattern,
            "group": self.group,
            "requeues_before": self.requeues_before,
            "backoff_ms": self.backoff_ms,
            "job_timeout_s": self.job_timeout_s,
            "keep_until": iso(self.keep_until),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Summary:
    total: int
    now: int
    later: int
    refused: int
    by_reason: dict[str, int]  # main refusal reason -> count
    delayed_by: dict[str, int]  # why -> count of "later" decisions
    forced: int  # accepted jobs that needed force
    last_delay_ms: int | None  # latest start, relative to now
    queues: dict[str, dict[str, int]] = field(default_factory=dict)  # queue label -> now/later/refused

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "now": self.now,
            "later": self.later,
            "refused": self.refused,
            "by_reason": dict(self.by_reason),
            "delayed_by": dict(self.delayed_by),
            "forced": self.forced,
            "last_delay_ms": self.last_delay_ms,
            "queues": {k: dict(v) for k, v in self.queues.items()},
        }


class Plan:
    """Per job exactly one decision, in execution order: accepted jobs by start time (ties in the
    interleaved order), then refused jobs in input order."""

    def __init__(self, *, now: datetime, seed: int, force: Force, source: str,
                 decisions: Sequence[Decision], notes: Sequence[str]) -> None:
        self.now = now
        self.seed = seed
        self.force = force
        self.source = source
        self.decisions: tuple[Decision, ...] = tuple(decisions)
        self.notes: tuple[str, ...] = tuple(notes)
        self._labels = _queue_labels(d.queue for d in self.decisions)
        self.summary = self._summarise()

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.decisions)

    def __iter__(self):
        return iter(self.decisions)

    @property
    def accepted(self) -> list[Decision]:
        return [d for d in self.decisions if d.accepted]

    @property
    def refused(self) -> list[Decision]:
        return [d for d in self.decisions if not d.accepted]

    def by_index(self) -> list[Decision]:
        """Decisions in input order (``result[i]`` is the decision for ``jobs[i]``)."""
        return sorted(self.decisions, key=lambda d: d.index)

    def label(self, queue: QueueRef) -> str:
        return self._labels.get(queue.key, queue.qualified)

    def ledger_entries(self, operator: str, at: datetime | None = None) -> list[LedgerEntry]:
        """What to append to the ledger once every accepted job has been requeued (``at``: when it
        was executed, default plan.now). Append per job instead when a run stops part way."""
        executed = at or self.now
        return [
            LedgerEntry.make(d.queue, d.job_id, executed, run_at=max(d.at, executed), operator=operator)
            for d in self.decisions if d.accepted and d.at is not None
        ]

    # ------------------------------------------------------------------ summary
    def _summarise(self) -> Summary:
        now = later = refused = forced = 0
        by_reason: dict[str, int] = {}
        delayed_by: dict[str, int] = {}
        queues: dict[str, dict[str, int]] = {}
        last: int | None = None
        for d in self.decisions:
            q = queues.setdefault(self.label(d.queue), {"now": 0, "later": 0, "refused": 0})
            if d.action == "refuse":
                refused += 1
                q["refused"] += 1
                by_reason[d.refused[0]] = by_reason.get(d.refused[0], 0) + 1
                continue
            if d.forced:
                forced += 1
            if d.action == "now":
                now += 1
                q["now"] += 1
            else:
                later += 1
                q["later"] += 1
                delayed_by[d.why or ""] = delayed_by.get(d.why or "", 0) + 1
            last = d.delay_ms if last is None else max(last, d.delay_ms or 0)
        order = {r: i for i, r in enumerate(REFUSALS)}
        return Summary(
            total=len(self.decisions), now=now, later=later, refused=refused,
            by_reason=dict(sorted(by_reason.items(), key=lambda kv: order.get(kv[0], 99))),
            delayed_by=dict(sorted(delayed_by.items())), forced=forced, last_delay_ms=last,
            queues=dict(sorted(queues.items())),
        )

    # ------------------------------------------------------------------ forms
    def to_dict(self) -> dict[str, Any]:
        return {
            "now": iso(self.now),
            "seed": self.seed,
            "force": self.force.value,
            "policy": self.source,
            "summary": self.summary.to_dict(),
            "notes": list(self.notes),
            "decisions": [d.to_dict() for d in self.decisions],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def fingerprint(self) -> str:
        """A digest of the decisions with times relative to ``now``: equal for a preview and the run
        that follows when nothing changed in between (the action layer compares them)."""
        data = self.to_dict()
        data.pop("now")
        for d in data["decisions"]:
            d.pop("at")
            d.pop("keep_until")
        text = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def render(self, limit: int | None = 20) -> list[str]:
        """Stable human-readable lines: a header, the first ``limit`` decisions, notes."""
        s = self.summary
        lines = [
            f"requeue plan at {iso(self.now)} · policy {self.source} · force {self.force.value} · seed {self.seed}",
        ]
        parts = [f"{s.total} job{'s' if s.total != 1 else ''}: {s.now} now", f"{s.later} later"]
        if s.later and s.last_delay_ms is not None:
            parts[-1] += f" (last {_offset(s.last_delay_ms)})"
        refused = f"{s.refused} refused"
        if s.by_reason:
            refused += " (" + ", ".join(f"{n} {_REASON_WORDS[r]}" for r, n in s.by_reason.items()) + ")"
        parts.append(refused)
        lines.append(", ".join(parts))
        if s.forced:
            lines.append(f"{s.forced} accepted only because of force={self.force.value}")
        shown = list(self.decisions if limit is None else self.decisions[: max(limit, 0)])
        if shown:
            rows = [(_when(d), _clean(self.label(d.queue), 40), _clean(d.job_id, 24), _clean(d.detail, 160))
                    for d in shown]
            w0 = max(4, *(len(r[0]) for r in rows))
            w1 = max(5, *(len(r[1]) for r in rows))
            w2 = max(3, *(len(r[2]) for r in rows))
            lines.append(f"  {'WHEN':<{w0}}  {'QUEUE':<{w1}}  {'JOB':<{w2}}  WHY".rstrip())
            for r in rows:
                lines.append(f"  {r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]:<{w2}}  {r[3]}".rstrip())
        rest = self.decisions[len(shown):]
        if rest:
            counts: dict[str, int] = {}
            for d in rest:
                counts[d.action] = counts.get(d.action, 0) + 1
            what = ", ".join(f"{counts[a]} {'refused' if a == 'refuse' else a}"
                             for a in ("now", "later", "refuse") if a in counts)
            lines.append(f"  … {len(rest)} more ({what})")
        lines.extend(f"note: {n}" for n in self.notes)
        return lines


_REASON_WORDS = {
    DUPLICATE: "duplicate", FATAL: "fatal", PERMANENT: "permanent", TOO_OLD: "too old",
    JOB_BUDGET: "job budget", QUEUE_BUDGET: "queue budget", MAX_DELAY: "beyond max_delay",
}

def _clean(text: str, width: int) -> str:
    """Untrusted text made inert for a terminal line (console.safe_text's rule), cut to ``width``."""
    flat = clean(text).replace("\n", "\\x0a").replace("\t", "\\x09")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _offset(ms: int) -> str:
    """``+27.25s``, ``+10m0.5s``, ``+1h2m``: exact to the millisecond, relative to the plan's now."""
    if ms <= 0:
        return "now"
    minutes, rest = divmod(ms, 60_000)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    out = "".join(f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    if rest:
        out += f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return "+" + out


def _when(d: Decision) -> str:
    if d.action == "refuse":
        return "refused"
    return _offset(d.delay_ms or 0)


def _queue_labels(queues) -> dict[QueueKey, str]:
    """``backend:name``, with the namespace and connection added only where that is ambiguous."""
    refs: dict[QueueKey, QueueRef] = {}
    for q in queues:
        refs.setdefault(q.key, q)
    by_name: dict[str, list[QueueRef]] = {}
    for q in refs.values():
        by_name.setdefault(q.qualified, []).append(q)
    labels = {}
    for name, group in by_name.items():
        for q in group:
            labels[q.key] = name if len(group) == 1 else f"{name} ({q.namespace} @ {q.connection})"
    return labels


# ------------------------------------------------------------------------------------ planning


@dataclass
class _Pending:
    index: int
    cand: Candidate
    rules: Rules
    klass: str
    pattern: str | None
    forced: tuple[str, ...]
    forced_detail: list[str]
    n_before: int
    group: tuple[Any, ...] | None = None
    group_label: str | None = None


class _QueueState:
    """Scheduling state of one queue: its rate slots, its window budget, and a cursor.

    Jobs of a queue are scheduled in order of their earliest time (now + backoff; ties keep the
    interleaved order) and never before the previous job of the queue, so each search starts
    where the last one ended and a plan of n jobs costs O(n log n).
    """

    __slots__ = ("rate", "budget", "cursor", "full")

    def __init__(self, rules: Rules, ledger: Ledger, key: QueueKey, now_ms: int) -> None:
        rate = rules.fairness.rate
        b = rules.budgets
        self.rate: RateSlots | None = None
        self.budget: WindowBudget | None = None
        self.cursor = now_ms
        #: set once a job of this queue fell beyond max_delay: every later one does too
        self.full: tuple[str, int] | None = None
        if rate is not None:
            gap = gap_ms(rate)
            self.rate = RateSlots(gap, ledger.queue_run_ms(key, after_ms=now_ms - gap))
        if b.per_queue is not None and b.per_queue > 0:
            window = max(1, int(round(b.window * 1000)))
            self.budget = WindowBudget(window, b.per_queue, ledger.queue_run_ms(key, after_ms=now_ms - window))


_MISSING = object()


def _lookup(payload: Any, path: str) -> Any:
    cur = payload
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _group(payload: Any, path: str) -> tuple[tuple[Any, ...], str]:
    value = _lookup(payload, path)
    if value is _MISSING:
        return ("missing",), f"{path}=(missing)"
    if isinstance(value, str):
        return ("str", value), f"{path}={value}"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return ("json", text), f"{path}={text}"


def _round_robin(groups: list[list[Any]]) -> list[Any]:
    """One item of each group in turn, dropping groups as they run out (O(total items))."""
    out: list[Any] = []
    live = [g for g in groups if g]
    depth = 0
    while live:
        for g in live:
            out.append(g[depth])
        depth += 1
        live = [g for g in live if len(g) > depth]
    return out


def _interleave(pending: list[_Pending]) -> list[_Pending]:
    """Round-robin over queues (first appearance order); within a queue, round-robin over the
    values of its fairness key (first appearance order) when one is configured."""
    per_queue: dict[QueueKey, dict[Any, list[_Pending]]] = {}
    for p in pending:
        per_queue.setdefault(p.cand.queue.key, {}).setdefault(p.group, []).append(p)
    queues = [_round_robin(list(groups.values())) for groups in per_queue.values()]
    return _round_robin(queues)


def plan(
    jobs: Sequence[Candidate],
    policy: Policy,
    ledger: Ledger,
    now: datetime,
    *,
    force: Force | bool | str | None = False,
    backend_caps: CapsArg = None,
    rng_seed: int = 0,
) -> Plan:
    """Decide, per selected job: retry now, retry at a time, or refuse with a reason.

    Nothing is mutated (the ledger included). ``now`` must be timezone-aware; times are kept to the
    millisecond. ``rng_seed`` fixes the backoff jitter. ``backend_caps`` says what the backend can
    apply on requeue: one BackendCaps, a mapping keyed by ``backend:name`` or backend name, or a
    function of the QueueRef.
    """
    force_level = Force.parse(force)
    now_ms = to_ms(now)
    now = from_ms(now_ms)
    caps_of = _caps_lookup(backend_caps)
    decisions: list[Decision] = []
    rules_cache: dict[QueueKey, Rules] = {}
    seen: dict[JobKey, int] = {}
    pending: list[_Pending] = []

    def refuse(p_index: int, cand: Candidate, refused: tuple[str, ...], forced: tuple[str, ...], detail: str,
               klass: str, pattern: str | None, n_before: int, *, position: int | None = None,
               group: str | None = None, backoff: int = 0) -> None:
        decisions.append(Decision(
            index=p_index, queue=cand.queue, job_id=cand.job_id, action="refuse", at=None, delay_ms=None,
            why=None, refused=refused, forced=forced, detail=detail, failure_class=klass, pattern=pattern,
            group=group, requeues_before=n_before, backoff_ms=backoff, position=position, mode=None,
            job_timeout_s=None, keep_until=None,
        ))

    # 1. what is decided by the job alone: duplicates, failure class, age, per-job budget
    for index, cand in enumerate(jobs):
        qkey = cand.queue.key
        rules = rules_cache.get(qkey)
        if rules is None:
            rules = rules_cache[qkey] = policy.rules_for(cand.queue)
        key = cand.key
        klass, pattern = policy.classify(cand.queue, cand.failed_reason)
        b = rules.budgets
        since = None if b.per_job_window is None else now_ms - int(round(b.per_job_window * 1000))
        n_before = ledger.job_count_ms(key, since)
        if key in seen:
            refuse(index, cand, (DUPLICATE,), (), f"duplicate of item {seen[key] + 1} in the selection",
                   klass, pattern, n_before)
            continue
        seen[key] = index
        reasons: list[tuple[str, str]] = []
        if klass == FATAL:
            reasons.append((FATAL, f"fatal failure (reason matches /{pattern}/)"))
        elif klass == PERMANENT:
            reasons.append((PERMANENT, f"permanent failure (reason matches /{pattern}/)"))
        max_age = rules.timeouts.max_age
        if max_age is not None and cand.failed_at is not None:
            age_ms = now_ms - to_ms(cand.failed_at)
            if age_ms > max_age * 1000:
                reasons.append((TOO_OLD, f"failed {format_duration(round(age_ms / 1000))} ago, "
                                         f"beyond max_age {format_duration(max_age)}"))
        if b.per_job is not None and n_before + 1 > b.per_job:
            within = f" within {format_duration(b.per_job_window)}" if b.per_job_window is not None else ""
            reasons.append((JOB_BUDGET, f"job budget used: requeued {n_before} time{'s' if n_before != 1 else ''}"
                                        f"{within}, per_job = {b.per_job}"))
        refused = tuple(r for r, _ in reasons if not force_level.overrides(r))
        forced = tuple(r for r, _ in reasons if force_level.overrides(r))
        if refused:
            texts = [t for r, t in reasons if r in refused]
            hint = _force_hint(refused)
            refuse(index, cand, refused, forced, "; ".join(texts) + hint, klass, pattern, n_before)
            continue
        p = _Pending(index, cand, rules, klass, pattern, forced,
                     [t for r, t in reasons if r in forced], n_before)
        key_path = rules.fairness.key
        if key_path is not None:
            p.group, p.group_label = _group(cand.payload, key_path)
        pending.append(p)

    # 2. fairness order (positions), then per queue the earliest start each job may have
    order = _interleave(pending)
    per_queue: dict[QueueKey, list[tuple[int, int, int, int, _Pending]]] = {}
    for position, p in enumerate(order):
        backoff = p.rules.backoff
        n = p.n_before if backoff.count == "requeues" else p.cand.attempts_made
        delay = 0
        if backoff.base > 0 and n >= backoff.after:
            delay = backoff_ms(n, backoff, jitter_fraction(rng_seed, p.cand.key, n) if backoff.jitter else 0.0)
        per_queue.setdefault(p.cand.queue.key, []).append((now_ms + delay, position, n, delay, p))
    accepted: list[Decision] = []
    notes: dict[str, None] = {}
    for qkey, items in per_queue.items():
        items.sort(key=lambda item: (item[0], item[1]))
        state = _QueueState(items[0][4].rules, ledger, qkey, now_ms)
        for earliest, position, n, delay, p in items:
            decision = _schedule(p, state, earliest, position, n, delay, now_ms, caps_of, notes)
            if decision.accepted:
                accepted.append(decision)
            else:
                decisions.append(decision)
    if any(d.mode == "paced" for d in accepted):
        notes["paced: the backend cannot delay a requeue; the action layer holds those jobs until their time"] = None
    accepted.sort(key=lambda d: (d.delay_ms, d.position))
    decisions.sort(key=lambda d: d.index)
    return Plan(now=now, seed=rng_seed, force=force_level, source=policy.source,
                decisions=accepted + decisions, notes=list(notes))


def _schedule(p: _Pending, state: _QueueState, earliest: int, position: int, n: int, delay: int,
              now_ms: int, caps_of: Callable[[QueueRef], BackendCaps], notes: dict[str, None]) -> Decision:
    """The decision for one job that passed the job-level checks: its start time, or a refusal
    when the queue's budget or rate cannot fit it within max_delay."""
    cand, rules = p.cand, p.rules
    b = rules.budgets

    def refusal(reason: str, detail: str) -> Decision:
        return Decision(
            index=p.index, queue=cand.queue, job_id=cand.job_id, action="refuse", at=None, delay_ms=None,
            why=None, refused=(reason,), forced=p.forced, detail=detail, failure_class=p.klass,
            pattern=p.pattern, group=p.group_label, requeues_before=p.n_before, backoff_ms=delay,
            position=position, mode=None, job_timeout_s=None, keep_until=None,
        )

    if b.per_queue == 0:
        return refusal(QUEUE_BUDGET, "queue budget is 0 (budgets.per_queue = 0)")
    max_delay = rules.max_delay
    if state.full is not None:
        reason, first = state.full
        return refusal(reason, f"would start at {_offset(first)} or later (like the job before it in this queue), "
                               f"beyond max_delay {format_duration(max_delay)}")
    t = max(earliest, state.cursor)
    why = BACKOFF if delay > 0 and t == earliest else None
    while True:
        if state.rate is not None:
            t1 = state.rate.next_free(t)
            if t1 != t:
                t, why = t1, RATE
        if state.budget is not None:
            t2 = state.budget.next_free(t)
            if t2 != t:
                t, why = t2, QUEUE_BUDGET
                continue
        break
    if t > earliest and why is None:
        why = RATE if state.rate is not None else QUEUE_BUDGET  # held behind the previous job of the queue
    if max_delay is not None and t - now_ms > max_delay * 1000:
        reason = QUEUE_BUDGET if why == QUEUE_BUDGET else MAX_DELAY
        state.full = (reason, t - now_ms)
        return refusal(reason, f"{_why_words(why, rules, n, delay)} would start it at {_offset(t - now_ms)}, "
                               f"beyond max_delay {format_duration(max_delay)}")
    state.cursor = t
    if state.rate is not None:
        state.rate.add(t)
    if state.budget is not None:
        state.budget.add(t)
    caps = caps_of(cand.queue)
    job_notes: list[str] = []
    timeout = rules.timeouts.job_timeout
    job_timeout_s = None
    if timeout is not None:
        if caps.job_timeout:
            job_timeout_s = timeout
            notes[f"job timeout {format_duration(timeout)} set on requeue ({cand.queue.qualified})"] = None
        else:
            text = f"job timeout {format_duration(timeout)} not applied on {cand.queue.backend}: the backend cannot set it"
            job_notes.append(text)
            notes[text] = None
    retention = rules.timeouts.retention
    keep_until = None
    if retention is not None:
        if caps.retention:
            keep_until = from_ms(t + int(round(retention * 1000)))
            notes[f"retention {format_duration(retention)} after the start set on requeue ({cand.queue.qualified})"] = None
        else:
            text = f"retention {format_duration(retention)} not applied on {cand.queue.backend}: the backend cannot set it"
            job_notes.append(text)
            notes[text] = None
    if t == now_ms:
        action: Action = "now"
        mode, why = "immediate", None
    else:
        action = "later"
        mode = "delayed" if caps.delay else "paced"
    texts = []
    if action == "later":
        texts.append(_why_words(why, rules, n, delay))
    if p.group_label is not None:
        texts.append(p.group_label)
    if p.forced_detail:
        texts.append("forced: " + "; ".join(p.forced_detail))
    return Decision(
        index=p.index, queue=cand.queue, job_id=cand.job_id, action=action, at=from_ms(t),
        delay_ms=t - now_ms, why=why, refused=(), forced=p.forced, detail="; ".join(texts),
        failure_class=p.klass, pattern=p.pattern, group=p.group_label, requeues_before=p.n_before,
        backoff_ms=delay, position=position, mode=mode, job_timeout_s=job_timeout_s,
        keep_until=keep_until, notes=tuple(job_notes),
    )


def _force_hint(refused: tuple[str, ...]) -> str:
    if FATAL in refused and all(r in (FATAL, PERMANENT, TOO_OLD) for r in refused):
        return " (force=fatal overrides)"
    if all(r in (PERMANENT, TOO_OLD) for r in refused):
        return " (force overrides)"
    return ""


def _why_words(why: str | None, rules: Rules, n: int, delay: int) -> str:
    if why == RATE:
        return f"rate limit {rules.fairness.rate:g}/s per queue"
    if why == QUEUE_BUDGET:
        b = rules.budgets
        return f"queue budget {b.per_queue} per {format_duration(b.window)}"
    if why == BACKOFF:
        count = "requeue" if rules.backoff.count == "requeues" else "attempt"
        return f"backoff {_offset(delay)[1:]} after {n} {count}{'s' if n != 1 else ''}"
    return "scheduled"

