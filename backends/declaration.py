"""How a queue system declares itself to queue-console (see docs/development.md, "Adding a backend").

A backend ships one ``BackendDeclaration`` per store kind it reads and registers it in the
``queue_console.backends`` entry-point group (pyproject.toml); ``backends.registry`` and the CLI
loop over these declarations and know nothing else about any backend. Importing a declaration must
stay cheap: ``open`` and ``detect`` import the backend's reader lazily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:  # pragma: no cover
    from backends.contract import Reader
    from backends.registry import ConnectOptions
    from backends.urls import ConnectionUrl

#: the URL kinds ``backends.urls.parse`` gives, and how messages name them
URL_KINDS = {"redis": "Redis", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class BackendOption:
    """One command-line flag and config key of a backend, declared once. ``dest`` is the attribute
    of ``ConnectOptions`` (and of the argparse namespace) it fills; ``config_key`` the key in the
    config file's top level and contexts. Several backends may declare the same flag (Gello reads
    ``--prefix`` / ``--schema`` too); the CLI adds it once and joins the helps."""

    flag: str
    dest: str
    help: str
    config_key: str
    repeatable: bool = False
    metavar: str | None = None


@dataclass(frozen=True)
class BackendDeclaration:
    """A queue system in one kind of store.

    ``open`` connects (within ``options.connect_timeout``) and returns the reader. ``detect`` is
    None for the primary system of a URL kind (opened on every connection of that kind unless
    ``--backend`` picks another); otherwise it is asked, with the connection's first reader (whose
    ``client`` / ``pool`` it may borrow), whether this system is present, and the reader is opened
    next to the primary one when it is. ``order`` sorts the declarations (primary ones first).
    """

    name: str  # what --backend takes and QueueRef.backend shows (a reader may add e.g. "bull")
    url_kinds: tuple[str, ...]
    open: Callable[["ConnectionUrl", "ConnectOptions"], Awaitable["Reader"]]
    detect: Callable[["Reader", "ConnectionUrl", "ConnectOptions"], Awaitable[bool]] | None = None
    options: tuple[BackendOption, ...] = ()
    #: what to try when discovery finds nothing (shown with "no queues found")
    discovery_hint: str = ""
    order: int = 0
