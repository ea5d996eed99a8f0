"""Which BullMQ generation writes a queue, and so how the console must move its jobs.

BullMQ 4 and 5 keep a paused queue's jobs in the legacy ``paused`` list: their pause()/resume()
RENAME ``wait`` to ``paused`` and back, and their add/retry/promote push into ``paused`` while
``meta.paused`` is set. BullMQ 6 (and BullMQ for Python 3.x) keeps the jobs in ``wait`` and only
sets ``meta.paused``; its resume() merges a legacy ``paused`` list into ``wait``. A console move
into the wrong list is lost at the next legacy resume() (docs/backends/bullmq.md "Versions").

The generation is told from the evidence of one pipelined read (``read_evidence``):
- ``meta.version`` ``bullmq:4.x`` / ``bullmq:5.x`` / ``bullmq:6.x`` -> that generation;
- no ``meta.version`` (BullMQ for Python never writes one) and no legacy list -> BullMQ 6 semantics;
- any other ``meta.version`` (``bullmq:99.0.0``, ``bullmq-pro:7.0.0``, garbage) -> unknown: reads
  work, every change is refused;
- a legacy ``paused`` list holding jobs while ``meta.version`` says 6 or is absent -> ambiguous (a
  BullMQ 4/5 client paused the queue, but the version cannot be told): retry, promote and pause are
  refused with the reason; resume is allowed, by BullMQ 6's merging resume, which loses nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import redis.asyncio as aioredis

from backends.blob import to_str
from backends.bullmq.keys import QueueKeys
from backends.redis_client import pipelined_lenient
from backends.errors import Unsupported

_VERSION = re.compile(r"bullmq:(\d+)\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?")
#: generation key -> the scripts that move its jobs (backends.bullmq.scripts.GENERATIONS)
MAJORS = {4: "v4", 5: "v5", 6: "v6"}
#: generations whose pause RENAMEs ``wait`` to ``paused``
LEGACY = ("v4", "v5")


@dataclass(frozen=True)
class Evidence:
    """What one queue's keys say about its writers."""

    version: str | None  # meta.version, as stored
    paused: bool  # meta.paused present
    legacy_jobs: int  # jobs in the legacy ``paused`` list (a pre-v5 ``0:<ts>`` marker not counted)
    wait_items: int  # elements of ``wait`` (jobs and a pre-v5 marker)


@dataclass(frozen=True)
class Generation:
    """How the console moves this queue's jobs. ``scripts`` is None when it must refuse (``reason``)."""

    scripts: str | None  # "v4" | "v5" | "v6"
    label: str
    reason: str | None = None  # why retry/promote/pause are refused
    unknown: bool = False  # unknown meta.version: every change refused, resume too

    @property
    def legacy(self) -> bool:
        return self.scripts in LEGACY


def generation(ev: Evidence) -> Generation:
    if ev.version is not None:
        m = _VERSION.fullmatch(ev.version)
        major = int(m.group(1)) if m else None
        if major not in MAJORS:
            shown = ev.version if len(ev.version) <= 60 else ev.version[:60] + "..."
            return Generation(None, f"unknown ({shown!r})", unknown=True,
                              reason=f"meta.version {shown!r} is not BullMQ 4, 5 or 6: queue-console reads this "
                                     "queue but refuses to change it (it cannot know how that version moves jobs)")
        label = f"BullMQ {major} (meta.version {ev.version})"
        if major == 6 and ev.legacy_jobs:
            return Generation(None, label, reason=(
                f"meta.version says BullMQ 6 but the legacy paused list holds {ev.legacy_jobs} jobs (a BullMQ 4/5 "
                "client paused this queue): which representation its writers use cannot be told; resume the "
                "queue first (the console's resume merges both lists, as BullMQ 6 does)"))
        return Generation(MAJORS[major], label)
    if ev.legacy_jobs:
        return Generation(None, "legacy (no meta.version)", reason=(
            f"no meta.version, and the legacy paused list holds {ev.legacy_jobs} jobs: a BullMQ 4 or 5 client "
            "paused this queue, but which one cannot be told; resume the queue first (the console's resume "
            "merges both lists, as BullMQ 6 does)"))
    return Generation("v6", "BullMQ 6 semantics (no meta.version; BullMQ for Python 3.x writes none)")


def require_moves(gen: Generation, what: str) -> str:
    """The scripts for a retry/promote, or Unsupported with the reason."""
    if gen.scripts is None:
        raise Unsupported(f"refusing to {what}: {gen.reason}")
    return gen.scripts


def pause_plan(ev: Evidence, gen: Generation) -> str | None:
    """The scripts that pause this queue, None when it is paused already (a legacy pause of a
    paused queue would RENAME ``wait`` over ``paused``), or Unsupported with the reason."""
    scripts = require_moves(gen, "pause")
    if ev.paused:
        return None
    if gen.legacy and ev.legacy_jobs and ev.wait_items:
        raise Unsupported(f"refusing to pause: both wait ({ev.wait_items}) and the legacy paused list "
                          f"({ev.legacy_jobs}) hold jobs, and the {gen.label} pause would RENAME wait over paused")
    return scripts


def resume_plan(ev: Evidence, gen: Generation) -> str:
    """The scripts that resume this queue: the generation's own, except when both lists hold jobs
    (or the generation cannot be told): then BullMQ 6's resume, which merges instead of RENAMEing."""
    if gen.unknown:
        raise Unsupported(f"refusing to resume: {gen.reason}")
    if gen.scripts is None or (ev.legacy_jobs and ev.wait_items):
        return "v6"
    return gen.scripts


async def read_evidence(client: aioredis.Redis, queues: list[QueueKeys]) -> list[Evidence]:
    """One pipelined round trip for all the queues."""
    if not queues:
        return []
    commands: list[tuple] = []
    for k in queues:
        paused = k("paused")
        commands += [("HMGET", k("meta"), "version", "paused"), ("LLEN", paused), ("LINDEX", paused, -1),
                     ("LLEN", k("wait"))]
    # a key of the wrong type answers WRONGTYPE to its own command only: read as absent here (its
    # queue's status says it is malformed), so that one bad key never fails discovery
    replies = await pipelined_lenient(client, commands)
    out = []
    for i in range(len(queues)):
        meta, legacy, tail, wait = replies[i * 4:(i + 1) * 4]
        version, paused = meta if meta is not None else (None, None)
        legacy, wait = legacy or 0, wait or 0
        if tail is not None and tail.startswith(b"0:"):
            legacy = max(legacy - 1, 0)
        out.append(Evidence(version=to_str(version) if version is not None else None, paused=paused is not None,
                            legacy_jobs=int(legacy), wait_items=int(wait)))
    return out
