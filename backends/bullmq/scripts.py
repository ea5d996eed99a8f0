"""BullMQ's own Lua scripts, run from outside a worker (shared/formats/bullmq.md section 3).

Every state change goes through the scripts BullMQ itself runs. Generation "v6" uses the pinned
BullMQ for Python package (3.4.4: the same semantics as BullMQ for Node 6.x; its files are fully
resolved). The scripts that move jobs between ``wait`` and ``paused`` (retry, bulk retry, promote,
pause/resume) are also vendored from BullMQ for Node 4.18.3 ("v4") and 5.81.5 ("v5"), resolved
(``backends/bullmq/lua/``, MIT, checked byte for byte against the npm packages by
tests/test_interop_bullmq_versions.py), so that a queue is changed exactly as its own generation
does (backends.bullmq.versions picks it). We never hand-roll ZREM/LPUSH: the scripts also move the
marker, write events, re-link flow parents and clean deduplication keys.
"""
from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from backends.bullmq.keys import QueueKeys

SCRIPT_FILES = {
    "reprocessJob": "reprocessJob-9.lua",
    "moveJobsToWait": "moveJobsToWait-8.lua",
    "removeJob": "removeJob-2.lua",
    "cleanJobsInSet": "cleanJobsInSet-3.lua",
    "promote": "promote-9.lua",
    "pause": "pause-7.lua",
}

#: the vendored legacy generations: directory under backends/bullmq/lua and the files of the
#: scripts whose key/argument layout differs per version (removeJob/cleanJobsInSet always v6)
LEGACY_FILES = {
    "v4": ("bullmq-4.18.3", {"reprocessJob": "reprocessJob-6.lua", "moveJobsToWait": "moveJobsToWait-6.lua",
                             "promote": "promote-7.lua", "pause": "pause-5.lua"}),
    "v5": ("bullmq-5.81.5", {"reprocessJob": "reprocessJob-8.lua", "moveJobsToWait": "moveJobsToWait-8.lua",
                             "promote": "promote-9.lua", "pause": "pause-7.lua"}),
}
GENERATIONS = ("v4", "v5", "v6")
#: before a retry with reset: the job's ``attemptsMade`` (BullMQ 4's field, read before ``atm`` by
#: every version's decoder) is deleted only if the job is in the state being retried; sent in the
#: same MULTI/EXEC as the retry script, so nothing interleaves
_RESET_LEGACY_ATTEMPTS = ('if redis.call("ZSCORE", KEYS[2], ARGV[1]) then '
                          'return redis.call("HDEL", KEYS[1], "attemptsMade") end return 0')

_SOURCES: dict[tuple[str, str], str] = {}


def script_source(name: str, generation: str = "v6") -> str:
    if (generation, name) not in _SOURCES:
        if generation == "v6":
            text = resources.files("bullmq").joinpath("commands", SCRIPT_FILES[name]).read_text("utf-8")
        else:
            directory, files = LEGACY_FILES[generation]
            text = resources.files("backends.bullmq").joinpath("lua", directory, files[name]).read_text("utf-8")
        _SOURCES[(generation, name)] = text
    return _SOURCES[(generation, name)]


def scripts_version() -> str:
    from importlib.metadata import version

    return f"bullmq-python {version('bullmq')}"


