"""Redis Cluster: a ``redis://`` URL of any node of a three-master cluster that this module starts on
loopback (redis-server --cluster-enabled yes, joined by ``redis-cli --cluster create``; ports from
``QC_TEST_CLUSTER_PORTS``, default 6490-6499, and the bus on port + 10000). BullMQ for Node (6.7.0,
through ioredis's Cluster client: tests/interop/cluster_driver.js) produces and works the queues.

- counts read by the console equal BullMQ's getJobCounts, for ``{bull}`` queues (one slot) and
  ``bull:{name}`` queues (one slot each, several on one master: a count script spanning them would
  be refused with CROSSSLOT);
- a console retry, single and bulk, is processed to completion by a real BullMQ worker;
- a node killed (SIGKILL) and started again during a bulk retry loses nothing: the report says
  "N of M, stopped by ...", a second run finishes the rest, every job is in exactly one state;
- ``status --json`` (and the TUI) list every queue of every master; queue keys without a hash tag
  are named in a note, not listed; Gello refuses a cluster with one line.

With ``CI`` set a missing redis-server / Node fails instead of skipping.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter

import pytest

from backends.registry import ConnectOptions, open_readers
from console import actions as actions_mod
from console.actions import Actions, Selection
from console.cli import main
from tests.interop import node_env
from tests.topology_servers import RedisCluster

DRIVER = node_env.INTEROP_DIR / "cluster_driver.js"
#: every state key of a BullMQ queue a job id can be in (getJobCounts's types)
STATE_KEYS = {"wait": "list", "active": "list", "paused": "list", "prioritized": "zset", "delayed": "zset",
              "completed": "zset", "failed": "zset", "waiting-children": "zset"}


@pytest.fixture(scope="module")
def cluster():
    c = RedisCluster()
    yield c
    c.close()


@pytest.fixture(scope="module")
def node():
    return node_env.require_node()


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.delenv("QUEUE_CONSOLE_URL", raising=False)


def drive(env, cluster: RedisCluster, prefix: str, *args: str) -> dict:
    """cluster_driver.js against the cluster's first node; its JSON line."""
    cmd = [env.node, str(DRIVER), f"127.0.0.1:{cluster.ports[0]}", prefix, *args]
    try:
        done = subprocess.run(cmd, cwd=node_env.INTEROP_DIR, capture_output=True, text=True, timeout=50)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"cluster_driver {args} took longer than 50 s: {(exc.stderr or b'')[-3000:]!r}")
    assert done.returncode == 0, f"cluster_driver {args} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def url_of(cluster: RedisCluster, i: int = 1) -> str:
    return f"redis://127.0.0.1:{cluster.ports[i]}/0"


def names_on_every_master(cluster: RedisCluster, prefix: str, per_master: int) -> list[str]:
    """``{qN}`` queue names such that every master serves ``per_master`` of them."""
    by_port: dict[int, list[str]] = {p: [] for p in cluster.ports}
    n = 0
    while any(len(v) < per_master for v in by_port.values()):
        name = f"{{q{n}}}"
        port = cluster.port_of(f"{prefix}:{name}:meta")
        if len(by_port[port]) < per_master:
            by_port[port].append(name)
        n += 1
    return sorted(name for names in by_port.values() for name in names)


def job_states(cluster: RedisCluster, prefix: str, queue: str) -> dict[str, list[str]]:
    """Which state keys hold each job id of the queue (read with redis-py's own cluster client)."""
    base = f"{prefix}:{queue}"
    out: dict[str, list[str]] = {}
    with cluster.client() as c:
        for suffix, kind in STATE_KEYS.items():
            key = f"{base}:{suffix}"
            members = c.lrange(key, 0, -1) if kind == "list" else c.zrange(key, 0, -1)
            for m in members:
                out.setdefault(m.decode(), []).append(suffix)
    return out


async def reader_of(cluster: RedisCluster, prefixes: list[str]):
    [reader] = await open_readers(url_of(cluster), ConnectOptions(prefixes=prefixes, backend="bullmq"))
    return reader


