"""Servers of the topology tests, started on loopback by the tests and stopped afterwards:
PgBouncer (transaction pooling), a private PostgreSQL primary + streaming replica, certificates
for TLS. Ports 15481-15489 (PostgreSQL, PgBouncer) and 6481-6499 (Redis).

With ``CI`` set a missing binary fails the test (``need``); otherwise the test is skipped.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.private_redis import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORTS = range(15481, 15490)
REDIS_PORTS = range(6481, 6500)


def need(binary: str) -> str:
    path = shutil.which(binary) or (str(PG_BIN / binary) if (PG_BIN / binary).exists() else None)
    if path is None:
        message = f"{binary} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def cleans_up(init):
    """A server's __init__ that fails half-way stops what it already started (close())."""
    import functools

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except BaseException:
            self.close()
            raise
    return wrapper


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _unprivileged() -> tuple[list[str], int | None, int | None]:
    """PgBouncer and PostgreSQL refuse to run as root: as root, run them as ``postgres`` (or nobody)."""
    if os.geteuid() != 0:
        return [], None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
            return [name], entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user to run the server as")


def _own(path: str, uid: int | None, gid: int | None) -> None:
    if uid is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for f in files:
            os.chown(os.path.join(root, f), uid, gid)


class PgBouncer:
    """PgBouncer in transaction pooling mode in front of the database of ``target_url``;
    ``ignore``: startup parameters it accepts and drops (``ignore_startup_parameters``). Two server
    connections used round robin: consecutive transactions of one client land on different server
    sessions, so a named prepared statement cached by the client is missing on the next one."""

    @cleans_up
    def __init__(self, target_url: str, ignore: str = "") -> None:
        binary = need("pgbouncer")
        parts = urlsplit(target_url)
        self.dbname = parts.path.lstrip("/") or "postgres"
        user = parts.username or "postgres"
        host = parts.hostname or "/tmp"
        self.dir = tempfile.mkdtemp(prefix="qc-pgbouncer-")
        os.chmod(self.dir, 0o755)
        self.port = free_port(PG_PORTS)
        conf = Path(self.dir) / "pgbouncer.ini"
        (Path(self.dir) / "users.txt").write_text(f'"{user}" ""\n')
        conf.write_text(
            "[databases]\n"
            f"{self.dbname} = host={host} port={parts.port or 5432} dbname={self.dbname} user={user}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/users.txt\n"
            "pool_mode = transaction\ndefault_pool_size = 2\nmin_pool_size = 2\nserver_round_robin = 1\nmax_client_conn = 50\n"
            + (f"ignore_startup_parameters = {ignore}\n" if ignore else "")
            + f"logfile = {self.dir}/pgbouncer.log\n")
        user_args, uid, gid = _unprivileged()
        _own(self.dir, uid, gid)
        self.proc = subprocess.Popen([binary, *(["-u", *user_args] if user_args else []), str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "pgbouncer")
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/{self.dbname}"

    def close(self) -> None:
        stop(getattr(self, "proc", None))
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)


def _run_as(args: list[str], uid: int | None, gid: int | None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, user=uid, group=gid, timeout=60, **kw)


class PrivatePostgres:
    """A PostgreSQL 15 of the test's own (initdb in a temporary directory, trust auth on loopback);
    ``standby_of``: a streaming hot standby of that server, made by pg_basebackup -R.
    ``conf``: extra postgresql.conf lines (e.g. ssl)."""

    @cleans_up
    def __init__(self, standby_of: "PrivatePostgres | None" = None, conf: str = "") -> None:
        need("initdb")
        self.base = tempfile.mkdtemp(prefix="qc-private-pg-")
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        _, self.uid, self.gid = _unprivileged()
        _own(self.base, self.uid, self.gid)
        self.port = free_port(PG_PORTS)
        if standby_of is None:
            _run_as([str(PG_BIN / "initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                    self.uid, self.gid)
        else:
            _run_as([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres",
                     "-D", self.data, "-R", "-X", "stream"], self.uid, self.gid)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.base}'\n"
                    "fsync = off\nhot_standby = on\nwal_level = replica\nmax_wal_senders = 5\n" + conf + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.proc = subprocess.Popen([str(PG_BIN / "postgres"), "-D", self.data], user=self.uid, group=self.gid,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.base, "log"), "wb"))
        wait_port(self.port, self.proc, "postgres")

    def log(self) -> str:
        return Path(self.base, "log").read_text(errors="replace")

    def close(self) -> None:
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "base"):
            shutil.rmtree(self.base, ignore_errors=True)


