"""How a queue system declares itself to queue-console (see docs/development.md, "Adding a backend").

A backend ships one ``BackendDeclaration`` per store kind it reads and registers it in the
``queue_console.backends`` entry-point group (pyproject.toml); ``backends.registry`` and the CLI
loop over these declarations and know nothing else about any backend. Importing a declaration must
stay cheap: ``open`` and ``detect`` import the backend's reader lazily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:  # pragma: no cover
    from backends.contract import Reader
    from backends.registry import ConnectOptions
    from backends.urls import ConnectionUrl

#: the URL kinds ``backends.urls.parse`` gives, and how messages name them
URL_KINDS = {"redis": "Redis", "postgres": "PostgreSQL"}


#: the types a declared option's value may have (``repeatable``: a list of them)
OPTION_TYPES = (str, int, float, bool)
_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_KINDS = {str: "a list of strings", int: "a list of integers", float: "a list of numbers"}


@dataclass(frozen=True)
class BackendOption:
    """One command-line flag and config key of a backend, declared once: the built-in backends
    declare theirs exactly as a backend from another package does. ``dest`` is the attribute of
    ``ConnectOptions`` (and of the argparse namespace) it fills; ``config_key`` the key in the
    config file's top level and contexts. ``type`` is ``str``, ``int``, ``float`` or ``bool``
    (``repeatable``: a list of them; a bool is never repeatable); the flag converts to it and the
    config checks it, naming the file, key and value. ``shared``: other backends declare the same
    flag (BullMQ and Gello ``--prefix``; pg-boss, Gello and BullMQ on PostgreSQL ``--schema``): the
    CLI adds it once with the helps joined, one value reaches every backend, and each reads it as
    its help says. A flag declared twice must be ``shared`` in every declaration of it and agree on
    everything but ``help`` (``backends.registry.backend_options`` checks)."""

    flag: str
    dest: str
    help: str
    config_key: str
    repeatable: bool = False
    metavar: str | None = None
    type: type = str
    shared: bool = False

    def __post_init__(self) -> None:
        if self.type not in OPTION_TYPES:
            raise TypeError(f"option {self.flag}: type must be one of str, int, float, bool, not {self.type!r}")
        if self.type is bool and self.repeatable:
            raise TypeError(f"option {self.flag}: a bool option cannot be repeatable")

    @property
    def unset(self) -> Any:
        """What the option reads as when nobody gave it."""
        return [] if self.repeatable else None

    @property
    def kind(self) -> str:
        """What a value must be, as error messages say it."""
        return _KINDS[self.type] if self.repeatable else _KIND[self.type]

    def check(self, value: Any) -> Any:
        """A config value (TOML) as the option takes it, or ValueError saying what it must be. A
        repeatable option also takes one value alone; a float option takes an integer."""
        if self.repeatable and not isinstance(value, list):
            value = [value]
        ok = all(map(self._one, value)) if self.repeatable else self._one(value)
        if not ok:
            raise ValueError(f"expected {self.kind}")
        if self.type is float:
            return [float(v) for v in value] if self.repeatable else float(value)
        return value

    def _one(self, value: Any) -> bool:
        if self.type is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, self.type)


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
