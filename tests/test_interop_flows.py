"""Interop: job flows made by BullMQ for Node's FlowProducer (6.7.0 and 5.81.5) and moved by its own
Worker (``tests/interop/flows.js``), read by the reader's ``flow()``.

For every parent the reader's dependency counts equal the library's ``Job.getDependenciesCount()``
(processed, unprocessed = pending, ignored, failed), the children it lists are the library's
``Job.getDependencies()`` of each kind (at most the cap: the parent of 120 children lists 50 and
counts 120), each child's state equals ``Job.getState()``, and a child's parent is its
``parentKey``, with the parent's pending count.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from backends.contract import DEPENDENCY_KINDS, FLOW_CHILDREN_CAP
from tests.interop import compare, node_env

pytestmark = pytest.mark.interop

#: BullMQ for Node's getState names -> the reader's native states
NATIVE = {"waiting": "waiting", "prioritized": "prioritized", "delayed": "delayed", "active": "active",
          "completed": "completed", "failed": "failed", "waiting-children": "waiting-children"}


#: a private redis-server without ZMSCORE (renamed away), as Redis < 6.2 has none (BullMQ runs on 5.0+)
OLD_REDIS_PORTS = range(6471, 6475)


def make_flows(redis_url: str, prefix: str, lib: str) -> dict:
    env = node_env.require_node()
    done = subprocess.run([env.node, str(node_env.INTEROP_DIR / "flows.js"), redis_url, prefix, "flows", lib],
                          cwd=node_env.INTEROP_DIR, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"flows.js failed ({done.returncode}):\n{done.stderr[-4000:]}"
    doc = json.loads(done.stdout.splitlines()[-1])
    assert doc["version"] == node_env.PINNED[doc["package"]]
    return doc


@pytest.fixture(params=("v6", "v5"))
def flows_doc(request, redis_url, prefix):
    return make_flows(redis_url, prefix, request.param)


def _key(prefix: str, queue: str, job_id: str) -> str:
    return f"{prefix}:{queue}:{job_id}"


async def test_flow_counts_children_and_parents_equal_the_library(flows_doc, redis_url, prefix):
    await check_flows(flows_doc, redis_url, prefix)


async def test_flow_states_without_zmscore(prefix):
    """A server with no ZMSCORE (Redis before 6.2): the children's states are read with one ZSCORE
    per job and set instead, with the same result."""
    from tests.private_redis import PrivateRedis

    server = PrivateRedis(ports=OLD_REDIS_PORTS, args=("--rename-command", "ZMSCORE", ""))  # started
    try:
        with server.client() as c:
            with pytest.raises(Exception, match="unknown command"):
                c.execute_command("ZMSCORE", "x", "y")
        await check_flows(make_flows(server.url, prefix, "v6"), server.url, prefix)
    finally:
        server.stop(save=False)


async def check_flows(doc: dict, redis_url: str, prefix: str) -> None:
    # the flows really hold every kind the comparison relies on (guards against a silent no-op)
    counts = {pid: p["counts"] for pid, p in doc["parents"].items()}
    assert counts["parent-mixed"] == {"processed": 3, "unprocessed": 2, "ignored": 1, "failed": 0}
    assert counts["parent-fpof"]["failed"] == 1 and counts["parent-big"]["unprocessed"] == 120

    async with compare.open_reader(redis_url, prefix) as reader:
        assert reader.capabilities.flows
        discovered = (await reader.discover()).queues
        for parent_id, lib in doc["parents"].items():
            queue = compare.queue_ref(discovered, lib["queue"])
            flow = await reader.flow(queue, parent_id)
            assert flow is not None and flow.parent is None
            assert flow.counts == lib["counts"], parent_id
            assert flow.pending == lib["counts"]["unprocessed"]
            assert len(flow.children) == min(flow.total, FLOW_CHILDREN_CAP)
            listed = {kind: {_key(c.namespace, c.queue, c.id) for c in flow.children if c.dependency == kind}
                      for kind in DEPENDENCY_KINDS}
            for kind in DEPENDENCY_KINDS:
                assert listed[kind] <= set(lib["dependencies"][kind]), (parent_id, kind)
                if flow.total <= FLOW_CHILDREN_CAP:
                    assert listed[kind] == set(lib["dependencies"][kind]), (parent_id, kind)
            # pending first
            kinds = [c.dependency for c in flow.children]
            assert kinds == sorted(kinds, key=DEPENDENCY_KINDS.index)
            by_key = {v["key"]: v for v in doc["children"].values()}
            for child in flow.children:
                assert child.native_state == NATIVE[by_key[_key(child.namespace, child.queue, child.id)]["state"]]

        for child_id, lib in doc["children"].items():
            queue = compare.queue_ref(discovered, lib["queue"])
            flow = await reader.flow(queue, child_id)
            assert flow is not None and not flow.total and flow.parent is not None
            parent = flow.parent
            assert _key(parent.namespace, parent.queue, parent.id) == lib["parentKey"]
            plib = doc["parents"][parent.id]
            assert parent.native_state == NATIVE[plib["state"]]
            assert flow.parent_pending == plib["counts"]["unprocessed"]

        assert await reader.flow(compare.queue_ref(discovered, "flows-kids"), "no-such-job") is None