class Scripts:
    """The scripts of one generation registered on one client (EVALSHA with a NOSCRIPT fallback,
    by redis-py). Key and argument layouts are the generation's own."""

    def __init__(self, client: aioredis.Redis, generation: str = "v6") -> None:
        if generation not in GENERATIONS:
            raise ValueError(f"unknown BullMQ script generation {generation!r}")
        self._client = client
        self.generation = generation
        self._shas: dict[str, str] = {}
        names = SCRIPT_FILES if generation == "v6" else LEGACY_FILES[generation][1]
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name, generation)) for name in names
        }

    def _reprocess_call(self, k: QueueKeys, job_id: str, lifo: bool, state: str,
                        reset_attempts: bool) -> tuple[list[str], list[str]]:
        push = ("R" if lifo else "L") + "PUSH"
        prop = "failedReason" if state == "failed" else "returnvalue"
        reset = "1" if reset_attempts else "0"
        if self.generation == "v4":
            return ([k.job(job_id), k("events"), k(state), k("wait"), k("meta"), k("paused")],
                    [job_id, push, prop, state])
        if self.generation == "v5":
            return ([k.job(job_id), k("events"), k(state), k("wait"), k("meta"), k("paused"), k("active"),
                     k("marker")], [job_id, push, prop, state, reset, reset])
        return ([k.job(job_id), k("events"), k(state), k("wait"), k("meta"), k("active"), k("marker"),
                 k("prioritized"), k("pc")], [job_id, push, prop, state, reset, reset])

    async def reprocess(self, k: QueueKeys, job_id: str, state: str, lifo: bool,
                        reset_attempts: bool) -> int:
        """Retry one failed/completed job. 1 ok, -1 no such job, -3 not in ``state``."""
        [code] = await self.reprocess_many(k, [(job_id, lifo)], state, reset_attempts)
        return code

    async def reprocess_many(self, k: QueueKeys, jobs: list[tuple[str, bool]], state: str,
                             reset_attempts: bool) -> list[int]:
        """``reprocess`` for many jobs in one pipelined round trip (each script call is atomic on
        its own; the pipeline is not a transaction, so one job's outcome never depends on another's).

        With ``reset_attempts`` every job's retry is preceded, in one MULTI/EXEC, by the deletion
        of BullMQ 4's ``attemptsMade`` field (only while the job is still in ``state``): v4's script
        has no reset, and v5/v6's reset deletes ``atm`` only, which a decoder reads after
        ``attemptsMade``. A NOSCRIPT reply means no retry ran; the deletions are repeated harmlessly."""
        if not jobs:
            return []
        for attempt in (1, 2):
            sha = await self._sha("reprocessJob")
            pipe = self._client.pipeline(transaction=reset_attempts)
            for job_id, lifo in jobs:
                keys, args = self._reprocess_call(k, job_id, lifo, state, reset_attempts)
                if reset_attempts:
                    pipe.eval(_RESET_LEGACY_ATTEMPTS, 2, k.job(job_id), k(state), job_id)
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
            if reset_attempts:
                replies = replies[1::2]
            if any(isinstance(r, NoScriptError) for r in replies):
                self._shas.pop("reprocessJob", None)
                if attempt == 1:
                    # nothing ran (the script was not loaded): load and send the same calls again
                    continue
            for r in replies:
                if isinstance(r, Exception):
                    raise r
            return [int(r) for r in replies]
        raise AssertionError("unreachable")

    async def move_jobs_to_wait(self, k: QueueKeys, state: str, count: int, before_ms: int) -> tuple[int, int]:
        """Move at most ``count`` jobs of ``state`` finished at or before ``before_ms`` to wait
        (to ``paused`` on a v4/v5 queue that is paused, as those versions do).

        Returns how many moved and 1 while more may remain (0 when done). The count is a ZCOUNT
        in the same MULTI/EXEC transaction, just before the script and over its window, so nothing
        can interleave: it is exactly what this call moved. The script runs by EVALSHA (loaded
        once), so a batch is one round trip."""
        keys = [k(""), k("events"), k(state), k("wait"), k("paused"), k("meta")]
        if self.generation != "v4":
            keys += [k("active"), k("marker")]
        for attempt in (1, 2):
            sha = await self._sha("moveJobsToWait")
            pipe = self._client.pipeline(transaction=True)
            pipe.zcount(k(state), 0, before_ms)
            pipe.evalsha(sha, len(keys), *keys, count, before_ms, state)
            try:
                waiting, more = await pipe.execute()
            except NoScriptError:
                self._shas.pop("moveJobsToWait", None)  # the server lost its script cache: load again
                if attempt == 2:
                    raise
                continue
            return min(int(waiting), count), int(more)
        raise AssertionError("unreachable")

    async def _sha(self, name: str) -> str:
        if name not in self._shas:
            self._shas[name] = await self._client.script_load(script_source(name, self.generation))
        return self._shas[name]

    async def remove(self, k: QueueKeys, job_id: str) -> int:
        """Remove one job and its keys. 1 removed, 0 locked (active), -8 owned by a scheduler."""
        return int(await self._scripts["removeJob"](keys=[k.job(job_id), k("repeat")], args=[job_id, 1, k("")]))

    async def clean(self, k: QueueKeys, state: str, before_ms: int, limit: int) -> list[str]:
        """Remove at most ``limit`` jobs of ``state`` older than ``before_ms``; returns their ids."""
        removed = await self._scripts["cleanJobsInSet"](keys=[k(state), k("events"), k("repeat")],
                                                        args=[k(""), before_ms, limit, state])
        return [r.decode("utf-8", "surrogateescape") if isinstance(r, bytes) else str(r) for r in removed or []]

    async def promote(self, k: QueueKeys, job_id: str) -> int:
        """Delayed -> waiting now (or ``paused`` on a paused v4/v5 queue). 0 ok, -3 not delayed."""
        if self.generation == "v4":
            keys = [k("delayed"), k("wait"), k("paused"), k("meta"), k("prioritized"), k("pc"), k("events")]
        else:
            keys = [k("delayed"), k("wait"), k("paused"), k("meta"), k("prioritized"), k("active"), k("pc"),
                    k("events"), k("marker")]
        return int(await self._scripts["promote"](keys=keys, args=[k(""), job_id]))

    async def pause(self, k: QueueKeys, pause: bool, emit: bool = True) -> int:
        """Pause or resume with the generation's own script: v6 keeps the jobs in wait (its resume
        merges a legacy ``paused`` list into wait, 7000 ids per call, and returns how many remain);
        v4/v5 RENAME wait to paused and back (and return 0)."""
        first, second = ("wait", "paused") if pause else ("paused", "wait")
        keys = [k(first), k(second), k("meta"), k("prioritized"), k("events")]
        if self.generation == "v4":
            return int(await self._scripts["pause"](keys=keys, args=["paused" if pause else "resumed"]) or 0)
        keys += [k("delayed"), k("marker")]
        if self.generation == "v5":
            return int(await self._scripts["pause"](keys=keys, args=["paused" if pause else "resumed"]) or 0)
        return int(await self._scripts["pause"](keys=keys, args=["paused" if pause else "resumed",
                                                                  "1" if emit else "0"]))
