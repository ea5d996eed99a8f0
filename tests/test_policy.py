"""The requeue policy engine (console.policy): config, ledger, planner, rendering, docs.

Pure unit tests: no servers. The properties that must hold for every input live in
tests/test_policy_properties.py (hypothesis).
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backends.contract import Blob, JobSummary, QueueRef
from console.config import ConfigError
from console.policy import (
    BackendCaps,
    Candidate,
    Force,
    Ledger,
    LedgerEntry,
    LedgerError,
    Policy,
    PolicyError,
    backoff_ms,
    default_policy,
    format_duration,
    load_policy,
    parse_duration,
    plan,
    policy_from_dict,
    policy_from_toml,
    raw_backoff_ms,
)
from console.policy.slots import RateSlots, WindowBudget, gap_ms

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "policy.md"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
CONN = "redis://redis.prod:6379/0"
EMAILS = QueueRef(connection=CONN, backend="bullmq", namespace="bull", name="emails")
SMS = QueueRef(connection=CONN, backend="bullmq", namespace="bull", name="sms")
REPORTS = QueueRef(connection="postgresql://db.prod:5432/app", backend="pgboss", namespace="pgboss", name="reports")


def cand(queue: QueueRef, job_id: str, reason: str | None = "ECONNRESET", *, ago: timedelta = timedelta(hours=1),
         attempts: int = 3, payload=None) -> Candidate:
    return Candidate(queue=queue, job_id=job_id, failed_reason=reason, failed_at=NOW - ago,
                     attempts_made=attempts, payload=payload)


def pol(text: str) -> Policy:
    return policy_from_toml(text, "policy.toml")


# ============================================================================ config


def doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_full_example_in_the_docs_is_valid(tmp_path):
    text = doc_blocks("toml")[0]
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    assert policy.source == str(path)
    assert policy.budgets.per_job == 3
    assert policy.failure_classes, "the full example shows failure classes"
    assert policy.queues, "the full example shows per-queue overrides"
    # every other toml block in the docs is valid too
    for i, block in enumerate(doc_blocks("toml")[1:]):
        policy_from_toml(block, f"docs block {i + 1}")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[policy.budgets]\nper_job = -1", "policy.toml: key 'policy.budgets.per_job': bad value -1: must be >= 0"),
        ("[policy.budgets]\nwindow = '-5s'", "policy.toml: key 'policy.budgets.window': bad value '-5s': must be > 0"),
        ("[policy.budgets]\nwindow = '5x'", "policy.toml: key 'policy.budgets.window': bad value '5x': not a duration"),
        ("[policy.budgets]\nper_jobs = 1", "policy.toml: key 'policy.budgets.per_jobs': bad value 1: unknown key"),
        ("[policy.budgets]\nper_queue = true", "key 'policy.budgets.per_queue': bad value True: must be a number"),
        ("[policy.fairness]\nrate = 0", "key 'policy.fairness.rate': bad value 0: must be > 0"),
        ("[policy.fairness]\nkey = 'a..b'", "key 'policy.fairness.key': bad value 'a..b': must be a dotted path"),
        ("[policy]\nmax_delay = 'soon'", "key 'policy.max_delay': bad value 'soon': not a duration"),
        ("[policy.backoff]\nbase = '10m'\ncap = '1m'",
         "key 'policy.backoff.cap': bad value '1m': cap (1m) must be >= base (10m)"),
        ("[policy.backoff]\njitter = 1.5", "key 'policy.backoff.jitter': bad value 1.5: must be <= 1"),
        ("[policy.backoff]\ncount = 'tries'", "key 'policy.backoff.count': bad value 'tries': must be one of"),
        ("[policy.queues.\"bullmq:emails\".budgets]\nper_queue = -3",
         "key 'policy.queues.\"bullmq:emails\".budgets.per_queue': bad value -3: must be >= 0"),
        ("[policy.backoff]\ncap = '10s'\n[policy.queues.emails.backoff]\nbase = '1m'",
         "key 'policy.queues.emails.backoff.cap': bad value '10s': cap (10s) must be >= base (1m) "
         "(value inherited from [policy.backoff])"),
        ("[[policy.failure_classes]]\npattern = '('\nclass = 'fatal'",
         "key 'policy.failure_classes[0].pattern': bad value '(': not a valid regular expression"),
        ("[[policy.failure_classes]]\npattern = 'x'\nclass = 'bad'",
         "key 'policy.failure_classes[0].class': bad value 'bad': must be one of 'transient', 'permanent' or 'fatal'"),
        ("[[policy.failure_classes]]\npattern = 'x'", "key 'policy.failure_classes[0].class': missing required key"),
        ("[budgets]\nper_job = 1", "policy.toml: key 'budgets': belongs under [policy]"),
        ("policy = 3", "policy.toml: key 'policy': bad value 3: must be a table"),
    ],
)
def test_errors_name_file_key_and_value(text, expected):
    with pytest.raises(PolicyError) as info:
        pol(text)
    text = str(info.value)
    assert text.startswith("policy.toml: key '") and expected in text, text
    assert isinstance(info.value, ConfigError)  # the CLI reports it on one line, exit 2
    assert info.value.source == "policy.toml"


def test_load_policy_file_errors(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(bad))}: not valid TOML"):
        load_policy(bad)


def test_missing_table_is_the_default_policy_and_other_tables_are_ignored():
    policy = policy_from_dict({"refresh": 2.0, "contexts": {}}, "config.toml")
    assert policy.model_dump() == default_policy().model_dump()
    assert policy.source == "config.toml"


def test_durations():
    assert parse_duration(90) == 90.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration(" 2d ") == 172800.0
    assert parse_duration("1w") == 604800.0
    assert parse_duration("1.5s") == 1.5
    for bad in ("", "h", "1x", "1h 2", True, None, "1h-2m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_duration(5400) == "1h30m"
    assert format_duration(0.25) == "250ms"
    assert format_duration(None) == "off"


def test_queue_overrides_inherit_and_win_in_order():
    policy = pol("""