class Certificates:
    """A CA, a server certificate (CN localhost, SAN localhost and 127.0.0.1) and a client
    certificate signed by it, and a second CA that signed nothing of these (made with openssl)."""

    @cleans_up
    def __init__(self) -> None:
        openssl = need("openssl")
        self.dir = tempfile.mkdtemp(prefix="qc-certs-")
        os.chmod(self.dir, 0o755)
        d = Path(self.dir)

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True, cwd=self.dir, timeout=60)

        for ca in ("ca", "other-ca"):
            run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-days", "2", "-subj", f"/CN=queue-console test {ca}")
        (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        for name, cn in (("server", "localhost"), ("client", "queue-console")):
            run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", *(["-extfile", "san.ext"] if name == "server" else []))
        for f in d.iterdir():
            os.chmod(f, 0o644)
        self.ca = str(d / "ca.pem")
        self.other_ca = str(d / "other-ca.pem")
        self.server_cert, self.server_key = str(d / "server.pem"), str(d / "server.key")
        self.client_cert, self.client_key = str(d / "client.pem"), str(d / "client.key")

    def key_for(self, uid: int | None, gid: int | None) -> str:
        """The server key, readable only by its owner (PostgreSQL insists)."""
        path = os.path.join(self.dir, "server-owned.key")
        shutil.copy(self.server_key, path)
        if uid is not None:
            os.chown(path, uid, gid)
        os.chmod(path, 0o600)
        return path

    def close(self) -> None:
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)


class TlsRedis:
    """A redis-server with only a TLS port, which also asks clients for a certificate."""

    @cleans_up
    def __init__(self, certs: Certificates) -> None:
        binary = "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else need("redis-server")
        self.port = free_port(REDIS_PORTS)
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--tls-cert-file", certs.server_cert, "--tls-key-file", certs.server_key,
             "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "redis-server (TLS)")

    def close(self) -> None:
        stop(getattr(self, "proc", None))


def ports_from_env(default: range, variable: str = "QC_TEST_CLUSTER_PORTS") -> range:
    """``QC_TEST_CLUSTER_PORTS=7100-7109`` (first-last): the ports a test may use instead of
    ``default`` (parallel sessions on one machine keep to their own ranges)."""
    raw = os.environ.get(variable)
    if not raw:
        return default
    first, _, last = raw.partition("-")
    return range(int(first), int(last or first) + 1)


def _redis_binary() -> str:
    return "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else need("redis-server")


