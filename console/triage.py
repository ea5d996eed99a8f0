"""Dead-letter triage: error signatures and groups. Pure functions, no I/O, no Textual.

A signature is the failure reason with its variable parts folded (numbers, ids, uuids, hex,
quoted values, timestamps, IPs, emails, URLs' paths), so 40,000 failures show as the handful of
distinct errors they are.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from backends.contract import FailedRow, JobSummary, QueueRef

#: a hex word holds a digit and a letter a-f joined by hex characters: cheaper to look for first
_HEX_HINT = re.compile(r"\d[0-9a-f]*[a-f]|[a-f][0-9a-f]*\d", re.I)
#: (pattern, replacement, what the text must hold for the pattern to match at all -- one of these
#: characters, or a match of a cheap regex: skips most patterns for most messages; "" = always tried)
_FOLDS: list[tuple[re.Pattern[str], str, str | re.Pattern[str]]] = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>", "-"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?\b"), "<time>", ":"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b"), "<email>", "@"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b"), "<ip>", "."),
    (re.compile(r"\"[^\"\n]{0,200}\"|'[^'\n]{0,200}'"), "<str>", "\"'"),
    (re.compile(r"\b(0x)?[0-9a-f]*\d[0-9a-f]*[a-f][0-9a-f]*\b|\b(0x)?[0-9a-f]*[a-f][0-9a-f]*\d[0-9a-f]*\b", re.I), "<hex>", _HEX_HINT),
    (re.compile(r"\b[a-z]+_[A-Za-z0-9]{6,}\b"), "<id>", "_"),
    # digits right after letters ("welcome-v41", "user42", "vol7"): a version or id, not a word
    (re.compile(r"(?<=[A-Za-z])\d+"), "<n>", ""),
    (re.compile(r"\b\d+(\.\d+)?(?=(ms|s|m|h|d|kb|mb|gb|b|x)\b)", re.I), "<n>", ""),
    (re.compile(r"-?\b\d+(\.\d+)?\b"), "<n>", ""),
]
MAX_SIGNATURE = 200
_SPACES = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")


def signature(reason: str | None) -> str:
    """The failure reason's first line with variable parts folded."""
    if not reason:
        return "(no error message)"
    line = reason.strip().splitlines()[0] if reason.strip() else ""
    # every fold needs a digit, an @, a quote or an underscore: most plain messages skip them all
    if _DIGIT.search(line) or "@" in line or '"' in line or "'" in line or "_" in line:
        for pattern, repl, needs in _FOLDS:
            if not needs or (needs.search(line) if isinstance(needs, re.Pattern) else any(ch in line for ch in needs)):
                line = pattern.sub(repl, line)
    line = _SPACES.sub(" ", line).strip()
    return line[:MAX_SIGNATURE] or "(no error message)"


#: a job as grouping reads it: a full row (JobSummary) or the few fields of a FailedRow
FailedJob = Union[JobSummary, FailedRow]


@dataclass
class Group:
    signature: str
    count: int = 0
    queues: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    sample_id: str | None = None
    sample_queue: QueueRef | None = None
    sample_reason: str | None = None
    #: the jobs of the group, as read, in the order read (so a view lists them without folding
    #: every reason again)
    members: list[tuple[QueueRef, FailedJob]] = field(default_factory=list)

    def _settle(self) -> None:
        """Count, queues, first/last failure and the sample (the newest failure; the first member
        when no member has a time) from ``members``."""
        self.count = len(self.members)
        self.queues = {q.qualified for q in {id(q): q for q, _ in self.members}.values()}
        times = [j.finished_ms for _, j in self.members if j.finished_ms is not None]
        self.first_ms, self.last_ms = (min(times), max(times)) if times else (None, None)
        sample = self.members[0]
        if times:
            sample = next(m for m in self.members if m[1].finished_ms == self.last_ms)
        self.sample_queue, job = sample
        self.sample_id, self.sample_reason = job.id, job.reason_text or None


def group_jobs(items: list[tuple[QueueRef, FailedJob]]) -> list[Group]:
    """Groups by signature, most jobs first. Each distinct raw reason is folded once (100,000
    failures usually hold a few thousand distinct reasons), and members keep the order read."""
    groups: dict[str, Group] = {}
    group_of: dict[str, Group] = {}  # raw reason -> its group
    for item in items:
        reason = item[1].reason_text
        group = group_of.get(reason)
        if group is None:
            sig = signature(reason)
            group = groups.get(sig)
            if group is None:
                group = groups[sig] = Group(sig)
            if len(group_of) < 100_000:
                group_of[reason] = group
        group.members.append(item)
    for group in groups.values():
        group._settle()
    return sorted(groups.values(), key=lambda g: (-g.count, g.signature))
