"""The requeue policy engine: pure functions over data (no I/O, no Textual, no asyncio).

    policy = load_policy("policy.toml")                  # or policy_from_dict(data, source)
    result = plan(candidates, policy, ledger, now, force=False, backend_caps=caps, rng_seed=0)
    print("\\n".join(result.render(limit=20)))            # the preview / --dry-run
    ...execute result.accepted in order, then ledger.extend(result.ledger_entries(operator))

See docs/policy.md for the configuration reference and worked examples.
"""
from __future__ import annotations

from console.policy.backoff import backoff_ms, jitter_fraction, raw_backoff_ms
from console.policy.config import (
    Backoff,
    Budgets,
    FailureClass,
    Fairness,
    Policy,
    PolicyError,
    QueueOverride,
    Rules,
    Timeouts,
    default_policy,
    format_duration,
    load_policy,
    parse_duration,
    policy_from_dict,
    policy_from_toml,
)
from console.policy.ledger import JobKey, Ledger, LedgerEntry, LedgerError, QueueKey, iso, job_key
from console.policy.planner import (
    BACKOFF,
    DELAYS,
    DUPLICATE,
    FATAL,
    JOB_BUDGET,
    MAX_DELAY,
    PERMANENT,
    QUEUE_BUDGET,
    RATE,
    REFUSALS,
    TOO_OLD,
    BackendCaps,
    Candidate,
    Decision,
    Force,
    Plan,
    Summary,
    plan,
)

__all__ = [
    "BACKOFF", "DELAYS", "DUPLICATE", "FATAL", "JOB_BUDGET", "MAX_DELAY", "PERMANENT", "QUEUE_BUDGET",
    "RATE", "REFUSALS", "TOO_OLD",
    "Backoff", "BackendCaps", "Budgets", "Candidate", "Decision", "FailureClass", "Fairness", "Force",
    "JobKey", "Ledger", "LedgerEntry", "LedgerError", "Plan", "Policy", "PolicyError", "QueueKey",
    "QueueOverride", "Rules", "Summary", "Timeouts",
    "backoff_ms", "default_policy", "format_duration", "iso", "jitter_fraction", "job_key", "load_policy",
    "parse_duration", "plan", "policy_from_dict", "policy_from_toml", "raw_backoff_ms",
]