@pytest.mark.timeout(60)
async def test_counts_equal_get_job_counts_on_every_master(cluster, node):
    tagged = names_on_every_master(cluster, "bull", 2)  # two one-slot queues per master
    made = await asyncio.to_thread(drive, node, cluster, "{bull}", "produce", "emails:30:8,orders:12:4")
    made_b = await asyncio.to_thread(drive, node, cluster, "bull", "produce",
                                     ",".join(f"{n}:3:{i % 3}" for i, n in enumerate(tagged)))
    assert made["version"] == node_env.PINNED["bullmq"]
    reader = await reader_of(cluster, ["{bull}", "bull"])
    try:
        queues = (await reader.discover()).queues
        assert {(q.namespace, q.name) for q in queues} >= {("{bull}", "emails"), ("{bull}", "orders"),
                                                           *(("bull", n) for n in tagged)}
        mine = [q for q in queues if (q.namespace, q.name) in
                {("{bull}", "emails"), ("{bull}", "orders"), *(("bull", n) for n in tagged)}]
        statuses = await reader.statuses(mine)
        expected = {**{("{bull}", k): v for k, v in made["counts"].items()},
                    **{("bull", k): v for k, v in made_b["counts"].items()}}
        for status in statuses:
            want = expected[(status.queue.namespace, status.queue.name)]
            got = {k: v for k, v in status.native.items() if k in want}
            assert got == want, (status.queue.qualified, got, want)
        emails = next(q for q in mine if q.name == "emails")
        assert next(s for s in statuses if s.queue == emails).native["failed"] == 8
        # a page and a job detail are read on the queue's own master
        page = await reader.page(emails, "failed", limit=50)
        assert sorted(j.id for j in page.jobs) == sorted(made["failed"]["emails"])
        detail = await reader.job(emails, made["failed"]["emails"][0])
        assert detail is not None and "boom" in detail.summary.failed_reason.text
        # the first frame's history is read on each queue's own master: one record per queue
        history = await reader.history(mine)
        assert sorted(h.queue.qualified for h in history) == sorted(q.qualified for q in mine)
    finally:
        await reader.close()


@pytest.mark.timeout(60)
async def test_console_retry_single_and_bulk_is_worked_by_bullmq(cluster, node):
    made = await asyncio.to_thread(drive, node, cluster, "{bull}", "produce", "retries:10:10")
    ids = made["failed"]["retries"]
    reader = await reader_of(cluster, ["{bull}"])
    try:
        [queue] = [q for q in (await reader.lookup(["retries"]))]
        acts = Actions(lambda q: reader, operator="test@host")
        one = await acts.execute(await acts.preview("retry", Selection(queue, job_ids=[ids[0]])))
        assert one.complete and one.done == 1, one.summary()
        rest = await acts.execute(await acts.preview("retry", Selection(queue, state="failed")))
        assert rest.complete and rest.done == 9, rest.summary()
        audit = await reader.console_store().audit_read(2)
        assert [r["count"] for r in audit] == [9, 1]
    finally:
        await reader.close()
    worked = await asyncio.to_thread(drive, node, cluster, "{bull}", "work", "retries", "10")
    assert Counter(worked["handled"]) == Counter(ids), "a job processed twice, or a wrong one"
    assert worked["counts"]["retries"]["completed"] == 10 and worked["counts"]["retries"]["failed"] == 0
    # the console's own keys share one hash tag (one slot)
    with cluster.client() as c:
        assert c.xlen("{queue-console}:audit") >= 2


