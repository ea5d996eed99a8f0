"""Running a demo workload on a thread of its own with its own event loop (shared by the demos).

A subclass sets ``thread_name`` and implements ``_run``: it creates ``self._stop`` (an
asyncio.Event), sets ``self._ready`` once producers and workers are up, and returns after
``self._stop`` is set.
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass(kw_only=True)
class ThreadedWorkload:
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    #: what happened so far, by kind ("sent", "completed", "failed", ...)
    counts: dict[str, int] = field(default_factory=dict)

    thread_name = "queue-console-demo-workload"
    what = "the demo workload"

    def start(self, wait_s: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._main, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(wait_s):
            raise TimeoutError(f"{self.what} did not start within {wait_s:g} s")
        if self.error:
            raise self.error

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop and stop and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        except BaseException as exc:  # reported by start() or ignored at shutdown
            self.error = exc
        finally:
            self._ready.set()
            self._loop.close()

    def _count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    async def _run(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError
