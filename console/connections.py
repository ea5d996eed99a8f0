"""The set of connections a console session looks at: readers per URL, discovery, queue lookup.

Shared by the CLI and the TUI; plain asyncio, no Textual.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from backends.contract import Discovery, QueueRef, QueueStatus, Reader, call_with_timeout
from backends.errors import BackendError
from backends.registry import ConnectOptions, backend_names, declared_options, open_readers
from backends.urls import parse, redact
from console.config import Settings
from console.safe_text import clean


class QueueNotFound(LookupError):
    """QUEUE names no queue, or several (bad input: exit 2)."""


@dataclass
class Connection:
    url: str  # redacted
    readers: list[Reader] = field(default_factory=list)
    discoveries: dict[str, Discovery] = field(default_factory=dict)  # per reader backend
    error: str | None = None

    @property
    def queues(self) -> list[QueueRef]:
        return [q for d in self.discoveries.values() for q in d.queues]


def connect_options(settings: Settings) -> ConnectOptions:
    """The settings as the backends take them; backend-declared config keys land on their ``dest``."""
    dests = {opt.config_key: opt.dest for opt in declared_options().values()}
    return ConnectOptions(
        backend=settings.backend,
        connect_timeout=settings.connect_timeout,
        op_timeout=settings.op_timeout,
        store_prefix=settings.store_prefix,
        store_schema=settings.store_schema,
        read_only=settings.read_only,
        write_url=settings.write_url,
        extra={dests[key]: value for key, value in settings.backend_options.items() if key in dests},
    )


class Session:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.options = connect_options(settings)
        self.connections: list[Connection] = []

    async def open(self, raise_errors: bool = True, named: str | list[str] | None = None) -> None:
        """Connect to every URL concurrently and discover queues. With ``named`` (QUEUE arguments),
        a connection whose reader can look every one of them up directly does so instead of
        discovering every queue (no SCAN of the keyspace); only when one is not found there does it
        discover."""
        named = [named] if isinstance(named, str) else (named or None)
        for raw in self.settings.effective_urls():
            parse(raw)  # bad URLs are usage errors before anything connects
        results = await asyncio.gather(
            *(self._open_one(raw, named) for raw in self.settings.effective_urls()), return_exceptions=True
        )
        for raw, result in zip(self.settings.effective_urls(), results):
            if isinstance(result, BaseException):
                if raise_errors or not isinstance(result, BackendError):
                    await self.close()
                    raise result
                self.connections.append(Connection(url=redact(raw), error=str(result)))
            else:
                self.connections.append(result)

    async def _open_one(self, raw: str, named: list[str] | None = None) -> Connection:
        if named:
            conn = await self._open_named(raw, named)
            if conn is not None:
                return conn
        readers = await open_readers(raw, self.options)
        conn = Connection(url=redact(raw), readers=readers)
        try:
            await self.discover(conn)
        except BaseException:
            for r in readers:
                await r.close()
            raise
        return conn

    async def _open_named(self, raw: str, specs: list[str]) -> Connection | None:
        """The connection holding every queue of ``specs`` (``name`` or ``backend:name``) found by
        direct lookup, or None (not all found that way: the caller discovers). On Redis only the
        primary reader (BullMQ) is opened: detecting other systems would itself scan the keyspace."""
        if parse(raw).kind != "redis":
            return None
        options = self.options if self.options.backend else replace(self.options, backend=backend_names("redis")[0])
        readers = await open_readers(raw, options)
        names = [n for spec in specs for n in [spec] + ([spec.partition(":")[2]] if ":" in spec else [])]
        what = f"queue {specs[0]!r}" if len(specs) == 1 else f"{len(specs):,} named queues"
        try:
            found: dict[str, list[QueueRef]] = {}
            for reader in readers:
                refs = await call_with_timeout(reader.lookup(names), self.options.op_timeout,
                                               f"looking up {what} at {redact(raw)}")
                if refs is None:
                    raise LookupError
                found[reader.backend] = refs
        except LookupError:
            found = {}
        except BaseException:
            for r in readers:
                await r.close()
            raise
        refs = [q for qs in found.values() for q in qs]
        if not refs or not all(_named(spec, refs) for spec in specs):
            for r in readers:
                await r.close()
            return None
        conn = Connection(url=redact(raw), readers=readers)
        for reader in readers:
            conn.discoveries[reader.backend] = Discovery(
                queues=found[reader.backend], complete=False,
                note=f"looked up {what if len(specs) > 1 else repr(specs[0])} directly; other queues were not discovered")
        return conn

    async def discover(self, conn: Connection) -> None:
        budget = self.options.op_timeout + 5
        for reader in conn.readers:
            conn.discoveries[reader.backend] = await call_with_timeout(
                reader.discover(), budget, f"discovering queues at {conn.url}"
            )

    def reader_for(self, queue: QueueRef) -> Reader:
        for conn in self.connections:
            if conn.url != queue.connection:
                continue
            for reader in conn.readers:
                if any(q.key == queue.key for q in conn.discoveries.get(reader.backend, Discovery(queues=[])).queues):
                    return reader
        raise QueueNotFound(f"no reader holds queue {queue.qualified}")

    @property
    def queues(self) -> list[QueueRef]:
        return [q for c in self.connections for q in c.queues]

    def find(self, spec: str) -> QueueRef:
        """Resolve QUEUE (``name`` or ``backend:name``) to exactly one queue."""
        candidates = [q for q in self.queues if q.name == spec]
        if not candidates and ":" in spec:
            backend, _, name = spec.partition(":")
            candidates = [q for q in self.queues if q.backend == backend and q.name == name]
        if not candidates:  # a name that is not valid UTF-8, typed as it is shown (Q\xff)
            candidates = [q for q in self.queues if q.name != clean(q.name) and clean(q.name) == spec]
        if not candidates:
            known = ", ".join(sorted({q.qualified for q in self.queues})[:20]) or "none"
            raise QueueNotFound(f"no queue named {spec!r} (queues found: {known})")
        if len(candidates) > 1:
            where = "; ".join(f"{q.qualified} at {q.connection} prefix {q.namespace}" for q in candidates)
            raise QueueNotFound(f"queue name {spec!r} is ambiguous: {where}; qualify it as backend:name or pin --prefix/--url")
        return candidates[0]

    async def statuses(self, only: list[QueueRef] | None = None) -> list[QueueStatus]:
        """Counts of every queue found (or of the queues ``only``), one call per reader."""
        keys = {q.key for q in only} if only is not None else None
        out: list[QueueStatus] = []
        for conn in self.connections:
            for reader in conn.readers:
                queues = conn.discoveries[reader.backend].queues
                if keys is not None:
                    queues = [q for q in queues if q.key in keys]
                    if not queues:
                        continue
                out.extend(await call_with_timeout(reader.statuses(queues), self.options.op_timeout,
                                                   f"reading counts at {conn.url}"))
        return out

    async def topologies(self) -> list[dict]:
        """Per connection: its redacted URL, and for PostgreSQL whether it is a hot standby and its
        replica lag (backends/postgres_topology.standby_state)."""
        from backends.postgres_topology import standby_state

        out = []
        for conn in self.connections:
            entry: dict = {"url": conn.url}
            if conn.error:
                entry["error"] = conn.error
            else:
                try:
                    state = await standby_state(conn.readers, self.options.op_timeout)
                except BackendError as exc:
                    entry["error"] = str(exc)
                else:
                    entry.update(state or {})
            out.append(entry)
        return out

    async def close(self) -> None:
        for conn in self.connections:
            for reader in conn.readers:
                try:
                    await reader.close()
                except Exception:
                    pass


def _named(spec: str, refs: list[QueueRef]) -> bool:
    """Whether QUEUE ``spec`` (``name`` or ``backend:name``) names one of ``refs``."""
    backend, sep, name = spec.partition(":")
    return any(q.name == spec or (sep and q.backend == backend and q.name == name) for q in refs)
