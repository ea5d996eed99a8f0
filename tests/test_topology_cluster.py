"""Redis Cluster is not supported yet: a cluster node's URL is refused with one line (exit 3) instead
of showing one node's share of the queues. Three masters started on loopback (ports 6490-6499)."""
from __future__ import annotations

import pytest

from console.cli import main
from tests.topology_servers import RedisCluster


@pytest.mark.timeout(60)
def test_a_cluster_node_is_refused_with_one_line(capsys, monkeypatch, tmp_path):
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.delenv("QUEUE_CONSOLE_URL", raising=False)
    cluster = RedisCluster()
    try:
        with pytest.raises(SystemExit) as info:
            main(["status", "--url", f"redis://127.0.0.1:{cluster.ports[0]}/0"])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert info.value.code == 3 and captured.out == "" and len(lines) == 1, captured
        assert f"127.0.0.1:{cluster.ports[0]} is a Redis Cluster node" in lines[0]
        assert "not supported yet" in lines[0]
    finally:
        cluster.close()


@pytest.mark.timeout(60)
def test_an_acl_user_without_info_still_connects_to_a_standalone_server(capsys, monkeypatch, tmp_path):
    import json

    from tests.fixed_data import write_fixed_queue
    from tests.private_redis import PrivateRedis

    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.delenv("QUEUE_CONSOLE_URL", raising=False)
    server = PrivateRedis(ports=range(6496, 6500))
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
