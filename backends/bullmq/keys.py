"""Key names of a BullMQ (or legacy Bull) queue: ``<prefix>:<queue>:<suffix>``.

Job ids may contain colons (scheduler jobs are ``repeat:<id>:<millis>``), so a job key is never
split on ``:``; the known ``<prefix>:<queue>:`` is stripped instead.
"""
from __future__ import annotations

from dataclasses import dataclass

#: suffixes whose presence marks a queue (besides ``meta``/``id``)
STATE_SUFFIXES = ("wait", "paused", "active", "prioritized", "delayed", "completed", "failed", "waiting-children")


@dataclass(frozen=True)
class QueueKeys:
    prefix: str
    name: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.name}"

    def __call__(self, suffix: str) -> str:
        return f"{self.base}:{suffix}"

    def job(self, job_id: str) -> str:
        return f"{self.base}:{job_id}"

    def logs(self, job_id: str) -> str:
        return f"{self.base}:{job_id}:logs"
