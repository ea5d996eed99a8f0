"""Interop: queues written by BullMQ for Node (6.7.0 and 5.81.5) read by queue-console's reader.

For each library version, ``tests/interop/fixture.js`` builds queues with jobs in every state
(waiting, prioritized, delayed, active held by a live worker, completed with return values and
logs, failed after retries, waiting-children, a paused queue -- the legacy ``paused`` list with
v5 -- an empty queue, and job ids with colons) and prints what the library itself reports
(getJobCounts, isPaused, getJobs per state, Job.fromId, getJobLogs). Each test then reads the same
Redis with ``backends.registry.open_readers`` and compares.

Node is found and ``npm ci`` run by ``tests/interop/node_env.py``; without Node the tests are
skipped loudly ("INTEROP SKIPPED: ..."), and with ``CI`` set they fail instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.interop import compare, node_env

pytestmark = pytest.mark.interop

LIBS = ("v6", "v5")
QUEUE_BASE = "interop"


@dataclass
class World:
    lib: str
    prefix: str
    redis_url: str
    doc: dict

    @property
    def main(self) -> dict:
        return self.doc["queues"]["main"]


@pytest.fixture(params=LIBS)
def node_world(request, redis_url, prefix):
    """fixture.js run against this test's own prefix; the child is always ended before the
    ``prefix`` fixture deletes the keys."""
    env = node_env.require_node()
    child = node_env.NodeFixture(env, redis_url, prefix, QUEUE_BASE, request.param)
    try:
        doc = child.start()
        yield World(lib=request.param, prefix=prefix, redis_url=redis_url, doc=doc)
    finally:
        child.stop()


# ---------------------------------------------------------------------------------- the fixture
def test_fixture_covers_every_state(node_world):
    """The fixture really built what the comparisons rely on (guards against a silent no-op)."""
    w = node_world
    assert w.doc["version"] == node_env.PINNED[w.doc["package"]]
    main, paused, empty = (w.doc["queues"][k] for k in ("main", "paused", "empty"))
    for state in ("wait", "prioritized", "delayed", "active", "completed", "failed", "waiting-children"):
        assert main["jobs"][state], f"main queue has no {state} job"
    assert main["counts"]["active"] == 1 and main["jobs"]["active"] == ["held-1"]
    ids = {i for ids in main["jobs"].values() for i in ids}
    assert "custom-id-abc" in ids and "order:2024:7" in ids and "inv:7:x" in ids
    assert any(i.startswith("repeat:every-hour:") for i in main["jobs"]["wait"])
    assert any(i.startswith("repeat:new-year:") for i in main["jobs"]["delayed"])
    details = w.doc["jobDetails"][main["name"]]
    assert all(len(details[i]["stacktrace"]) == 2 for i in main["jobs"]["failed"] if i != "inv:7:x")
    assert all(details[i]["logs"] for i in main["jobs"]["completed"])
    assert paused["isPaused"] is True and empty["isPaused"] is False
    assert not any(empty["jobs"].values())
    if w.lib == "v5":
        # legacy layout: pause RENAMEd wait -> paused, later jobs were pushed to `paused`
        assert paused["counts"]["paused"] == 5 and paused["counts"]["waiting"] == 0
        assert paused["jobs"]["paused"] == ["1", "2", "3", "4", "5"]
    else:
        assert paused["counts"]["paused"] == 0 and paused["counts"]["waiting"] == 5
    for view in w.doc["queues"].values():
        # getJobCounts('paused') is the raw LLEN (v6 no longer names the type, but answers it)
        assert view["counts"]["paused"] == view["rawPausedLlen"]
        # the library's getters agree with getJobs(state, asc) as called by the fixture
        w_ = view["wrappers"]
        assert w_["waiting"] == view["jobs"]["waiting"]
        for state in ("prioritized", "delayed", "active", "completed", "failed", "waiting-children"):
            assert w_[state] == view["jobs"][state], state
        # v5's getWaiting appends the legacy paused list; v6's does not
        expected_waiting = view["jobs"]["wait"] + (view["jobs"]["paused"] if w.lib == "v5" else [])
        assert view["jobs"]["waiting"] == expected_waiting


# ---------------------------------------------------------------------------------- the reader
async def test_discovery_finds_exactly_the_fixture_queues(node_world):
    async with compare.open_reader(node_world.redis_url, node_world.prefix) as reader:
        await compare.check_discovery(reader, node_world.doc, node_world.prefix)


async def test_status_native_counts_and_paused_flag(node_world):
    """status.native == getJobCounts(all types + 'paused'); status.paused == isPaused();
    canonical counts derived from the library's numbers (waiting = waiting + paused + prioritized)."""
    async with compare.open_reader(node_world.redis_url, node_world.prefix) as reader:
        queues = await compare.check_discovery(reader, node_world.doc, node_world.prefix)
        await compare.check_statuses(reader, queues, node_world.doc)


@pytest.mark.parametrize("state", compare.READER_STATES)
async def test_pages_list_the_library_ids_in_order(node_world, state):
    """Paging to the end (3 at a time; also 1, and 7 = the size of main's `wait` list, so that a
    page ends exactly at a segment boundary) lists exactly getJobs' ids in the library's order:
    waiting = wait (oldest first) + prioritized (ascending) + legacy paused list; completed and
    failed newest first; delayed soonest first. Row fields equal the library's Job fields."""
    async with compare.open_reader(node_world.redis_url, node_world.prefix) as reader:
        queues = await compare.check_discovery(reader, node_world.doc, node_world.prefix)
        for limit in (3, 1, 7):
            await compare.check_pages(reader, queues, node_world.doc, state, limit=limit)


async def test_job_detail_equals_job_fromid(node_world):
    """name, data, failedReason, stacktrace (reader newest first), returnvalue, logs, state."""
    async with compare.open_reader(node_world.redis_url, node_world.prefix) as reader:
        queues = await compare.check_discovery(reader, node_world.doc, node_world.prefix)
        n = await compare.check_details(reader, queues, node_world.doc)
    assert n >= 25


async def test_attempts_made_of_attempted_jobs(node_world):
    """attemptsMade of completed/failed jobs, in the detail and in the page rows."""
    async with compare.open_reader(node_world.redis_url, node_world.prefix) as reader:
        queues = await compare.check_discovery(reader, node_world.doc, node_world.prefix)
        diffs = await compare.attempts_diffs(reader, queues, node_world.doc, never_attempted=False)
    assert not diffs, "attemptsMade disagrees:\n" + compare.format_diffs(diffs)


async def test_attempts_made_of_never_attempted_jobs(node_world):
    """attemptsMade of waiting/prioritized/delayed/active/waiting-children jobs (no `atm` field)."""
    async with compare.open_reader(node_world.redis_url, node_world.prefix) as reader:
        queues = await compare.check_discovery(reader, node_world.doc, node_world.prefix)
        diffs = await compare.attempts_diffs(reader, queues, node_world.doc, never_attempted=True)
    assert not diffs, "attemptsMade disagrees:\n" + compare.format_diffs(diffs)
