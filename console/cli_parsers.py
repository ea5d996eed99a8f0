"""The argument parsers of the mutating and triage verbs (dlq, pause, resume, promote, cancel, audit).

Kept apart from console/cli_actions.py, which runs them: building the parser must not import the
action layer and the policy engine (~0.2 s), which ``status``, ``jobs`` and ``job`` never use.
"""
from __future__ import annotations

import argparse
from typing import Callable


class ActionUsageError(ValueError):
    pass


def add_parsers(sub: argparse._SubParsersAction, connection_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        connection_flags(p)
        p.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help="refuse every mutation")
        p.add_argument("--json", action="store_true")

    dlq = sub.add_parser("dlq", help="dead-letter (failed) jobs: list, retry, purge")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="DLQ_COMMAND", required=True)
    lst = dsub.add_parser("list", help="failed jobs of one queue or all queues")
    common(lst)
    lst.add_argument("queue", nargs="?", metavar="QUEUE")
    lst.add_argument("--group", action="store_true", help="group by error signature (variable parts folded)")
    lst.add_argument("--limit", type=int, default=50, help="jobs per queue (1..1000; default 50)")
    lst.add_argument("--filter", metavar="QUERY", help='e.g. "error:timeout age:>2h data.customer:42" (docs/triage.md)')
    for verb in ("retry", "purge"):
        p = dsub.add_parser(verb, help=f"{verb} failed jobs: one, several, or all (a fixed snapshot)")
        common(p)
        p.add_argument("queue", nargs="?", metavar="QUEUE")
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--job", action="append", dest="jobs", metavar="ID", help="a job id (repeatable)")
        g.add_argument("--all", action="store_true", help="every failed job (of QUEUE, or of every queue)")
        p.add_argument("--older-than", metavar="DURATION", help="only jobs that failed more than DURATION ago (90s, 2h, 7d)")
        p.add_argument("--filter", metavar="QUERY", help="with --all: only the failed jobs matching QUERY (read in "
                       "bounded batches, capped; docs/triage.md)")
        p.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")
        p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        if verb == "retry":
            p.add_argument("--reset-attempts", action="store_true", help="give each job its full attempts again")
            p.add_argument("--force", nargs="?", const="permanent", choices=["permanent", "fatal"],
                           help="override the policy's refusal of permanent failures and too-old jobs "
                                "(--force fatal: fatal ones too); budgets and rates are never overridden")
            p.add_argument("--policy", dest="policy_file", metavar="FILE", default=argparse.SUPPRESS,
                           help="requeue policy TOML (default: the config file's [policy] table)")
    for verb in ("pause", "resume"):
        p = sub.add_parser(verb, help=f"{verb} one queue, or --all queues on every connection")
        common(p)
        p.add_argument("queue", nargs="?", metavar="QUEUE")
        p.add_argument("--all", action="store_true")
        p.add_argument("--dry-run", action="store_true",
                       help=f"show what would be {verb}d, what is already {verb}d and what cannot be; change nothing")
        p.add_argument("--yes", action="store_true")
    for verb, what in (("promote", "run delayed jobs now"), ("cancel", "cancel jobs (pg-boss)")):
        p = sub.add_parser(verb, help=what)
        common(p)
        p.add_argument("queue", metavar="QUEUE")
        p.add_argument("--job", action="append", dest="jobs", metavar="ID", required=True, help="a job id (repeatable)")
        p.add_argument("--yes", action="store_true")
    audit = sub.add_parser("audit", help="the audit records of every mutation, newest first")
    common(audit)
    audit.add_argument("--limit", type=int, default=50)
