"""Properties of the requeue planner that hold for every input (hypothesis).

A plan never exceeds a per-job or per-queue-window budget (counting the ledger and its own
earlier decisions), never starts two requeues of one queue closer than 1/rate, never loses or
duplicates a job, gives every refusal a reason, lets force override exactly what it should, keeps
backoff within [0, cap], interleaves queues, and is deterministic. Config errors name file, key
and value.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.contract import QueueRef
from console.policy import (
    Candidate,
    Force,
    Ledger,
    LedgerEntry,
    PolicyError,
    backoff_ms,
    plan,
    policy_from_dict,
    raw_backoff_ms,
)
from console.policy.ledger import to_ms
from console.policy.slots import RateSlots, WindowBudget, gap_ms

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=300, deadline=None)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
NOW_MS = to_ms(NOW)
QUEUES = [
    QueueRef(connection="redis://r:6379/0", backend="bullmq", namespace="bull", name="emails"),
    QueueRef(connection="redis://r:6379/0", backend="bullmq", namespace="bull", name="sms"),
    QueueRef(connection="postgresql://p/app", backend="pgboss", namespace="pgboss", name="reports"),
]
REASONS = ["ECONNRESET", "401 Unauthorized", "invalid email", "timeout", None, ""]
CLASSES = [
    {"pattern": "Unauthorized", "class": "fatal"},
    {"pattern": "invalid", "class": "permanent"},
    {"pattern": "timeout", "class": "permanent", "queues": ["sms"]},
]
JOB_LEVEL = ("fatal", "permanent", "too_old", "job_budget")


# ------------------------------------------------------------------------------ strategies

opt = lambda s: st.none() | s  # noqa: E731


@st.composite
def policies(draw, *, scheduling: bool = True) -> dict:
    budgets = {
        "per_job": draw(opt(st.integers(0, 4))),
        "per_queue": draw(opt(st.integers(0, 6))) if scheduling else None,
        "window": draw(st.integers(1, 20)),
    }
    if draw(st.booleans()):
        budgets["per_job_window"] = draw(st.integers(1, 7200))
    fairness = {"rate": draw(opt(st.sampled_from([0.3, 0.5, 1, 2, 3, 7, 10, 1000]))) if scheduling else None}
    if draw(st.booleans()):
        fairness["key"] = "tenant"
    base = draw(st.integers(0, 10))
    backoff = {"base": base, "factor": draw(st.sampled_from([1, 1.5, 2, 3])), "cap": base + draw(st.integers(0, 30)),
               "jitter": draw(st.sampled_from([0, 0.25, 0.5, 1])), "after": draw(st.integers(0, 2))}
    table = {
        "budgets": {k: ("off" if v is None else v) for k, v in budgets.items()},
        "fairness": {k: ("off" if v is None else v) for k, v in fairness.items()},
        "timeouts": {"max_age": draw(st.sampled_from(["off", 3600, 86400]))},
        "backoff": backoff,
        "failure_classes": CLASSES,
    }
    if scheduling and draw(st.booleans()):
        table["max_delay"] = draw(st.integers(0, 60))
    if draw(st.booleans()):  # an override for one queue
        table["queues"] = {draw(st.sampled_from(["sms", "bullmq:emails", "pgboss:reports"])): {
            "fairness": {"rate": draw(st.sampled_from([1, 4]))},
            "budgets": {"per_queue": draw(st.integers(1, 5))},
        }}
    return {"policy": table}


@st.composite
def candidates(draw, max_size: int = 30) -> list[Candidate]:
    n = draw(st.integers(0, max_size))
    out = []
    for _ in range(n):
        q = draw(st.sampled_from(QUEUES))
        out.append(Candidate(
            queue=q,
            job_id=str(draw(st.integers(0, 12))),
            failed_reason=draw(st.sampled_from(REASONS)),
            failed_at=draw(opt(st.integers(0, 3 * 86400).map(lambda s: NOW - timedelta(seconds=s)))),
            attempts_made=draw(st.integers(0, 5)),
            payload=draw(st.sampled_from([None, {"tenant": "a"}, {"tenant": "b"}, {"tenant": 3}, {"x": 1}])),
        ))
    return out


@st.composite
def ledgers(draw) -> Ledger:
    entries = []
    for _ in range(draw(st.integers(0, 12))):
        q = draw(st.sampled_from(QUEUES))
        at = NOW - timedelta(milliseconds=draw(st.integers(0, 7_200_000)))
        run_at = at + timedelta(milliseconds=draw(st.sampled_from([0, 0, draw(st.integers(0, 7_200_000))])))
        entries.append(LedgerEntry.make(q, str(draw(st.integers(0, 12))), at, run_at=run_at, operator="op"))
    return Ledger(entries)


forces = st.sampled_from([False, True, "fatal"])


# ------------------------------------------------------------------------------ helpers


def _ms(d) -> int:
    return to_ms(d.at)


def _queue_points(ledger: Ledger, result, queue: QueueRef) -> tuple[list[int], list[int]]:
    old = [to_ms(e.run_at) for e in ledger if e.queue_key == queue.key]
    new = [_ms(d) for d in result.accepted if d.queue.key == queue.key]
    return old, new


# ------------------------------------------------------------------------------ properties


@PROPS
@given(policies(), candidates(), ledgers(), forces, st.integers(0, 3))
def test_plan_invariants(table, jobs, ledger, force, seed):
    policy = policy_from_dict(table, "policy.toml")
    result = plan(jobs, policy, ledger, NOW, force=force, rng_seed=seed)

    # never loses or duplicates a job: every input position exactly once
    assert sorted(d.index for d in result.decisions) == list(range(len(jobs)))
    first_seen: dict = {}
    for d in result.by_index():
        c = jobs[d.index]
        assert (d.queue, d.job_id) == (c.queue, c.job_id)
        if c.key in first_seen:
            assert d.refused == ("duplicate",)
        else:
            first_seen[c.key] = d.index
            assert "duplicate" not in d.refused
    s = result.summary
    assert s.total == len(jobs) == s.now + s.later + s.refused

    # refusals carry reasons; accepted jobs carry none
    for d in result.decisions:
        if d.accepted:
            assert d.refused == () and d.at is not None and d.delay_ms >= 0
            assert (d.action == "now") == (d.delay_ms == 0)
            assert d.action == "now" or d.why in ("backoff", "rate", "queue_budget")
        else:
            assert d.refused and d.detail and d.at is None

    for d in result.accepted:
        rules = policy.rules_for(d.queue)
        # per-job budget, counting the ledger (and the plan: each job appears once)
        if rules.budgets.per_job is not None:
            since = None if rules.budgets.per_job_window is None else \
                NOW - timedelta(seconds=rules.budgets.per_job_window)
            assert ledger.job_count(d.queue, d.job_id, since=since) + 1 <= rules.budgets.per_job
        if rules.max_delay is not None:
            assert d.delay_ms <= rules.max_delay * 1000
        assert d.backoff_ms <= rules.backoff.cap * 1000 and d.delay_ms >= d.backoff_ms

    for q in QUEUES:
        rules = policy.rules_for(q)
        old, new = _queue_points(ledger, result, q)
        allpts = sorted(old + new)
        # per-queue window budget: every window of W ms that holds a new start holds <= N starts
        n = rules.budgets.per_queue
        if n is not None:
            w = round(rules.budgets.window * 1000)
            for t in new:
                for start in {p for p in allpts if t - w < p <= t}:
                    assert sum(1 for p in allpts if start <= p < start + w) <= n, (t, start, allpts)
        # rate: no two starts of a queue closer than 1/rate (ledger starts included)
        if rules.fairness.rate is not None:
            rest = sorted(old)
            for i, t in enumerate(sorted(new)):
                for p in rest + sorted(new)[:i]:
                    assert abs(t - p) * rules.fairness.rate >= 1000 * (1 - 1e-12), (t, p)

    # deterministic: the same inputs give the same plan, line for line
    again = plan(jobs, policy, ledger, NOW, force=force, rng_seed=seed)
    assert again.to_dict() == result.to_dict()
    assert again.render(limit=10) == result.render(limit=10)
    json.loads(result.to_json())


@PROPS
@given(policies(), candidates(), ledgers())
def test_force_overrides_exactly_class_and_age(table, jobs, ledger):
    policy = policy_from_dict(table, "policy.toml")
    plans = {f: plan(jobs, policy, ledger, NOW, force=f).by_index() for f in Force}
    for i, base in enumerate(plans[Force.NONE]):
        if base.refused == ("duplicate",):
            assert all(p[i].refused == ("duplicate",) for p in plans.values())
            continue
        reasons = set(base.refused) & set(JOB_LEVEL)
        for level, decisions in plans.items():
            d = decisions[i]
            overridable = {r for r in reasons if level.overrides(r)}
            assert set(d.refused) & set(JOB_LEVEL) == reasons - overridable
            assert set(d.forced) == overridable
            if d.accepted:
                assert not reasons - overridable
            # job budget, duplicates and capacity are never forced
            assert not set(d.forced) & {"job_budget", "duplicate", "queue_budget", "max_delay"}


@PROPS
@given(st.integers(2, 3), st.lists(st.integers(0, 2), min_size=0, max_size=30),
       st.sampled_from([None, 1, 4, 1000]), st.booleans())
def test_fairness_interleaves_queues_with_equal_rates(nq, picks, rate, by_tenant):
    table = {"policy": {"fairness": {"rate": rate if rate is not None else "off"}}}
    if by_tenant:
        table["policy"]["fairness"]["key"] = "tenant"
    policy = policy_from_dict(table, "p.toml")
    jobs = [Candidate(queue=QUEUES[p % nq], job_id=str(i), payload={"tenant": i % 3}) for i, p in enumerate(picks)]
    seq = [d.queue.key for d in plan(jobs, policy, Ledger(), NOW).decisions]
    assert len(seq) == len(jobs)
    for i in range(len(seq) - 1):
        if seq[i] == seq[i + 1]:
            # only allowed when no other queue has a job left after this point
            assert all(k == seq[i] for k in seq[i + 1:]), seq


@FAST
@given(base=st.integers(0, 100_000), factor=st.sampled_from([1, 1.25, 2, 3, 10]), extra=st.integers(0, 10**6),
       jitter=st.floats(0, 1), after=st.integers(0, 3), n=st.integers(0, 200), u=st.floats(0, 1, exclude_max=True))
def test_backoff_is_capped_and_exponential_before_jitter(base, factor, extra, jitter, after, n, u):
    cfg = policy_from_dict({"policy": {"backoff": {"base": f"{base}ms", "factor": factor, "cap": f"{base + extra}ms",
                                                   "jitter": jitter, "after": after}}}, "p.toml").backoff
    cap = base + extra
    raw, nxt = raw_backoff_ms(n, cfg), raw_backoff_ms(n + 1, cfg)
    assert 0 <= raw <= cap and raw <= nxt
    if n < after or base == 0:
        assert raw == 0
    elif nxt < cap:
        assert abs(nxt - raw * factor) <= factor  # grows by `factor` (up to rounding) until the cap
    elif n == after:
        assert raw == min(base, cap)
    delay = backoff_ms(n, cfg, u)
    assert 0 <= delay <= raw and delay >= raw * (1 - jitter) - 1


@FAST
@given(st.lists(st.integers(0, 3000), max_size=25), st.integers(1, 800), st.integers(0, 3000))
def test_rate_slots_next_free_is_the_earliest_allowed(points, gap, t):
    slots = RateSlots(gap, points)
    got = slots.next_free(t)
    ok = lambda x: all(abs(x - p) >= gap for p in points)  # noqa: E731
    assert got >= t and ok(got)
    assert not any(ok(x) for x in range(t, got))


@FAST
@given(st.lists(st.integers(0, 3000), max_size=25), st.integers(1, 800), st.integers(1, 5), st.integers(0, 3000))
def test_window_budget_next_free_is_the_earliest_allowed(points, window, limit, t):
    budget = WindowBudget(window, limit, points)
    got = budget.next_free(t)

    def ok(x: int) -> bool:
        pts = sorted(points + [x])
        return all(sum(1 for p in pts if s <= p < s + window) <= limit for s in range(x - window + 1, x + 1))

    assert got >= t and ok(got)
    assert not any(ok(x) for x in range(t, min(got, t + 400)))


@FAST
@given(ledgers())
def test_ledger_records_round_trip_through_json(ledger):
    records = json.loads(json.dumps(ledger.to_records()))
    assert Ledger.from_records(records) == ledger


NUMERIC_KEYS = [
    ("budgets", "per_job"), ("budgets", "per_queue"), ("budgets", "window"), ("budgets", "per_job_window"),
    ("fairness", "rate"), ("timeouts", "max_age"), ("timeouts", "job_timeout"), ("backoff", "base"),
    ("backoff", "factor"), ("backoff", "jitter"), ("backoff", "after"),
]


@FAST
@given(st.sampled_from(NUMERIC_KEYS), st.sampled_from([None, "bullmq:emails", "sms"]),
       st.one_of(st.integers(-10**6, -1), st.sampled_from(["fast", "1x", "--", "1h2", [], True, {"a": 1}])))
def test_config_errors_name_file_key_and_value(key, queue, bad):
    section, field = key
    table = {section: {field: bad}}
    data = {"policy": table if queue is None else {"queues": {queue: table}}}
    try:
        policy_from_dict(data, "ops/policy.toml")
    except PolicyError as exc:
        text = str(exc)
        path = f"policy.{section}.{field}" if queue is None else \
            "policy.queues." + (json.dumps(queue) if ":" in queue else queue) + f".{section}.{field}"
        shown = "a table" if isinstance(bad, dict) else repr(bad)
        assert text.startswith(f"ops/policy.toml: key '{path}': bad value {shown}: "), text
        assert exc.key == path and exc.source == "ops/policy.toml"
    else:
        raise AssertionError(f"{key}={bad!r} was accepted")


@FAST
@given(st.integers(1, 10**6).map(lambda r: r / 1000))
def test_gap_covers_one_over_rate(rate):
    if rate <= 1000:
        assert gap_ms(rate) * rate >= 1000 * (1 - 1e-12)
