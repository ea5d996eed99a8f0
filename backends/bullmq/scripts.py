"""BullMQ's own Lua scripts, run from outside a worker (shared/formats/bullmq.md section 3).

Every state change goes through the scripts BullMQ itself runs, taken from the pinned BullMQ for
Python package (3.4.4: the same semantics as BullMQ for Node 6.x, and safe for 5.x queues once the
legacy ``paused`` list is counted). The files there are fully resolved (no ``@include``). We never
hand-roll ZREM/LPUSH: the scripts also move the marker, write events, re-link flow parents and
clean deduplication keys.
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

_SOURCES: dict[str, str] = {}


def script_source(name: str) -> str:
    if name not in _SOURCES:
        _SOURCES[name] = resources.files("bullmq").joinpath("commands", SCRIPT_FILES[name]).read_text("utf-8")
    return _SOURCES[name]


def scripts_version() -> str:
    from importlib.metadata import version

    return f"bullmq-python {version('bullmq')}"


class Scripts:
    """The scripts registered on one client (EVALSHA with a NOSCRIPT fallback, by redis-py)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._shas: dict[str, str] = {}
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name)) for name in SCRIPT_FILES
        }

    async def reprocess(self, k: QueueKeys, job_id: str, state: str, lifo: bool,
                        reset_attempts: bool) -> int:
        """Retry one failed/completed job. 1 ok, -1 no such job, -3 not in ``state``."""
        keys = [k.job(job_id), k("events"), k(state), k("wait"), k("meta"), k("active"), k("marker"),
                k("prioritized"), k("pc")]
        args = [job_id, ("R" if lifo else "L") + "PUSH", "failedReason" if state == "failed" else "returnvalue",
                state, "1" if reset_attempts else "0", "1" if reset_attempts else "0"]
        return int(await self._scripts["reprocessJob"](keys=keys, args=args))

    async def reprocess_many(self, k: QueueKeys, jobs: list[tuple[str, bool]], state: str,
                             reset_attempts: bool) -> list[int]:
        """``reprocess`` for many jobs in one pipelined round trip (each script call is atomic on
        its own; the pipeline is not a transaction, so one job's outcome never depends on another's)."""
        if not jobs:
            return []
        for attempt in (1, 2):
            sha = await self._sha("reprocessJob")
            pipe = self._client.pipeline(transaction=False)
            for job_id, lifo in jobs:
                keys = [k.job(job_id), k("events"), k(state), k("wait"), k("meta"), k("active"), k("marker"),
                        k("prioritized"), k("pc")]
                args = [job_id, ("R" if lifo else "L") + "PUSH",
                        "failedReason" if state == "failed" else "returnvalue", state,
                        "1" if reset_attempts else "0", "1" if reset_attempts else "0"]
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
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
        """Move at most ``count`` jobs of ``state`` finished at or before ``before_ms`` to wait.

        Returns how many moved and 1 while more may remain (0 when done). The count is a ZCOUNT
        in the same MULTI/EXEC transaction, just before the script and over its window, so nothing
        can interleave: it is exactly what this call moved. The script runs by EVALSHA (loaded
        once), so a batch is one round trip."""
        keys = [k(""), k("events"), k(state), k("wait"), k("paused"), k("meta"), k("active"), k("marker")]
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
            self._shas[name] = await self._client.script_load(script_source(name))
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
        """Delayed -> waiting now. 0 ok, -3 not delayed."""
        keys = [k("delayed"), k("wait"), k("paused"), k("meta"), k("prioritized"), k("active"), k("pc"),
                k("events"), k("marker")]
        return int(await self._scripts["promote"](keys=keys, args=[k(""), job_id]))

    async def pause(self, k: QueueKeys, pause: bool, emit: bool = True) -> int:
        """Pause (jobs stay in wait) or resume; resume returns how many legacy paused ids remain."""
        first, second = ("wait", "paused") if pause else ("paused", "wait")
        keys = [k(first), k(second), k("meta"), k("prioritized"), k("events"), k("delayed"), k("marker")]
        return int(await self._scripts["pause"](keys=keys, args=["paused" if pause else "resumed",
                                                                  "1" if emit else "0"]))
