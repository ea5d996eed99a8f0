"""Interop: BullMQ for Node 6.7.0 on PostgreSQL (``createPostgresBackend``) writes the queue,
queue-console reads and retries it, and a Node BullMQ worker processes what was retried.

``tests/interop/bullmq_pg.js`` (pg 8 + bullmq 6.7.0 from tests/interop/package-lock.json) runs in a
schema of the test's own. Counts must equal the library's ``getJobCounts``. The SQL command files
the console runs (loaded from BullMQ for Python 3.4.4) must be byte-for-byte those BullMQ for Node
6.7.0 inlines. Without Node the tests skip loudly; with ``CI`` set they fail.
"""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from backends.bullmq_postgres import layout
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Selection
from tests import pgboss_helpers as h
from tests.interop import node_env

pytestmark = pytest.mark.interop

PINNED = {"bullmq": "6.7.0", "pg": "8.23.1"}
SCRIPT = node_env.INTEROP_DIR / "bullmq_pg.js"
#: every command file the backend runs
USED = ("get_counts", "get_job_logs_count", "get_job_logs_desc", "get_dependency_counts", "get_dependencies_page",
        "reprocess_job", "retry_jobs", "remove", "clean", "promote", "pause")


def node(env, *args, timeout: float = 90) -> dict:
    done = subprocess.run([env.node, str(SCRIPT), *args], cwd=node_env.INTEROP_DIR, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"bullmq_pg.js {args[0]} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def world(postgres_url):
    env = node_env.require_node_dir(node_env.INTEROP_DIR, PINNED)
    schema = f"qct_bmpgn_{uuid.uuid4().hex[:8]}"
    try:
        yield env, postgres_url, schema
    finally:
        import asyncio

        asyncio.run(h.drop(postgres_url, schema))


def test_command_files_equal_bullmq_for_node_6_7_0():
    env = node_env.require_node_dir(node_env.INTEROP_DIR, PINNED)
    js = ("import('bullmq/dist/esm/postgres/sql-scripts.js').then(m => "
          "process.stdout.write(JSON.stringify(m.SQL_COMMANDS)))")
    done = subprocess.run([env.node, "-e", js], cwd=node_env.INTEROP_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    node_commands = json.loads(done.stdout)
    for name in USED:
        assert layout.command(name) == node_commands[f"{name}.sql"], name


async def test_node_queue_read_retried_and_processed_by_a_node_worker(world):
    env, url, schema = world
    made = node(env, "produce", url, schema, "mails")
    [reader] = await open_readers(url, ConnectOptions(backend="bullmq-postgres", schema=schema))
    try:
        found = await reader.discover()
        assert [(q.namespace, q.name) for q in found.queues] == [(schema, "mails")]
        ref = found.queues[0]
        [status] = await reader.statuses([ref])
        assert {k: status.native[k] for k in made["counts"]} == made["counts"]
        assert made["counts"]["failed"] == 3 and made["counts"]["waiting-children"] == 1
        # a flow: the parent waits for its two children, which wait in the same queue
        parent = await reader.job(ref, made["parent"])
        assert parent.summary.state == "waiting_children"
        assert parent.extra["children"] == "processed 0, unprocessed 2, ignored 0, failed 0"
        assert sorted(parent.extra["children unprocessed"].split(", ")) == sorted(f"mails:{c}" for c in made["children"])
        child = await reader.job(ref, made["children"][0])
        assert child.extra["parent_key"] == f"mails:{made['parent']}"
        # the flow (job_dependency): counts equal the library's getDependenciesCount
        flow = await reader.flow(ref, made["parent"])
        assert flow.counts == made["dependencies"] and flow.pending == 2 and flow.parent is None
        assert sorted(c.id for c in flow.children) == sorted(made["children"])
        assert {(c.queue, c.dependency, c.state) for c in flow.children} == {("mails", "unprocessed", "waiting")}
        child_flow = await reader.flow(ref, made["children"][0])
        assert (child_flow.parent.queue, child_flow.parent.id, child_flow.parent.state) == (
            "mails", made["parent"], "waiting_children")
        assert child_flow.parent_pending == 2 and not child_flow.children
        assert await reader.flow(ref, "no-such-job") is None
        failed = await reader.job(ref, made["failed"][0])
        assert failed.summary.failed_reason.text.startswith("boom")
        assert failed.logs.lines == [f"processing {made['failed'][0]}"]
        # the console retries two failed jobs; a BullMQ for Node worker then runs everything
        acts = Actions(lambda q: reader, operator="test@host")
        report = await acts.execute(await acts.preview("retry", Selection(ref, job_ids=made["failed"][:2])))
        assert report.done == 2
        after = node(env, "counts", url, schema, "mails")["counts"]
        assert after["failed"] == 1
        assert {k: (await reader.statuses([ref]))[0].native[k] for k in after} == after
        # 3 completed + 2 retried + waiting, prioritized, 2 children, then the parent
        worked = node(env, "work", url, schema, "mails", str(3 + 2 + 2 + 2 + 1))
        assert set(made["failed"][:2]) <= set(worked["processed"])
        assert made["parent"] in worked["processed"]
        final = worked["counts"]
        assert final["failed"] == 1 and final["waiting-children"] == 0 and final["delayed"] == 1
        assert {k: (await reader.statuses([ref]))[0].native[k] for k in final} == final
    finally:
        await reader.close()
