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
