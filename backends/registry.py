"""Opening readers for a connection URL, by looping over the backends' declarations.

A backend declares itself (``backends.declaration.BackendDeclaration``) and registers the
declaration in the ``queue_console.backends`` entry-point group, so another installed package can
ship a backend. For a URL, the declarations of its kind are used in ``order``: the primary system
(no ``detect``: BullMQ on Redis, pg-boss on PostgreSQL) is always opened, every other one is
opened next to it when its ``detect`` finds it (Gello: a time-boxed SCAN for
``<gello prefix>:queue:*`` keys; a ``failed_jobs`` table or a ``jobs`` table with a ``job_type``
column in the Gello schema; BullMQ 6 on PostgreSQL: a schema with BullMQ's tables). ``--backend
NAME`` opens only that system.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from backends.contract import Reader
from backends.declaration import URL_KINDS, BackendDeclaration, BackendOption
from backends.errors import BadUrl
from backends.urls import parse

ENTRY_POINT_GROUP = "queue_console.backends"
#: the declarations this repository ships; used as they are when the package was never installed
#: (a source tree on sys.path has no entry points). Keep in step with pyproject.toml.
BUILTIN = {
    "bullmq": "backends.bullmq.declaration:DECLARATION",
    "pgboss": "backends.pgboss.declaration:DECLARATION",
    "gello-redis": "backends.gello_redis.declaration:DECLARATION",
    "gello-postgres": "backends.gello_postgres.declaration:DECLARATION",
    "bullmq-postgres": "backends.bullmq_postgres.declaration:DECLARATION",
}


@dataclass
class _GenericOptions:
    backend: str | None = None  # force one system instead of detecting
    connect_timeout: float = 5.0
    op_timeout: float = 10.0
    discovery_budget_s: float = 10.0  # a full SCAN of 1.1M keys took 3.8 s (docs/performance.md)
    store_prefix: str = "queue-console"  # where the console keeps audit, ledger, global-pause records
    #: the PostgreSQL schema of the console's own records (None: the backend's default)
    store_schema: str | None = None
    client_name: str = "queue-console"  # CLIENT SETNAME, so operators can tell our connections apart
    read_only: bool = False  # no background writes either (pg-boss re-park sweep, the discovery cache)
    #: discovery may list the last complete scan's queues instead of scanning (`status`; see
    #: backends/bullmq/discovery.py, the cache)
    discovery_cache: bool = False
    write_url: str | None = None  # PostgreSQL: mutations go to this primary (the --url may be a hot standby)
    #: the values of the declared options (``BackendOption.dest`` -> value)
    extra: dict[str, Any] = field(default_factory=dict)


class ConnectOptions(_GenericOptions):
    """What every backend is opened with: the generic settings (the dataclass fields), and
    ``extra``, the values of the options the backends declare (``BackendOption.dest`` -> value:
    BullMQ's ``prefixes``, pg-boss's ``schema``, Gello's ``gello_prefixes`` ..., and those of
    backends from other packages alike). A declared option reads like a field
    (``options.prefixes``; None, or [] when repeatable, when unset) and is given like one
    (``ConnectOptions(prefixes=["bull"])``). No field belongs to one backend
    (tests/test_backend_options.py checks)."""

    def __init__(self, **kwargs: Any) -> None:
        generic = {f.name for f in fields(_GenericOptions)}
        declared = {name: kwargs.pop(name) for name in list(kwargs) if name not in generic}
        unknown = sorted(set(declared) - set(declared_options()))
        if unknown:
            raise TypeError(f"ConnectOptions got an unexpected keyword argument {unknown[0]!r} "
                            "(no field, and no backend declares it)")
        super().__init__(**kwargs)
        self.extra = {**self.extra, **declared}

    def __getattr__(self, name: str) -> Any:
        # only reached for a name that is no field: a declared option, or nothing
        if not name.startswith("__"):
            extra = self.__dict__.get("extra") or {}
            if name in extra:
                return extra[name]
            opt = declared_options().get(name)
            if opt is not None:
                return opt.unset
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _load(target: str) -> BackendDeclaration:
    from importlib import import_module

    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


@lru_cache(maxsize=1)
def declarations() -> tuple[BackendDeclaration, ...]:
    """Every declared backend (entry points, else the built-in ones), in ``order``."""
    found: dict[str, BackendDeclaration] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        decl = ep.load()
        if not isinstance(decl, BackendDeclaration):
            raise TypeError(f"entry point {ep.name!r} of {ENTRY_POINT_GROUP} is no BackendDeclaration")
        found[ep.name] = decl
    for name, target in BUILTIN.items():
        if name not in found:
            found[name] = _load(target)
    return tuple(sorted(found.values(), key=lambda d: (d.order, d.name)))


def backend_names(kind: str | None = None) -> tuple[str, ...]:
    """Names ``--backend`` takes (of one URL kind, or all), primary ones first."""
    return tuple(dict.fromkeys(d.name for d in declarations() if kind is None or kind in d.url_kinds))


def backend_options() -> dict[str, list[BackendOption]]:
    """Every declared flag -> the declarations of it (one per backend that reads it). A flag declared
    by several backends must be ``shared`` in each and agree on everything but its help; a ``dest``
    or config key is one flag's only; no ``dest`` is a ``ConnectOptions`` field (TypeError)."""
    out: dict[str, list[BackendOption]] = {}
    owners: dict[str, list[str]] = {}
    for decl in declarations():
        for opt in decl.options:
            out.setdefault(opt.flag, []).append(opt)
            owners.setdefault(opt.flag, []).append(decl.name)
    generic = {f.name for f in fields(ConnectOptions)}
    flag_of: dict[str, str] = {}
    for flag, opts in out.items():
        who = ", ".join(owners[flag])
        if len(opts) > 1 and not all(o.shared for o in opts):
            raise TypeError(f"option {flag} is declared by {who}: declare it shared=True in each to share it")
        if len({replace(o, help="") for o in opts}) > 1:
            raise TypeError(f"option {flag} is declared differently by {who} (only the help may differ)")
        if opts[0].dest in generic:
            raise TypeError(f"option {flag} of {who}: dest {opts[0].dest!r} is a ConnectOptions field")
        for name in (opts[0].dest, opts[0].config_key):
            if flag_of.setdefault(name, flag) != flag:
                raise TypeError(f"options {flag_of[name]} and {flag} both use the name {name!r}")
    return out