class SentinelSet:
    """A master, a replica and three sentinels (redis-server --sentinel) on loopback, all of the
    test's own; ``failover()`` makes the sentinels promote the replica (SENTINEL FAILOVER)."""

    MASTER = "qcmaster"

    @cleans_up
    def __init__(self) -> None:
        import redis

        binary = _redis_binary()
        # QC_TEST_SENTINEL_PORTS=7130-7159: servers from the first port, sentinels from first + 20
        ports = ports_from_env(range(6481, 6500), "QC_TEST_SENTINEL_PORTS")
        sentinel_ports = range(ports.start + 20, ports.stop) if ports.start != 6481 else range(26481, 26490)
        self.dir = tempfile.mkdtemp(prefix="qc-sentinel-")
        self.procs: dict[int, subprocess.Popen] = {}
        self.ports = []
        for i in range(2):
            port = free_port(range(ports.start + i * 5, ports.start + 19))
            extra = ["--replicaof", "127.0.0.1", str(self.ports[0])] if i else []
            self.procs[port] = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.dir, "--dbfilename", f"dump-{port}.rdb", "--loglevel", "warning", *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port, self.procs[port], f"redis-server {port}")
            self.ports.append(port)
        self.sentinel_ports = []
        for i in range(3):
            port = free_port(range(sentinel_ports.start + i, sentinel_ports.start + 9))
            conf = Path(self.dir) / f"sentinel-{port}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.ports[0]} 2\n"
                            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                            f"sentinel failover-timeout {self.MASTER} 4000\n")
            self.procs[port] = subprocess.Popen([binary, str(conf), "--sentinel", "--loglevel", "warning"],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port, self.procs[port], f"sentinel {port}")
            self.sentinel_ports.append(port)
        self.url = (f"redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
                    + f"/{self.MASTER}/0")
        # every sentinel knows the replica and the other sentinels before a failover can be asked for
        deadline = time.monotonic() + 30
        while True:
            ready = True
            for port in self.sentinel_ports:
                s = redis.Redis(port=port, socket_timeout=2)
                try:
                    replicas = s.execute_command("SENTINEL", "REPLICAS", self.MASTER)
                    others = s.execute_command("SENTINEL", "SENTINELS", self.MASTER)
                    ready = ready and len(replicas) == 1 and len(others) == 2
                finally:
                    s.close()
            link = self.client(self.ports[1]).info("replication").get("master_link_status")
            if ready and link == "up":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("sentinels did not see the replica and each other")
            time.sleep(0.2)

    def client(self, port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def master_port(self) -> int:
        s = self.client(self.sentinel_ports[0])
        try:
            _host, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
            return int(port)
        finally:
            s.close()

    def master(self):
        return self.client(self.master_port())

    def failover(self) -> int:
        """Promote the replica; returns the new master's port once every sentinel names it and it
        answers as master."""
        old = self.master_port()
        with self.client(old) as c:
            c.execute_command("WAIT", 1, 5000)  # what the old master has, the replica has
        s = self.client(self.sentinel_ports[0])
        try:
            s.execute_command("SENTINEL", "FAILOVER", self.MASTER)
        finally:
            s.close()
        new = next(p for p in self.ports if p != old)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            names = set()
            for port in self.sentinel_ports:
                with self.client(port) as c:
                    names.add(int(c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)[1]))
            with self.client(new) as c:
                role = c.execute_command("ROLE")[0]
            if names == {new} and role == b"master":
                return new
            time.sleep(0.1)
        raise RuntimeError("the failover did not complete")

    def stop_server(self, port: int) -> None:
        stop(self.procs.pop(port))

    def close(self) -> None:
        for proc in getattr(self, "procs", {}).values():
            stop(proc)
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three masters with cluster-enabled, joined by ``redis-cli --cluster create`` (no replicas).
    Every write is in the append-only file before it is acknowledged (``appendfsync always``), so
    a node killed with SIGKILL and started again (``restart``) comes back with everything it
    acknowledged, serving the same slots (its nodes.conf). The cluster bus uses port + 10000."""

    @cleans_up
    def __init__(self, ports: range | None = None, certs: "Certificates | None" = None,
                 password: str | None = None) -> None:
        """``certs``: TLS only (clients, cluster bus and redis-cli), client certificates required;
        ``password``: ``requirepass`` (and ``masterauth``) on every node."""
        self.binary = _redis_binary()
        self.certs, self.password = certs, password
        # Debian's (built with TLS) before a redis-cli that a Python package may have put on PATH
        cli = "/usr/bin/redis-cli" if os.path.exists("/usr/bin/redis-cli") else need("redis-cli")
        ports = ports or ports_from_env(range(6490, 6500))
        self.dir = tempfile.mkdtemp(prefix="qc-cluster-")
        self.procs: dict[int, subprocess.Popen] = {}
        for i in range(3):
            port = free_port(range(ports.start + i, ports.stop))
            self._start(port)
        self.ports = list(self.procs)
        tls = ["--tls", "--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key] if certs else []
        auth = ["-a", password, "--no-auth-warning"] if password else []
        subprocess.run([cli, *tls, *auth, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        self.wait_ok()

    def _server_args(self, port: int) -> list[str]:
        args = ["--port", str(port)]
        if self.certs:
            c = self.certs
            args = ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes", "--tls-replication", "yes",
                    "--tls-cert-file", c.server_cert, "--tls-key-file", c.server_key, "--tls-ca-cert-file", c.ca,
                    "--tls-client-cert-file", c.client_cert, "--tls-client-key-file", c.client_key]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return args

    def _connection(self) -> dict:
        """redis-py options of a client of this cluster."""
        kw: dict = {"socket_timeout": 5, "password": self.password}
        if self.certs:
            kw.update(ssl=True, ssl_ca_certs=self.certs.ca, ssl_certfile=self.certs.client_cert,
                      ssl_keyfile=self.certs.client_key)
        return kw

    def _start(self, port: int) -> None:
        self.procs[port] = subprocess.Popen(
            [self.binary, *self._server_args(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--appendfilename", f"appendonly-{port}.aof",
             "--appenddirname", f"aof-{port}", "--cluster-enabled", "yes",
             "--cluster-config-file", f"{self.dir}/nodes-{port}.conf", "--cluster-node-timeout", "5000",
             "--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, self.procs[port], f"cluster node {port}")

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every node says cluster_state:ok."""
        import redis

        deadline = time.monotonic() + timeout
        while True:
            states = []
            for port in self.ports:
                try:
                    with redis.Redis(port=port, **self._connection()) as c:
                        states.append(c.info("cluster").get("cluster_enabled") == 1
                                      and c.cluster("info").get("cluster_state") == "ok")
                except redis.RedisError:
                    states.append(False)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.2)

    def client(self):
        """redis-py's own cluster client (for the tests' checks)."""
        import redis

        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], **self._connection())

    def port_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot."""
        with self.client() as c:
            return c.get_node_from_key(key).port

    def move_slot(self, key: str, to_port: int) -> None:
        """Move ``key``'s hash slot, with its keys, to the master on ``to_port`` as a resharding
        does (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE on every master)."""
        import redis
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        with redis.Redis(port=self.port_of(key), **self._connection()) as src, \
                redis.Redis(port=to_port, **self._connection()) as dst:
            src_id, dst_id = (c.execute_command("CLUSTER", "MYID") for c in (src, dst))
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
                src.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
        for port in self.ports:
            with redis.Redis(port=port, **self._connection()) as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again (same port, data directory and nodes.conf) and wait for the
        cluster to be whole."""
        self._start(port)
        self.wait_ok()

    def close(self) -> None:
        for proc in getattr(self, "procs", {}).values():
            stop(proc)
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)