@pytest.mark.timeout(60)
async def test_a_node_killed_and_restarted_during_a_bulk_retry_loses_nothing(cluster, node, monkeypatch):
    total = 240
    made = await asyncio.to_thread(drive, node, cluster, "{bull}", "produce", f"restarts:{total}:{total}")
    ids = set(made["failed"]["restarts"])
    port = cluster.port_of("{bull}:restarts:meta")
    reader = await reader_of(cluster, ["{bull}"])
    try:
        [queue] = await reader.lookup(["restarts"])
        monkeypatch.setattr(actions_mod, "BULK_BATCH", 40)
        acts = Actions(lambda q: reader, operator="test@host")
        killed = []

        def progress(done: int, to_do: int) -> None:
            if not killed:  # after the first batch: the queue's master dies
                cluster.kill(port)
                killed.append(done)

        report = await acts.execute(await acts.preview("retry", Selection(queue, state="failed")), progress)
        assert killed and not report.complete and report.error, report.summary()
        assert report.status().startswith(f"{report.done} of {total}, stopped by"), report.status()
        assert 0 < report.done < total
        await asyncio.to_thread(cluster.restart, port)
        states = job_states(cluster, "{bull}", "restarts")
        assert set(states) == ids and all(len(s) == 1 for s in states.values()), "a job lost or in two states"
        assert Counter(s[0] for s in states.values()) == {"wait": report.done, "failed": total - report.done}
        again = await acts.execute(await acts.preview("retry", Selection(queue, state="failed")))
        assert again.complete and again.done == total - report.done, again.summary()
    finally:
        await reader.close()
    states = job_states(cluster, "{bull}", "restarts")
    assert set(states) == ids and {tuple(s) for s in states.values()} == {("wait",)}
    counts = await asyncio.to_thread(drive, node, cluster, "{bull}", "counts", "restarts")
    assert counts["counts"]["restarts"]["waiting"] == total and counts["counts"]["restarts"]["failed"] == 0


@pytest.mark.timeout(60)
def test_status_json_lists_every_queue_of_every_master(cluster, node, cli_env, capsys):
    names = names_on_every_master(cluster, "stat", 1)
    drive(node, cluster, "stat", "produce", ",".join(f"{n}:2:1" for n in names))
    with cluster.client() as c:  # queue-looking keys without a hash tag: named in a note, not listed
        c.set("plain:legacy:id", "3")
    for i in range(3):  # a URL of any node
        with pytest.raises(SystemExit) as info:
            main(["status", "--json", "--prefix", "stat", "--prefix", "plain", "--url", url_of(cluster, i)])
        out = capsys.readouterr().out
        assert (info.value.code or 0) == 0
        doc = json.loads(out)
        assert sorted(r["queue"] for r in doc["queues"]) == names
        assert {r["counts"]["failed"] for r in doc["queues"]} == {1}
        assert any("plain:legacy" in n and "hash tag" in n for n in doc["notes"]), doc["notes"]
        assert {cluster.port_of(f"stat:{n}:meta") for n in names} == set(cluster.ports)


@pytest.mark.timeout(60)
async def test_the_tui_shows_every_master(cluster, node):
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings
    from tests.test_tui import wait_for

    names = names_on_every_master(cluster, "tui", 1)
    await asyncio.to_thread(drive, node, cluster, "tui", "produce", ",".join(f"{n}:1:1" for n in names))
    app = QueueConsoleApp(Settings(urls=[url_of(cluster, 2)], prefixes=["tui"], refresh=0.3))
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == len(names), what="a row per queue", timeout=20)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert sorted(r[0] for r in rows) == names and {r[7] for r in rows} == {"1"}


@pytest.mark.timeout(60)
def test_a_tls_cluster_with_a_password_from_any_node(cli_env, capsys):
    """rediss:// with CA, client certificate and a password: every master's client gets them."""
    from urllib.parse import urlencode

    from tests.fixed_data import write_fixed_queue
    from tests.topology_servers import Certificates, ports_from_env

    certs = Certificates()
    ports = ports_from_env(range(6490, 6500))
    tls = None
    try:
        tls = RedisCluster(ports=range(ports.start + 10, ports.stop), certs=certs, password="cl-secret-9")
        names = names_on_every_master(tls, "tls", 1)
        with tls.client() as c:
            for name in names:
                write_fixed_queue(c, "tls", name, failed=2, completed=1, waiting=1, delayed=0)
        query = urlencode({"ssl_ca_certs": certs.ca, "ssl_certfile": certs.client_cert,
                           "ssl_keyfile": certs.client_key})
        with pytest.raises(SystemExit) as info:
            main(["status", "--json", "--prefix", "tls", "--url",
                  f"rediss://:cl-secret-9@127.0.0.1:{tls.ports[2]}/0?{query}"])
        captured = capsys.readouterr()
        assert (info.value.code or 0) == 0, captured.err
        assert "cl-secret-9" not in captured.out + captured.err
        doc = json.loads(captured.out)
        assert sorted(r["queue"] for r in doc["queues"]) == names
        assert {r["counts"]["failed"] for r in doc["queues"]} == {2}
    finally:
        if tls is not None:
            tls.close()
        certs.close()