@lru_cache(maxsize=1)
def declared_options() -> dict[str, BackendOption]:
    """Every declared option, one per flag, by its ``dest`` (the ``ConnectOptions`` attribute and,
    as ``config_key``, the config key; in the config they live in ``Settings.backend_options``)."""
    return {opts[0].dest: opts[0] for opts in backend_options().values()}


async def open_readers(raw_url: str, options: ConnectOptions, detect: bool = True) -> list[Reader]:
    """Connect (within ``connect_timeout``) and return one reader per queue system to look at.
    ``detect=False``: only the primary system's reader (or the forced one); ``detect_readers``
    adds the others later (a console shows the primary system's queues without waiting for it)."""
    url = parse(raw_url)
    if options.backend and options.backend not in backend_names():
        raise BadUrl(f"unknown backend {options.backend!r} (known: {', '.join(backend_names())})")
    here = [d for d in declarations() if url.kind in d.url_kinds]
    if options.backend:
        forced = [d for d in here if d.name == options.backend]
        if not forced:
            raise BadUrl(f"backend {options.backend!r} does not live in {URL_KINDS.get(url.kind, url.kind)} "
                         f"({url.redacted})")
        return [await forced[0].open(url, options)]
    readers: list[Reader] = []
    try:
        for decl in (d for d in here if d.detect is None):
            readers.append(await decl.open(url, options))
    except BaseException:
        for reader in readers:
            await reader.close()
        raise
    if detect:
        try:
            readers += await detect_readers(readers, raw_url, options)
        except BaseException:
            for reader in readers:
                await reader.close()
            raise
    return readers


async def detect_readers(primary: list[Reader], raw_url: str, options: ConnectOptions) -> list[Reader]:
    """The readers of every other system whose ``detect`` finds it next to the primary readers
    ``primary`` (which stay open whatever happens here); none when a backend is forced."""
    if options.backend or not primary:
        return []
    url = parse(raw_url)
    readers: list[Reader] = []
    try:
        for decl in (d for d in declarations() if url.kind in d.url_kinds and d.detect is not None):
            if await decl.detect(primary[0], url, options):
                readers.append(await decl.open(url, options))
    except BaseException:
        for reader in readers:
            await reader.close()
        raise
    return readers
