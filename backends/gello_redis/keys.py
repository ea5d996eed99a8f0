"""Gello's Redis keys: ``<prefix>:queue:<q>:pending|processing|scheduled|dead`` and
``<prefix>:idempotency:<key>`` (the prefix is ``gello`` unless configured)."""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "gello"
#: suffix -> (Redis type, canonical state)
SUFFIXES: dict[str, tuple[str, str]] = {
    "pending": ("list", "waiting"),
    "processing": ("list", "active"),
    "scheduled": ("zset", "delayed"),
    "dead": ("zset", "failed"),
}
NATIVE_OF_STATE = {canonical: suffix for suffix, (_, canonical) in SUFFIXES.items()}


@dataclass(frozen=True)
class GelloKeys:
    prefix: str
    queue: str

    def __call__(self, suffix: str) -> str:
        return f"{self.prefix}:queue:{self.queue}:{suffix}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idempotency:{key}"


def split_queue_key(key: str, prefix: str) -> tuple[str, str] | None:
    """``<prefix>:queue:<q>:<suffix>`` -> (queue, suffix), or None when it is no Gello queue key."""
    head = f"{prefix}:queue:"
    if not key.startswith(head):
        return None
    rest = key[len(head):]
    name, sep, suffix = rest.rpartition(":")
    if not sep or not name or suffix not in SUFFIXES:
        return None
    return name, suffix