@pytest.mark.timeout(60)
def test_gello_refuses_a_cluster_with_one_line(cluster, cli_env, capsys):
    with pytest.raises(SystemExit) as info:
        main(["status", "--backend", "gello", "--url", url_of(cluster, 0)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert info.value.code == 3 and captured.out == "" and len(lines) == 1, captured
    assert f"127.0.0.1:{cluster.ports[0]} is a Redis Cluster node: Gello cannot run on a cluster" in lines[0]


@pytest.mark.timeout(60)
async def test_a_moved_slot_is_followed(cluster, node):
    """A resharding moves a queue's slot to another master: a read meets MOVED and is sent again on
    the slot map read again; a mutation that meets MOVED stops with one line, and the next one goes
    to the new master."""
    from backends.errors import BackendError

    made = await asyncio.to_thread(drive, node, cluster, "{moving}", "produce", "jobs:6:4")
    reader = await reader_of(cluster, ["{moving}"])
    try:
        [queue] = await reader.lookup(["jobs"])
        first = cluster.port_of("{moving}:jobs:meta")
        second = next(p for p in cluster.ports if p != first)
        await asyncio.to_thread(cluster.move_slot, "{moving}:jobs:meta", second)
        [status] = await reader.statuses([queue])  # MOVED, then read on the new master
        assert {k: status.native[k] for k in made["counts"]["jobs"]} == made["counts"]["jobs"]
        await asyncio.to_thread(cluster.move_slot, "{moving}:jobs:meta", first)
        ids = made["failed"]["jobs"]
        with pytest.raises(BackendError) as err:
            await reader.retry_jobs(queue, ids[:1])
        assert f"the slot of bullmq:jobs moved to 127.0.0.1:{first}; the slot map is read again" in str(err.value)
        outcomes = await reader.retry_jobs(queue, ids[:1])
        assert [o.ok for o in outcomes] == [True]
        [status] = await reader.statuses([queue])
        assert status.native["failed"] == 3 and status.native["waiting"] == 1
    finally:
        await reader.close()


def test_count_calls_never_span_hash_slots():
    from backends.bullmq.keys import QueueKeys
    from backends.bullmq.read_scripts import QUEUES_PER_CALL, calls_by_slot
    from backends.redis_cluster import slot

    queues = [QueueKeys("{bull}", f"q{i}") for i in range(40)] + [QueueKeys("bull", f"{{t{i}}}") for i in range(5)]
    calls = calls_by_slot(queues)
    assert sorted(i for call in calls for i in call) == list(range(45))
    for call in calls:
        assert len(call) <= QUEUES_PER_CALL
        assert len({slot(queues[i]("meta")) for i in call} | {slot(queues[i]("wait")) for i in call}) == 1
    assert len(calls) == 3 + 5  # 40 one-slot queues in calls of 16, five queues of their own slots


@pytest.mark.timeout(60)
def test_an_acl_user_without_info_still_connects_to_a_standalone_server(capsys, cli_env):
    from tests.fixed_data import write_fixed_queue
    from tests.private_redis import PrivateRedis
    from tests.topology_servers import ports_from_env

    ports = ports_from_env(range(6490, 6500))
    server = PrivateRedis(ports=range(ports.start + 6, ports.stop))
    try:
        with server.client() as c:
            write_fixed_queue(c, "qcnoinfo", "orders", failed=2, completed=0, waiting=0, delayed=0)
            c.execute_command("ACL", "SETUSER", "noinfo", "on", ">noinfo-pw", "~*", "&*", "-@all", "+@read",
                              "+@connection", "+time", "+scan", "+type", "-info")
        with pytest.raises(SystemExit) as info:
            main(["status", "--json", "--prefix", "qcnoinfo", "--url",
                  f"redis://noinfo:noinfo-pw@127.0.0.1:{server.port}/0"])
        captured = capsys.readouterr()
        assert (info.value.code or 0) == 0, captured.err
        [rec] = json.loads(captured.out)["queues"]
        assert rec["counts"]["failed"] == 2
    finally:
        server.close()