[policy]
max_delay = "1h"
[policy.budgets]
per_job = 3
per_queue = 100
window = "1h"
[policy.queues.emails.budgets]
per_job = 5
[policy.queues."bullmq:emails"]
max_delay = "off"
[policy.queues."bullmq:emails".fairness]
rate = 2
[policy.queues.sms]
budgets = { per_queue = "off" }
""")
    emails = policy.rules_for(EMAILS)
    # "bullmq:emails" wins over "emails": only its own keys are changed, the rest are the defaults
    assert emails.fairness.rate == 2
    assert emails.max_delay is None
    assert emails.budgets.per_job == 3
    sms = policy.rules_for(SMS)
    assert sms.budgets.per_queue is None and sms.budgets.per_job == 3 and sms.budgets.window == 3600
    other = policy.rules_for(QueueRef(connection=CONN, backend="bullmq", namespace="bull", name="other"))
    assert other.budgets.per_queue == 100 and other.max_delay == 3600
    plain_emails = QueueRef(connection=CONN, backend="pgboss", namespace="pgboss", name="emails")
    assert policy.rules_for(plain_emails).budgets.per_job == 5


def test_failure_classes_first_match_wins_and_queue_filter():
    policy = pol("""
[[policy.failure_classes]]
pattern = "(?i)unauthori[sz]ed"
class = "fatal"
[[policy.failure_classes]]
pattern = "timeout"
class = "transient"
queues = ["bullmq:sms"]
[[policy.failure_classes]]
pattern = "timeout|invalid"
class = "permanent"
""")
    assert policy.classify(EMAILS, "401 Unauthorized") == ("fatal", "(?i)unauthori[sz]ed")
    assert policy.classify(SMS, "gateway timeout") == ("transient", "timeout")
    assert policy.classify(EMAILS, "gateway timeout") == ("permanent", "timeout|invalid")
    assert policy.classify(EMAILS, "boom") == ("transient", None)
    assert policy.classify(EMAILS, None) == ("transient", None)


def test_ledger_retention():
    assert default_policy().ledger_retention() == 0
    assert pol("[policy.budgets]\nper_queue = 5\nwindow = '2h'").ledger_retention() == 7200
    assert pol("[policy.budgets]\nper_job = 2").ledger_retention() is None
    assert pol("[policy.budgets]\nper_job = 2\nper_job_window = '30d'").ledger_retention() == 30 * 86400


# ============================================================================ ledger


def test_ledger_counts_and_records_round_trip():
    ledger = Ledger()
    ledger.record(EMAILS, "1", NOW - timedelta(days=2), operator="ana")
    ledger.record(EMAILS, "1", NOW - timedelta(hours=1), run_at=NOW + timedelta(minutes=5), operator="bo")
    ledger.record(SMS, "1", NOW - timedelta(minutes=1))
    assert ledger.job_count(EMAILS, "1") == 2
    assert ledger.job_count(EMAILS, "1", since=NOW - timedelta(days=1)) == 1
    assert ledger.job_count(SMS, "1") == 1 and ledger.job_count(SMS, "2") == 0
    assert ledger.queue_count(EMAILS, NOW, NOW + timedelta(hours=1)) == 1  # counted by run_at
    assert [e.operator for e in ledger.entries(queue=EMAILS)] == ["ana", "bo"]
    records = ledger.to_records()
    assert records[1] == {
        "connection": CONN, "backend": "bullmq", "namespace": "bull", "queue": "emails", "job_id": "1",
        "at": "2025-03-01T11:00:00.000Z", "run_at": "2025-03-01T12:05:00.000Z", "operator": "bo",
    }
    again = Ledger.from_records(json.loads(json.dumps(records)))
    assert again == ledger
    moved = Ledger.from_records(records, connection="redis://10.0.0.5:6379/0")
    assert {e.connection for e in moved} == {"redis://10.0.0.5:6379/0"}
    assert len(ledger.prune(NOW - timedelta(days=1))) == 2


@pytest.mark.parametrize(
    "records, message",
    [
        ([{"backend": "bullmq"}], "ledger record 0: missing field 'connection'"),
        ([["x"]], "ledger record 0: not an object"),
        ([{"connection": "c", "backend": "b", "namespace": "n", "queue": "q", "job_id": "1", "at": "yesterday"}],
         "ledger record 0: field 'at': bad value 'yesterday': not an ISO 8601 time"),
        ([{"connection": "c", "backend": "b", "namespace": "n", "queue": "q", "job_id": "1",
           "at": "2025-01-01T00:00:00"}], "time without a timezone"),
    ],
)
def test_ledger_record_errors(records, message):
    with pytest.raises(LedgerError, match=re.escape(message)):
        Ledger.from_records(records)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        Ledger().record(EMAILS, "1", datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        plan([], default_policy(), Ledger(), datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        Candidate(queue=EMAILS, job_id="1", failed_at=datetime(2025, 1, 1))


# ============================================================================ planner: job-level rules


def test_default_policy_retries_everything_now_and_refuses_duplicates():
    jobs = [cand(EMAILS, "1"), cand(SMS, "1"), cand(EMAILS, "2"), cand(EMAILS, "1")]
    result = plan(jobs, default_policy(), Ledger(), NOW)
    assert [(d.queue.name, d.job_id, d.action) for d in result] == [
        ("emails", "1", "now"), ("sms", "1", "now"), ("emails", "2", "now"), ("emails", "1", "refuse"),
    ]
    dup = result.decisions[-1]
    assert dup.refused == ("duplicate",) and dup.index == 3
    assert dup.detail == "duplicate of item 1 in the selection"
    assert all(d.mode == "immediate" and d.at == NOW for d in result.accepted)


def test_empty_selection():
    result = plan([], default_policy(), Ledger(), NOW)
    assert len(result) == 0 and result.summary.total == 0
    assert result.render() == [
        "requeue plan at 2025-03-01T12:00:00.000Z · policy (defaults) · force none · seed 0",
        "0 jobs: 0 now, 0 later, 0 refused",
    ]


CLASSES = """
[policy.timeouts]
max_age = "7d"
[policy.budgets]
per_job = 1
[[policy.failure_classes]]
pattern = "(?i)unauthorized"
class = "fatal"
[[policy.failure_classes]]
pattern = "invalid email"
class = "permanent"
"""


def _classes_selection() -> tuple[list[Candidate], Ledger]:
    jobs = [
        cand(EMAILS, "ok"),
        cand(EMAILS, "fatal", "401 Unauthorized"),
        cand(EMAILS, "perm", "invalid email: x@"),
        cand(EMAILS, "old", ago=timedelta(days=9)),
        cand(EMAILS, "perm-old", "invalid email", ago=timedelta(days=9)),
        cand(EMAILS, "fatal-old", "Unauthorized", ago=timedelta(days=9)),
        cand(EMAILS, "spent"),
        cand(EMAILS, "ok"),
    ]
    ledger = Ledger([LedgerEntry.make(EMAILS, "spent", NOW - timedelta(days=1))])
    return jobs, ledger


@pytest.mark.parametrize(
    "force, expected",
    [
        (False, {"ok": (), "fatal": ("fatal",), "perm": ("permanent",), "old": ("too_old",),
                 "perm-old": ("permanent", "too_old"), "fatal-old": ("fatal", "too_old"),
                 "spent": ("job_budget",)}),
        (True, {"ok": (), "fatal": ("fatal",), "perm": (), "old": (), "perm-old": (), "fatal-old": ("fatal",),
                "spent": ("job_budget",)}),
        ("fatal", {"ok": (), "fatal": (), "perm": (), "old": (), "perm-old": (), "fatal-old": (),
                   "spent": ("job_budget",)}),
    ],
)
def test_force_overrides_exactly_class_and_age(force, expected):
    jobs, ledger = _classes_selection()
    result = plan(jobs, pol(CLASSES), ledger, NOW, force=force)
    got = {d.job_id: d.refused for d in result.by_index()[:-1]}
    assert got == expected
    assert result.by_index()[-1].refused == ("duplicate",)  # never overridden
    for d in result.accepted:
        assert d.forced == tuple(r for r in ("fatal", "permanent", "too_old")
                                 if r in {"fatal": ("fatal",), "perm": ("permanent",), "old": ("too_old",),
                                          "perm-old": ("permanent", "too_old"),
                                          "fatal-old": ("fatal", "too_old")}.get(d.job_id, ()))


def test_refusal_details_say_what_would_override():
    jobs, ledger = _classes_selection()
    by_id = {d.job_id: d for d in plan(jobs, pol(CLASSES), ledger, NOW).by_index()}
    assert by_id["fatal"].detail == "fatal failure (reason matches /(?i)unauthorized/) (force=fatal overrides)"
    assert by_id["perm"].detail == "permanent failure (reason matches /invalid email/) (force overrides)"
    assert by_id["old"].detail == "failed 9d ago, beyond max_age 7d (force overrides)"
    assert by_id["spent"].detail == "job budget used: requeued 1 time, per_job = 1"


def test_force_parsing():
    assert Force.parse(True) is Force.PERMANENT and Force.parse(False) is Force.NONE
    assert Force.parse(None) is Force.NONE and Force.parse("fatal") is Force.FATAL
    assert Force.parse("permanent") is Force.PERMANENT and Force.parse(Force.FATAL) is Force.FATAL
    with pytest.raises(ValueError, match="bad force"):
        Force.parse("everything")


def test_unknown_failure_time_skips_the_age_rule():
    job = Candidate(queue=EMAILS, job_id="1", failed_reason="x")
    assert plan([job], pol("[policy.timeouts]\nmax_age = '1s'"), Ledger(), NOW).decisions[0].action == "now"


def test_per_job_budget_counts_the_ledger_within_its_window():
    policy = pol("[policy.budgets]\nper_job = 2\nper_job_window = '1d'")
    ledger = Ledger([
        LedgerEntry.make(EMAILS, "a", NOW - timedelta(days=3)),
        LedgerEntry.make(EMAILS, "a", NOW - timedelta(hours=3)),
        LedgerEntry.make(EMAILS, "b", NOW - timedelta(hours=3)),
        LedgerEntry.make(EMAILS, "b", NOW - timedelta(hours=2)),
    ])
    result = plan([cand(EMAILS, "a"), cand(EMAILS, "b")], policy, ledger, NOW)
    assert [d.action for d in result.by_index()] == ["now", "refuse"]
    assert result.by_index()[0].requeues_before == 1
    assert result.by_index()[1].detail == "job budget used: requeued 2 times within 1d, per_job = 2"


def test_executing_a_plan_and_replanning_respects_the_job_budget():
    policy = pol("[policy.budgets]\nper_job = 1")
    ledger = Ledger()
    first = plan([cand(EMAILS, "a")], policy, ledger, NOW)
    ledger.extend(first.ledger_entries("ana"))
    again = plan([cand(EMAILS, "a")], policy, ledger, NOW + timedelta(minutes=1))
    assert again.decisions[0].refused == ("job_budget",)


def test_plan_does_not_mutate_the_ledger():
    ledger = Ledger([LedgerEntry.make(EMAILS, "a", NOW)])
    before = ledger.to_records()
    plan([cand(EMAILS, "b"), cand(EMAILS, "c")], pol("[policy.fairness]\nrate = 1"), ledger, NOW)
    assert ledger.to_records() == before


# ============================================================================ planner: scheduling


def test_rate_limit_spaces_each_queue_and_interleaves_queues():
    policy = pol("[policy.fairness]\nrate = 2")
    jobs = [cand(EMAILS, str(i)) for i in range(3)] + [cand(SMS, "s0")]
    result = plan(jobs, policy, Ledger(), NOW)
    assert [(d.queue.name, d.job_id, d.delay_ms, d.why) for d in result] == [
        ("emails", "0", 0, None), ("sms", "s0", 0, None), ("emails", "1", 500, "rate"), ("emails", "2", 1000, "rate"),
    ]


def test_rate_limit_counts_requeues_in_the_ledger():
    policy = pol("[policy.fairness]\nrate = 1")
    ledger = Ledger([LedgerEntry.make(EMAILS, "x", NOW - timedelta(milliseconds=400))])
    result = plan([cand(EMAILS, "a")], policy, ledger, NOW)
    assert result.decisions[0].delay_ms == 600 and result.decisions[0].why == "rate"


def test_queue_window_budget_defers_then_refuses_beyond_max_delay():
    policy = pol("[policy.budgets]\nper_queue = 2\nwindow = '10m'")
    ledger = Ledger([LedgerEntry.make(EMAILS, "x", NOW - timedelta(minutes=4))])
    jobs = [cand(EMAILS, str(i)) for i in range(4)]
    result = plan(jobs, policy, ledger, NOW)
    assert [(d.job_id, d.delay_ms, d.why) for d in result] == [
        ("0", 0, None), ("1", 6 * 60_000, "queue_budget"), ("2", 10 * 60_000, "queue_budget"),
        ("3", 16 * 60_000, "queue_budget"),
    ]
    capped = plan(jobs, pol("[policy]\nmax_delay = '10m'\n[policy.budgets]\nper_queue = 2\nwindow = '10m'"),
                  ledger, NOW)
    assert [d.action for d in capped.by_index()] == ["now", "later", "later", "refuse"]
    last = capped.by_index()[-1]
    assert last.refused == ("queue_budget",)
    assert last.detail == "queue budget 2 per 10m would start it at +16m, beyond max_delay 10m"


def test_zero_queue_budget_refuses_everything_in_that_queue():
    policy = pol("[policy.queues.emails.budgets]\nper_queue = 0")
    result = plan([cand(EMAILS, "1"), cand(SMS, "1")], policy, Ledger(), NOW)
    assert [d.action for d in result.by_index()] == ["refuse", "now"]
    assert result.by_index()[0].detail == "queue budget is 0 (budgets.per_queue = 0)"


def test_max_delay_refuses_what_the_rate_pushes_too_far():
    policy = pol("[policy]\nmax_delay = '1s'\n[policy.fairness]\nrate = 1")
    result = plan([cand(EMAILS, str(i)) for i in range(4)], policy, Ledger(), NOW)
    assert [(d.job_id, d.action, d.reason) for d in result.by_index()] == [
        ("0", "now", None), ("1", "later", None), ("2", "refuse", "max_delay"), ("3", "refuse", "max_delay"),
    ]


def test_backoff_grows_per_manual_requeue_and_is_reproducible():
    policy = pol("[policy.backoff]\nbase = '30s'\nfactor = 2\ncap = '2m'\njitter = 0.5")
    ledger = Ledger()
    for job_id, times in (("a", 0), ("b", 1), ("c", 2), ("d", 5)):
        for k in range(times):
            ledger.record(EMAILS, job_id, NOW - timedelta(days=1, minutes=k))
    jobs = [cand(EMAILS, j) for j in "abcd"]
    result = plan(jobs, policy, ledger, NOW, rng_seed=7)
    by_id = {d.job_id: d for d in result}
    assert by_id["a"].backoff_ms == 0 and by_id["a"].action == "now"
    assert 15_000 <= by_id["b"].backoff_ms <= 30_000
    assert 30_000 <= by_id["c"].backoff_ms <= 60_000
    assert 60_000 <= by_id["d"].backoff_ms <= 120_000  # capped
    assert by_id["b"].why == "backoff" and by_id["b"].delay_ms == by_id["b"].backoff_ms
    assert plan(jobs, policy, ledger, NOW, rng_seed=7).to_dict() == result.to_dict()
    assert plan(jobs, policy, ledger, NOW, rng_seed=8).to_dict() != result.to_dict()
    # a job's delay does not depend on the rest of the selection
    alone = plan([cand(EMAILS, "c")], policy, ledger, NOW, rng_seed=7)
    assert alone.decisions[0].backoff_ms == by_id["c"].backoff_ms


def test_backoff_counting_attempts():
    policy = pol("[policy.backoff]\nbase = '1s'\ncount = 'attempts'\nafter = 3")
    result = plan([cand(EMAILS, "a", attempts=2), cand(EMAILS, "b", attempts=5)], policy, Ledger(), NOW)
    assert [d.backoff_ms for d in result.by_index()] == [0, 4000]


def test_backoff_functions():
    cfg = pol("[policy.backoff]\nbase = '1s'\nfactor = 3\ncap = '1m'\njitter = 1").backoff
    assert [raw_backoff_ms(n, cfg) for n in range(7)] == [0, 1000, 3000, 9000, 27000, 60000, 60000]
    assert raw_backoff_ms(10**9, cfg) == 60000  # no overflow
    assert backoff_ms(3, cfg, 0.0) == 9000 and backoff_ms(3, cfg, 0.999999) == 1
    assert raw_backoff_ms(5, default_policy().backoff) == 0


def test_fairness_key_interleaves_tenants_within_a_queue():
    policy = pol("[policy.fairness]\nrate = 10\nkey = 'tenant.id'")
    jobs = [cand(EMAILS, f"a{i}", payload={"tenant": {"id": "acme"}}) for i in range(4)]
    jobs += [cand(EMAILS, "b0", payload={"tenant": {"id": 7}}), cand(EMAILS, "n0", payload=None)]
    result = plan(jobs, policy, Ledger(), NOW)
    assert [(d.job_id, d.delay_ms) for d in result] == [
        ("a0", 0), ("b0", 100), ("n0", 200), ("a1", 300), ("a2", 400), ("a3", 500),
    ]
    assert [d.group for d in result][:3] == ["tenant.id=acme", "tenant.id=7", "tenant.id=(missing)"]


def test_backend_caps_decide_timeouts_retention_and_mode():
    policy = pol("[policy.timeouts]\njob_timeout = '5m'\nretention = '1d'\n[policy.fairness]\nrate = 1")
    jobs = [cand(EMAILS, "1"), cand(EMAILS, "2"), cand(REPORTS, "r1"), cand(REPORTS, "r2")]
    caps = {"pgboss": BackendCaps(delay=True, job_timeout=True, retention=True), "bullmq": BackendCaps(delay=False)}
    result = plan(jobs, policy, Ledger(), NOW, backend_caps=caps)
    by_id = {d.job_id: d for d in result}
    assert by_id["r2"].job_timeout_s == 300 and by_id["r2"].mode == "delayed"
    assert by_id["r2"].keep_until == NOW + timedelta(days=1, seconds=1)
    assert by_id["2"].job_timeout_s is None and by_id["2"].mode == "paced" and by_id["2"].keep_until is None
    assert by_id["2"].notes == ("job timeout 5m not applied on bullmq: the backend cannot set it",
                                "retention 1d not applied on bullmq: the backend cannot set it")
    assert result.notes == (
        "job timeout 5m not applied on bullmq: the backend cannot set it",
        "retention 1d not applied on bullmq: the backend cannot set it",
        "job timeout 5m set on requeue (pgboss:reports)",
        "retention 1d after the start set on requeue (pgboss:reports)",
        "paced: the backend cannot delay a requeue; the action layer holds those jobs until their time",
    )
    # a callable works as well
    same = plan(jobs, policy, Ledger(), NOW, backend_caps=lambda q: caps[q.backend])
    assert same.to_dict() == result.to_dict()


# ============================================================================ plan forms


def test_candidate_from_summary():
    summary = JobSummary(id="42", state="failed", native_state="failed", finished_ms=1_700_000_000_123,
                         attempts_made=3, failed_reason=Blob(text="boom", size=4))
    c = Candidate.from_summary(EMAILS, summary, payload={"a": 1})
    assert c.failed_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
    assert (c.job_id, c.failed_reason, c.attempts_made, c.payload) == ("42", "boom", 3, {"a": 1})


def test_json_form_and_fingerprint():
    policy = pol("[policy.fairness]\nrate = 2\n[policy.budgets]\nper_job = 1")
    jobs = [cand(EMAILS, "1"), cand(EMAILS, "2"), cand(EMAILS, "1")]
    result = plan(jobs, policy, Ledger(), NOW)
    data = json.loads(result.to_json())
    assert data["summary"] == {"total": 3, "now": 1, "later": 1, "refused": 1, "by_reason": {"duplicate": 1},
                               "delayed_by": {"rate": 1}, "forced": 0, "last_delay_ms": 500,
                               "queues": {"bullmq:emails": {"now": 1, "later": 1, "refused": 1}}}
    assert data["decisions"][1]["at"] == "2025-03-01T12:00:00.500Z"
    assert data["decisions"][1]["mode"] == "delayed"
    # the same selection planned later (nothing else changed) has the same fingerprint
    later = plan(jobs, policy, Ledger(), NOW + timedelta(minutes=3))
    assert later.fingerprint() == result.fingerprint()
    assert later.to_dict() != result.to_dict()
    # ... but not once the ledger says job 1 was requeued in between
    ledger = Ledger(result.ledger_entries("ana"))
    assert plan(jobs, policy, ledger, NOW + timedelta(minutes=3)).fingerprint() != result.fingerprint()


def test_ledger_entries_record_the_planned_start():
    result = plan([cand(EMAILS, "1"), cand(EMAILS, "2")], pol("[policy.fairness]\nrate = 1"), Ledger(), NOW)
    entries = result.ledger_entries("ana", at=NOW + timedelta(milliseconds=10))
    assert [(e.job_id, e.run_at - NOW, e.operator) for e in entries] == [
        ("1", timedelta(milliseconds=10), "ana"), ("2", timedelta(seconds=1), "ana"),
    ]


def test_render_is_stable_limited_and_inert():
    policy = pol("[policy.fairness]\nrate = 4")
    jobs = [cand(EMAILS, "evil\x1b[31mred"), *(cand(SMS, f"s{i}") for i in range(5)), cand(EMAILS, "evil\x1b[31mred")]
    result = plan(jobs, policy, Ledger(), NOW)
    lines = result.render(limit=4)
    assert lines == [
        "requeue plan at 2025-03-01T12:00:00.000Z · policy policy.toml · force none · seed 0",
        "7 jobs: 2 now, 4 later (last +1s), 1 refused (1 duplicate)",
        "  WHEN    QUEUE          JOB              WHY",
        "  now     bullmq:emails  evil\\x1b[31mred",
        "  now     bullmq:sms     s0",
        "  +0.25s  bullmq:sms     s1               rate limit 4/s per queue",
        "  +0.5s   bullmq:sms     s2               rate limit 4/s per queue",
        "  … 3 more (2 later, 1 refused)",
    ]
    assert result.render(limit=4) == lines
    assert len(result.render(limit=None)) == 3 + 7


def test_labels_disambiguate_same_name_on_two_connections():
    other = QueueRef(connection="redis://other:6379/0", backend="bullmq", namespace="bull", name="emails")
    result = plan([cand(EMAILS, "1"), cand(other, "1")], default_policy(), Ledger(), NOW)
    assert sorted(result.summary.queues) == [
        "bullmq:emails (bull @ redis://other:6379/0)", "bullmq:emails (bull @ redis://redis.prod:6379/0)",
    ]


# ============================================================================ slot structures


def test_gap_is_never_shorter_than_one_over_rate():
    for rate in (0.3, 1, 2, 3, 7, 999, 1000):
        assert gap_ms(rate) * rate >= 1000
    assert gap_ms(3) == 334


def test_rate_slots_fill_gaps_exactly():
    slots = RateSlots(100, [0, 500])
    assert slots.next_free(0) == 100 and slots.next_free(150) == 150 and slots.next_free(450) == 600
    slots.add(250)
    assert slots.next_free(150) == 150  # exactly one gap from 0 and from 250
    assert slots.next_free(200) == 350


def test_window_budget_waits_for_the_window():
    budget = WindowBudget(1000, 2, [0, 100])
    assert budget.next_free(0) == 1000  # the start at 0 must leave the window first
    budget = WindowBudget(1000, 2, [0, 100, 2500, 2600])
    assert budget.next_free(0) == 1000
    assert budget.next_free(1200) == 1200  # shares a window with at most one other start
    assert budget.next_free(1700) == 3500
    assert WindowBudget(1000, 2, [0, 1500]).next_free(0) == 0  # 0 and 1500 never share a window


# ============================================================================ purity and docs


def test_policy_package_is_pure():
    code = ("import sys, console.policy\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'redis', 'asyncpg', 'rich')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    banned = {"asyncio", "socket", "subprocess", "threading", "textual", "redis", "asyncpg", "time", "random",
              "urllib", "http", "os"}
    for path in sorted((ROOT / "console" / "policy").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("now", "utcnow", "today")):
                raise AssertionError(f"{path.name} reads the clock")


def _doc_example(name: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!-- example: {name} -->\n```text\n(.*?)```", text, flags=re.S)
    assert m, f"docs/policy.md lacks the example {name}"
    return m.group(1).rstrip("\n").split("\n")


def _example_policy() -> Policy:
    return policy_from_toml(doc_blocks("toml")[0], "policy.toml")


def test_doc_example_incident_bulk_retry():
    """Worked example 1: a bulk retry across two queues after an outage."""
    policy = _example_policy()
    jobs = [cand(EMAILS, f"e{i}", "connect ECONNREFUSED 10.0.0.7:587", ago=timedelta(minutes=20),
                 payload={"tenant": {"id": "acme" if i < 4 else "globex"}}) for i in range(6)]
    jobs += [cand(SMS, f"s{i}", "socket hang up", ago=timedelta(minutes=18)) for i in range(3)]
    jobs.append(cand(EMAILS, "e9", "550 5.1.1 invalid email address", ago=timedelta(minutes=15)))
    jobs.append(cand(EMAILS, "e2", "connect ECONNREFUSED 10.0.0.7:587"))
    ledger = Ledger([LedgerEntry.make(SMS, "s1", NOW - timedelta(hours=5), operator="ana")])
    result = plan(jobs, policy, ledger, NOW)
    assert result.render(limit=20) == _doc_example("incident")


def test_doc_example_window_budget_and_force():
    """Worked example 2: the reports queue's small window budget, old and fatal failures, force."""
    policy = _example_policy()
    ledger = Ledger([LedgerEntry.make(REPORTS, f"old{i}", NOW - timedelta(minutes=50 - 10 * i), operator="bo")
                     for i in range(4)])
    jobs = [cand(REPORTS, f"r{i}", "canceling statement due to statement timeout", ago=timedelta(hours=3))
            for i in range(3)]
    jobs.append(cand(REPORTS, "r7", "relation \"tmp_x\" does not exist", ago=timedelta(days=12)))
    jobs.append(cand(REPORTS, "r8", "FATAL: password authentication failed for user \"app\""))
    caps = {"pgboss": BackendCaps(delay=True, job_timeout=True, retention=True)}
    assert plan(jobs, policy, ledger, NOW, backend_caps=caps).render() == _doc_example("reports")
    assert plan(jobs, policy, ledger, NOW, backend_caps=caps, force=True).render() == _doc_example("reports-forced")


def test_doc_example_repeated_requeue_backoff():
    """Worked example 3: the same jobs requeued again and again back off."""
    policy = _example_policy()
    ledger = Ledger()
    for job_id, times in (("w1", 1), ("w2", 2), ("w3", 3)):
        for k in range(times):
            ledger.record(EMAILS, job_id, NOW - timedelta(hours=k + 1), operator="ana")
    jobs = [cand(EMAILS, j, "read ETIMEDOUT", payload={"tenant": {"id": "acme"}}) for j in ("w0", "w1", "w2", "w3")]
    assert plan(jobs, policy, ledger, NOW, rng_seed=42).render() == _doc_example("backoff")
