"""The action layer on pg-boss in a real PostgreSQL: retry, purge, promote, cancel, pause (hold
trigger, and best-effort parking for a role that does not own the job table),
audit, read-only, fault injection (pg_terminate_backend mid-batch), concurrent consoles.

Schemas are the real pg-boss 10.4.2 / 11.1.2 / 12.38.0 DDL (tests/pgboss_ddl); the console's own
store lives in a schema of each test's own; both are dropped afterwards. After every action the jobs
are conserved: each job in exactly one state, none lost, none duplicated. The last test has a real
pg-boss 12.38 Node worker fail jobs, the console retry them, and a real worker complete them.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backends.contract import QueueRef
from backends.pgboss.layout import quote_ident
from backends.pgboss.writer import HELD_INFO, HOLD_TRIGGER, NOT_HELD_INFO, PAUSED_INFO, SENTINEL
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Refused, Selection
from tests import pgboss_helpers as h

MAJORS = ("v10", "v11", "v12")


@dataclass
class World:
    url: str
    major: str
    schema: str
    store: str
    name: str = "work"
    readers: list = field(default_factory=list)

    async def reader(self, url: str | None = None):
        [reader] = await open_readers(url or self.url, ConnectOptions(schema=self.schema))
        reader.store_schema = self.store
        await reader.discover()
        self.readers.append(reader)
        return reader

    def ref(self) -> QueueRef:
        return self.readers[0]._ref(self.schema, self.name) if self.readers else QueueRef(
            connection="", backend="pgboss", namespace=self.schema, name=self.name)

    async def make_failed(self, n: int, completed_s: float = -30) -> list[str]:
        async with h.admin(self.url) as conn:
            return [await h.add_job(conn, self.schema, self.name, "failed", started_s=completed_s - 5,
                                    completed_s=completed_s, retry_count=2, retry_limit=2,
                                    output={"message": f"boom {i}"}) for i in range(n)]

    async def add(self, state: str = "created", n: int = 1, **kw) -> list[str]:
        async with h.admin(self.url) as conn:
            return [await h.add_job(conn, self.schema, self.name, state, **kw) for _ in range(n)]

    async def rows(self, ids=None) -> dict[str, dict]:
        async with h.admin(self.url) as conn:
            rows = await conn.fetch(
                f"SELECT id::text AS id, state::text AS state, retry_count, retry_limit, completed_on, started_on, "
                f"start_after, keep_until, now() AS now FROM {quote_ident(self.schema)}.job WHERE name = $1", self.name)
        out = {r["id"]: dict(r) for r in rows}
        return out if ids is None else {i: out[i] for i in ids if i in out}

    async def conserved(self, expected: set[str]) -> dict[str, list[str]]:
        """Every job exactly once, in one state; none lost, none added."""
        async with h.admin(self.url) as conn:
            rows = await conn.fetch(f"SELECT id::text AS id, state::text AS state FROM {quote_ident(self.schema)}.job "
                                    "WHERE name = $1", self.name)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), "a job is stored twice"
        assert set(ids) == expected, f"lost {expected - set(ids)}, extra {set(ids) - expected}"
        by: dict[str, list[str]] = {}
        for r in rows:
            by.setdefault(r["state"], []).append(r["id"])
        return by

    async def close(self):
        for r in self.readers:
            await r.close()


@pytest.fixture(params=MAJORS)
async def world(request, postgres_url):
    major = request.param
    schema = h.new_schema(major)
    w = World(url=postgres_url, major=major, schema=schema, store=f"qcs_{uuid.uuid4().hex[:10]}")
    await h.install(postgres_url, major, schema)
    try:
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, schema, "work")
        yield w
    finally:
        await w.close()
        await h.drop(postgres_url, schema)
        await h.drop(postgres_url, w.store)


@pytest.fixture
async def non_owner(world):
    """A URL for a role that does not own the job table (tests/pgboss_helpers.non_owner)."""
    async with h.non_owner(world.url, world.schema, world.store) as url:
        yield url
        for r in world.readers:
            await r.close()
        world.readers.clear()


def actions_for(reader, **kw) -> Actions:
    return Actions(lambda q: reader, operator="test@host", **kw)


async def pgboss_relations(w: World) -> set[str]:
    async with h.admin(w.url) as conn:
        rows = await conn.fetch("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE n.nspname = $1", w.schema)
    return {r[0] for r in rows}


# ----------------------------------------------------------------------------------- retry
async def test_retry_by_ids_runs_the_documented_statement(world):
    w = world
    failed = await w.make_failed(5)
    done = await w.add("completed", completed_s=-5, started_s=-6)
    reader = await w.reader()
    acts = actions_for(reader)
    before = await w.rows()
    ghost = str(uuid.uuid4())
    preview = await acts.preview("retry", Selection(w.ref(), job_ids=failed[:3]))
    report = await acts.execute(preview)
    assert report.complete and report.done == 3
    # per-job outcomes at the reader: already retried, not failed, missing, not even an id
    outs = await reader.retry_jobs(w.ref(), failed[:1] + done + [ghost, "not-a-uuid"])
    assert [o.status for o in outs] == ["not-in-state", "not-in-state", "not-found", "not-found"]
    after = await w.rows()
    for i in failed[:3]:
        r = after[i]
        # pg-boss's retry (docs/backends/pgboss.md, B3): state retry, retry_limit + 1, retry_count kept,
        # completed_on NULL (B1), start_after = GREATEST(start_after, now())
        assert r["state"] == "retry" and r["retry_limit"] == 3 and r["retry_count"] == 2
        assert r["completed_on"] is None and r["start_after"] <= r["now"] and r["start_after"] >= before[i]["start_after"]
        assert r["started_on"] == before[i]["started_on"]
    for i in failed[3:] + done:
        assert after[i] == {**before[i], "now": after[i]["now"]}
    states = await w.conserved(set(failed) | set(done))
    assert sorted(states["retry"]) == sorted(failed[:3])
    # reset attempts: a fresh job's budget (retry_count 0, started_on NULL), retry_limit kept
    report = await acts.execute(await acts.preview("retry", Selection(w.ref(), job_ids=[failed[3]]), reset_attempts=True))
    assert report.done == 1
    r = (await w.rows([failed[3]]))[failed[3]]
    assert (r["state"], r["retry_count"], r["retry_limit"], r["started_on"], r["completed_on"]) == ("retry", 0, 2, None, None)
    audit = await reader.console_store().audit_read(5)
    assert audit[0]["action"] == "retry" and audit[0]["count"] == 1 and audit[1]["count"] == 3
    assert audit[0]["who"] == "test@host"


async def test_policy_later_requeues_are_scheduled_by_pgboss_start_after(world):
    """A rate-limited plan: pg-boss schedules the later starts itself (start_after), and the job's
    retention window moves with its start so maintenance cannot delete it before it runs."""
    from console.policy import policy_from_toml

    w = world
    failed = await w.make_failed(3)
    before = await w.rows()
    reader = await w.reader()
    acts = Actions(lambda q: reader, operator="test@host", policy=policy_from_toml("[policy.fairness]\nrate = 0.1\n"))
    preview = await acts.preview("retry", Selection(w.ref(), job_ids=failed))
    assert [d.mode for d in preview.plan.accepted] == ["immediate", "delayed", "delayed"]
    report = await acts.execute(preview)  # returns at once: nothing is held by the console
    assert report.complete and report.done == 3
    rows = await w.rows(failed)
    starts = sorted(r["start_after"] for r in rows.values())
    assert (starts[1] - starts[0]).total_seconds() >= 9.5 and (starts[2] - starts[1]).total_seconds() >= 9.5
    for i, r in rows.items():
        assert r["state"] == "retry" and r["keep_until"] >= r["start_after"]
        # the same retention window as before, counted from the new start
        assert r["keep_until"] - r["start_after"] >= before[i]["keep_until"] - max(before[i]["start_after"], r["now"]) - dt.timedelta(seconds=60)
    await w.conserved(set(failed))
    ledger = await reader.console_store().ledger_read(0)
    assert len(ledger) == 3


async def test_policy_job_timeout_is_set_on_requeue(world):
    """``timeouts.job_timeout`` becomes the retried row's own expiry (v10 ``expire_in``, v11+
    ``expire_seconds``), immediate and scheduled requeues alike; the plan says it is applied."""
    from console.policy import policy_from_toml

    w = world
    failed = await w.make_failed(3)
    reader = await w.reader()
    assert reader.queue_capabilities(w.ref()).job_timeout
    policy = policy_from_toml('[policy.timeouts]\njob_timeout = "2h"\n[policy.fairness]\nrate = 0.1\n')
    acts = Actions(lambda q: reader, operator="test@host", policy=policy)
    preview = await acts.preview("retry", Selection(w.ref(), job_ids=failed))
    assert [d.mode for d in preview.plan.accepted] == ["immediate", "delayed", "delayed"]
    assert {d.job_timeout_s for d in preview.plan.accepted} == {7200}
    assert any("job timeout 2h set on requeue" in n for n in preview.plan.notes)
    report = await acts.execute(preview)
    assert report.complete and report.done == 3
    col = "expire_seconds" if w.major != "v10" else "extract(epoch FROM expire_in)::int"
    async with h.admin(w.url) as conn:
        rows = await conn.fetch(f"SELECT state::text AS state, {col} AS timeout FROM {quote_ident(w.schema)}.job "
                                "WHERE id = ANY($1::uuid[])", [uuid.UUID(i) for i in failed])
    assert [(r["state"], r["timeout"]) for r in rows] == [("retry", 7200)] * 3
    # no rule, no change: a plain retry keeps the job's own expiry
    other = await w.make_failed(1)
    async with h.admin(w.url) as conn:
        before = await conn.fetchval(f"SELECT {col} FROM {quote_ident(w.schema)}.job WHERE id = $1", uuid.UUID(other[0]))
    await actions_for(reader).execute(await actions_for(reader).preview("retry", Selection(w.ref(), job_ids=other)))
    async with h.admin(w.url) as conn:
        assert await conn.fetchval(f"SELECT {col} FROM {quote_ident(w.schema)}.job WHERE id = $1",
                                   uuid.UUID(other[0])) == before != 7200


async def test_bulk_retry_uses_a_fixed_snapshot_in_batches(world, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 7)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 7)
    w = world
    early = await w.make_failed(30, completed_s=-60)
    reader = await w.reader()
    acts = actions_for(reader)
    preview = await acts.preview("retry", Selection(w.ref()))
    assert preview.count == 30 and preview.sample
    await asyncio.sleep(0.05)
    late = await w.make_failed(5, completed_s=0)  # failed after the snapshot: not swept in
    seen = []
    report = await acts.execute(preview, progress=lambda d, t: seen.append(d))
    assert report.complete and report.done == 30 and report.batches == 5
    assert seen == sorted(seen) and seen[-1] == 30
    states = await w.conserved(set(early) | set(late))
    assert sorted(states["retry"]) == sorted(early) and sorted(states["failed"]) == sorted(late)
    assert all(r["retry_limit"] == 3 and r["completed_on"] is None for r in (await w.rows(early)).values())


# ----------------------------------------------------------------------------------- purge
async def test_purge_by_ids_and_older_than_in_batches(world, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 7)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 7)
    w = world
    old = await w.make_failed(20, completed_s=-7200)
    new = await w.make_failed(4, completed_s=-5)
    waiting = await w.add("created", 2)
    active = await w.add("active", started_s=-1)
    reader = await w.reader()
    acts = actions_for(reader)
    preview = await acts.preview("purge", Selection(w.ref(), older_than_ms=3_600_000))
    assert preview.count == 20
    report = await acts.execute(preview)
    assert report.complete and report.done == 20 and report.batches >= 3
    states = await w.conserved(set(new) | set(waiting) | set(active))
    assert sorted(states["failed"]) == sorted(new)
    # by ids, state failed: a waiting and an active job are left alone
    report = await acts.execute(await acts.preview("purge", Selection(w.ref(), job_ids=[new[0], waiting[0], active[0]])))
    assert report.done == 1
    assert sorted(o.status for o in report.skipped) == ["active", "not-in-state"]
    # without a state (reader level): anything but an active job
    outs = await reader.remove_jobs(w.ref(), [waiting[0], active[0]])
    assert [o.status for o in outs] == ["removed", "active"]
    await w.conserved(set(new[1:]) | set(waiting[1:]) | set(active))


async def test_bulk_run_reads_the_layout_once_and_sends_one_statement_per_batch(world, monkeypatch):
    """A bulk retry/purge run reads the schema layout once (not per batch) and each batch is ONE
    statement on the job table: pick the next ids, change them, in the same statement (no
    BEGIN/COMMIT, no separate SELECT); the selection is counted once, at the start of the run."""
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    log = h.StatementLog().install(monkeypatch)
    w = world
    job = f"{quote_ident(w.schema)}.job"
    reader = await w.reader()
    acts = actions_for(reader)
    for action in ("retry", "purge"):
        ids = await w.make_failed(45)
        preview = await acts.preview(action, Selection(w.ref()))
        await log.take()
        report = await acts.execute(preview)
        texts = await log.take()
        assert report.complete and report.done == 45 and report.batches == 5
        assert sum("information_schema.columns" in t for t in texts) == 1, "layout read per batch"
        on_jobs = [t for t in texts if job in t]
        counts = [t for t in on_jobs if t.startswith("SELECT count(*)")]
        batches = [t for t in on_jobs if t not in counts]
        assert len(counts) == 1, "the selection is counted once per run"
        assert len(batches) == 5 and all(t.startswith("WITH c AS (SELECT id FROM") for t in batches)
        assert not any(t.upper().startswith(("BEGIN", "COMMIT")) for t in texts if job in t)
        rows = await w.rows(ids)
        assert ({r["state"] for r in rows.values()} == {"retry"} and len(rows) == 45) if action == "retry" else rows == {}


async def test_bulk_purge_of_completed_leaves_the_cached_retained_count_as_pg_boss_does(world, monkeypatch):
    """12.38's deleteJob takes the deleted completed/cancelled jobs that its monitor already counted
    (completed_on <= retained_on) off retained_count and total_count; the console's purge does the
    same, in its batch statement, so the cached counts it shows stay right."""
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 4)
    w = world
    counted = await w.add("completed", 6, started_s=-700, completed_s=-600)
    later = await w.add("completed", 3, started_s=-20, completed_s=-10)
    q = f"{quote_ident(w.schema)}.queue"
    async with h.admin(w.url) as conn:
        cols = {r[0] for r in await conn.fetch("SELECT column_name FROM information_schema.columns "
                                               "WHERE table_schema = $1 AND table_name = 'queue'", w.schema)}
        if "retained_on" in cols:  # the monitor counted the first 6 (retained_on 5 min ago)
            await conn.execute(f"UPDATE {q} SET retained_count = 6, total_count = 8, "
                               "retained_on = now() - interval '5 minutes' WHERE name = $1", w.name)
    reader = await w.reader()
    acts = actions_for(reader)
    report = await acts.execute(await acts.preview("purge", Selection(w.ref(), state="completed")))
    assert report.complete and report.done == 9
    await w.conserved(set())
    if "retained_on" not in cols:
        return  # v10, v11: no retained count (the monitor recounts)
    async with h.admin(w.url) as conn:
        row = await conn.fetchrow(f"SELECT retained_count, total_count FROM {q} WHERE name = $1", w.name)
    assert (row["retained_count"], row["total_count"]) == (0, 2)
    assert len(counted) == 6 and len(later) == 3


async def test_promote_and_cancel(world):
    w = world
    delayed = await w.add("created", 2, start_after_s=3600)
    waiting = await w.add("created")
    active = await w.add("active", started_s=-1)
    reader = await w.reader()
    outs = await reader.promote_jobs(w.ref(), delayed[:1] + waiting)
    assert [o.status for o in outs] == ["promoted", "not-in-state"]
    r = await w.rows()
    assert r[delayed[0]]["start_after"] <= r[delayed[0]]["now"] and r[delayed[1]]["start_after"] > r[delayed[1]]["now"]
    outs = await reader.cancel_jobs(w.ref(), [delayed[1], active[0], waiting[0]])
    assert all(o.status == "cancelled" for o in outs)
    outs = await reader.cancel_jobs(w.ref(), [waiting[0]])
    assert outs[0].status == "not-in-state"
    states = await w.conserved(set(delayed) | set(waiting) | set(active))
    assert sorted(states["cancelled"]) == sorted([delayed[1], active[0], waiting[0]])


# ----------------------------------------------------------------------------------- faults
async def _kill_when_blocked(w: World, reader, lock_id: str, start) -> asyncio.Task:
    """Hold a row lock on ``lock_id``, then ``start()`` the console's run, so its batch waits on the
    lock inside its transaction; then pg_terminate_backend the console's connection mid-transaction,
    and let go. (The lock is taken first: a batch is one fast statement, and a run started before the
    lock could be past that row already.)"""
    async with h.admin(w.url) as conn, h.admin(w.url) as watcher:
        tr = conn.transaction()
        await tr.start()
        await conn.execute(f"SELECT 1 FROM {quote_ident(w.schema)}.job WHERE name = $1 AND id = $2::uuid FOR UPDATE",
                           w.name, lock_id)
        task = start()
        killed = 0
        for _ in range(250):  # pg_stat_activity is read outside the lock holder's transaction (snapshot)
            if task.done():
                break
            killed = await watcher.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND wait_event_type = 'Lock'", reader.write_application_name)
            if killed:
                break
            await asyncio.sleep(0.02)
        seen = await watcher.fetch("SELECT application_name, wait_event_type, state FROM pg_stat_activity")
        await tr.rollback()
    assert killed, f"the console's batch never waited on the lock: {[tuple(r) for r in seen]}"
    return task


@pytest.mark.parametrize("action", ["retry", "purge"])
async def test_connection_killed_mid_bulk_then_second_run_finishes(world, monkeypatch, action):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 10)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    w = world
    ids = await w.make_failed(45)
    reader = await w.reader()
    acts = actions_for(reader)
    preview = await acts.preview(action, Selection(w.ref()))
    in_second_batch = sorted(ids, key=uuid.UUID)[15]  # bulk batches walk ids in order
    task = await _kill_when_blocked(w, reader, in_second_batch, lambda: asyncio.create_task(acts.execute(preview)))
    report = await asyncio.wait_for(task, 30)
    assert not report.complete and report.error and report.done == 10 and report.batches == 1
    assert "10 of 45" in report.summary() and "run again" in report.summary()
    if action == "retry":
        states = await w.conserved(set(ids))
        assert len(states["retry"]) == 10 and len(states["failed"]) == 35
    else:
        states = await w.conserved(set(sorted(ids, key=uuid.UUID)[10:]))
    audit = await reader.console_store().audit_read(1)
    assert audit[0]["count"] == 10 and audit[0]["result"].startswith("10 of 45, stopped by: ")
    acts2 = actions_for(await w.reader())
    report2 = await acts2.execute(await acts2.preview(action, Selection(w.ref())))
    assert report2.complete and report2.done == 35
    if action == "retry":
        states = await w.conserved(set(ids))
        assert len(states["retry"]) == 45
        assert {r["retry_limit"] for r in (await w.rows()).values()} == {3}, "a job retried twice"
    else:
        await w.conserved(set())


# ----------------------------------------------------------------------------------- concurrency
async def test_two_consoles_retrying_the_same_ids_retry_each_job_once(world):
    w = world
    ids = await w.make_failed(40)
    a, b = actions_for(await w.reader()), actions_for(await w.reader())
    pa = await a.preview("retry", Selection(w.ref(), job_ids=list(ids)))
    pb = await b.preview("retry", Selection(w.ref(), job_ids=list(reversed(ids))))
    ra, rb = await asyncio.gather(a.execute(pa), b.execute(pb))
    assert ra.error is None and rb.error is None
    assert ra.done + rb.done == 40
    assert all(o.status == "not-in-state" for o in ra.skipped + rb.skipped)
    states = await w.conserved(set(ids))
    assert sorted(states["retry"]) == sorted(ids)
    # retry_limit + 1 happens once per retry: 2 -> 3 means each job was retried exactly once
    assert {r["retry_limit"] for r in (await w.rows()).values()} == {3}


async def test_two_consoles_bulk_retrying_at_once(world, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BATCH", 5)
    monkeypatch.setattr(actions_module, "BULK_BATCH", 5)
    w = world
    ids = await w.make_failed(50)
    a, b = actions_for(await w.reader()), actions_for(await w.reader())
    pa, pb = await a.preview("retry", Selection(w.ref())), await b.preview("retry", Selection(w.ref()))
    ra, rb = await asyncio.gather(a.execute(pa), b.execute(pb))
    assert ra.error is None and rb.error is None
    assert ra.done + rb.done == 50
    states = await w.conserved(set(ids))
    assert len(states["retry"]) == 50
    assert {r["retry_limit"] for r in (await w.rows()).values()} == {3}


# ----------------------------------------------------------------------------------- read-only
async def test_read_only_refuses_every_mutation_at_the_action_layer(world):
    w = world
    ids = await w.make_failed(2)
    reader = await w.reader()
    acts = actions_for(reader, read_only=True)
    preview = await acts.preview("retry", Selection(w.ref()))  # reading is allowed
    assert preview.count == 2
    with pytest.raises(Refused):
        await acts.execute(preview)
    with pytest.raises(Refused):
        await acts.execute(await acts.preview("purge", Selection(w.ref(), job_ids=ids)))
    with pytest.raises(Refused):
        await acts.set_paused([w.ref()], True)
    with pytest.raises(Refused):
        await acts.set_paused([w.ref()], False, remember=True)
    for what in ("retry", "purge", "pause", "resume"):
        with pytest.raises(Refused):
            acts.check_allowed(what, w.ref())
    states = await w.conserved(set(ids))
    assert sorted(states["failed"]) == sorted(ids)
    async with h.admin(w.url) as conn:  # nothing written anywhere, not even the console's schema
        assert await conn.fetchval("SELECT to_regnamespace($1)", quote_ident(w.store)) is None


# ----------------------------------------------------------------------------------- parking pause
async def test_parking_pause_then_resume(world, non_owner):
    """A role that does not own the job table: told before pausing, then best-effort parking."""
    w = world
    rels = await pgboss_relations(w)
    waiting = await w.add("created", 4)
    delayed = await w.add("created", start_after_s=3600)
    retry = await w.add("retry", retry_count=1, started_s=-5)
    failed = await w.make_failed(1)
    active = await w.add("active", started_s=-1)
    everyone = set(waiting) | set(delayed) | set(retry) | set(failed) | set(active)
    before = await w.rows()
    reader = await w.reader(non_owner)
    acts = actions_for(reader)
    [note] = await reader.pause_notes(w.ref(), True)
    assert "does not own" in note and "best-effort parking" in note
    [res] = await acts.set_paused([w.ref()], True, remember=True)
    assert res["ok"] and "not held" in res["note"], res
    parked = waiting + delayed + retry
    rows = await w.rows()
    for i in parked:
        assert rows[i]["start_after"] == SENTINEL and rows[i]["keep_until"] == SENTINEL
    assert rows[active[0]] == {**before[active[0]], "now": rows[active[0]]["now"]}
    [st] = await reader.statuses([w.ref()])
    assert st.paused and st.info["paused"] == PAUSED_INFO
    assert st.counts["waiting"] == 0 and st.counts["delayed"] == 6
    # a job sent while paused is parked by the next sweep (a statuses refresh)
    late = await w.add("created")
    everyone |= set(late)
    reader.writer.swept = 0.0
    await reader.statuses([w.ref()])
    assert (await w.rows(late))[late[0]]["start_after"] == SENTINEL
    # a retry into a parked queue is parked at once; promote leaves parked jobs alone
    report = await acts.execute(await acts.preview("retry", Selection(w.ref(), job_ids=failed)))
    assert report.done == 1 and (await w.rows(failed))[failed[0]]["start_after"] == SENTINEL
    bulk = await w.make_failed(3)  # the same for a bulk retry (--all): each batch re-parks
    everyone |= set(bulk)
    report = await acts.execute(await acts.preview("retry", Selection(w.ref())))
    assert report.done == 3 and all(r["start_after"] == SENTINEL for r in (await w.rows(bulk)).values())
    assert (await reader.promote_jobs(w.ref(), delayed))[0].status == "not-in-state"
    await w.conserved(everyone)
    assert (await reader.console_store().paused_list()).keys() == {f"pgboss\x1f{w.schema}\x1fwork"}
    # resume: originals back (not before now), retention shifted by the time parked
    [res] = await acts.set_paused([w.ref()], False, remember=True)
    assert res["ok"], res
    rows = await w.rows()
    for i in waiting + retry:
        assert rows[i]["start_after"] <= rows[i]["now"] and rows[i]["keep_until"] >= before[i]["keep_until"]
    assert all(rows[i]["start_after"] <= rows[i]["now"] and rows[i]["state"] == "retry" for i in bulk)
    assert rows[delayed[0]]["start_after"] == before[delayed[0]]["start_after"]
    assert rows[failed[0]]["start_after"] <= rows[failed[0]]["now"] and rows[failed[0]]["state"] == "retry"
    assert max(r["start_after"] for r in rows.values()) < SENTINEL
    [st] = await reader.statuses([w.ref()])
    assert not st.paused and "paused" not in st.info and st.counts["waiting"] == 10
    assert await reader.console_store().paused_list() == {}
    async with h.admin(w.url) as conn:
        s = quote_ident(w.store)
        assert await conn.fetchval(f"SELECT count(*) FROM {s}.parked_job") == 0
        assert await conn.fetchval(f"SELECT count(*) FROM {s}.paused_queue") == 0
    await w.conserved(everyone)
    assert await pgboss_relations(w) == rels, "an object was created in pg-boss's schema"
    audit = await reader.console_store().audit_read(10)
    assert [a["action"] for a in audit[:2]] == ["resume", "retry"] and audit[-1]["action"] == "pause"


async def test_interrupted_resume_is_finished_by_a_sweep(world, non_owner):
    w = world
    waiting = await w.add("created", 3)
    reader = await w.reader(non_owner)
    await reader.set_paused(w.ref(), True)
    async with h.admin(w.url) as conn:  # as if a resume died after dropping the pause row
        await conn.execute(f"DELETE FROM {quote_ident(w.store)}.paused_queue")
    [st] = await reader.statuses([w.ref()])
    assert not st.paused
    rows = await w.rows()
    assert all(rows[i]["start_after"] <= rows[i]["now"] for i in waiting)


# ----------------------------------------------------------------------------------- hold pause
async def claim(w: World, name: str | None = None, limit: int = 100) -> list[str]:
    """What every pg-boss version's fetch does (plans.js fetchNextJob): queued rows in its order,
    FOR UPDATE SKIP LOCKED, moved to 'active' in one UPDATE."""
    j = f"{quote_ident(w.schema)}.job"
    async with h.admin(w.url) as conn:
        rows = await conn.fetch(
            f"""WITH next AS (SELECT id FROM {j} WHERE name = $1 AND state < 'active' AND start_after < now()
                              ORDER BY priority DESC, created_on, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                UPDATE {j} j SET state = 'active', started_on = now() FROM next
                WHERE j.name = $1 AND j.id = next.id RETURNING j.id::text AS id""", name or w.name, limit)
    return [r["id"] for r in rows]


async def hold_triggers(w: World) -> int:
    async with h.admin(w.url) as conn:
        return await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2",
                                   f"{quote_ident(w.schema)}.job", HOLD_TRIGGER)


async def test_hold_pause_then_resume(world):
    w = world
    async with h.admin(w.url) as conn:
        await h.create_queue(conn, w.schema, "other")
        other = await h.add_job(conn, w.schema, "other")
    waiting = []
    for i, prio in enumerate((0, 5, 0, 1)):
        waiting += await w.add("created", priority=prio, created_s=-20 + i)
    delayed = await w.add("created", start_after_s=3600)
    retry = await w.add("retry", retry_count=1, started_s=-5, created_s=-30)
    failed = await w.make_failed(1)
    active = await w.add("active", started_s=-1)
    everyone = set(waiting) | set(delayed) | set(retry) | set(failed) | set(active)
    rels = await pgboss_relations(w)
    before = await w.rows()
    reader = await w.reader()
    acts = actions_for(reader)
    assert await reader.pause_notes(w.ref(), True) == []
    [res] = await acts.set_paused([w.ref()], True, remember=True)
    assert res["ok"] and "note" not in res, res
    assert await hold_triggers(w) == 1
    after = await w.rows()
    assert {i: {**r, "now": None} for i, r in after.items()} == {i: {**r, "now": None} for i, r in before.items()}, \
        "a pause changed a job"
    [st] = await reader.statuses([w.ref()])
    assert st.paused and st.info["paused"] == HELD_INFO and st.counts["waiting"] == 5
    # a worker's claim takes nothing from the held queue, and the other queue as usual
    assert await claim(w) == []
    assert await claim(w, "other") == [other]
    # the active job fails into 'retry' (a failing worker), a producer sends: both stored, neither taken
    async with h.admin(w.url) as conn:
        assert await conn.fetchval(f"UPDATE {quote_ident(w.schema)}.job SET state = 'retry', start_after = now() "
                                   "WHERE id = $1 RETURNING true", uuid.UUID(active[0]))
    late = await w.add("created", created_s=-1)
    everyone |= set(late)
    assert await claim(w) == []
    # pg-boss's retention never drops a held job: maintenance's DELETE of a queued job past keep_until
    s, j = quote_ident(w.store), f"{quote_ident(w.schema)}.job"
    async with h.admin(w.url) as conn:
        await conn.execute(f"UPDATE {s}.paused_queue SET paused_at = now() - interval '1 hour'")
        await conn.execute(f"UPDATE {j} SET keep_until = now() - interval '10 minutes' WHERE id = $1",
                           uuid.UUID(waiting[0]))
        assert await conn.fetchval(f"WITH d AS (DELETE FROM {j} WHERE name = $1 AND state < 'active' "
                                   "AND keep_until < now() RETURNING 1) SELECT count(*) FROM d", w.name) == 0
    states = await w.conserved(everyone)
    assert "active" not in states
    # resume: the trigger goes, retention gets the hour back, every job runs once in pg-boss's order
    [res] = await acts.set_paused([w.ref()], False, remember=True)
    assert res["ok"] and "note" not in res, res
    assert await hold_triggers(w) == 0
    rows = await w.rows()
    assert rows[waiting[0]]["keep_until"] > rows[waiting[0]]["now"]
    [st] = await reader.statuses([w.ref()])
    assert not st.paused and "paused" not in st.info
    async with h.admin(w.url) as conn:
        expected = [r["id"] for r in await conn.fetch(
            f"SELECT id::text AS id FROM {j} WHERE name = $1 AND state < 'active' AND start_after < now() "
            "ORDER BY priority DESC, created_on, id", w.name)]
    assert set(expected) == set(waiting) | set(retry) | set(active) | set(late)
    taken = []
    while got := await claim(w, limit=1):
        taken += got
    assert taken == expected
    await w.conserved(everyone)
    assert await pgboss_relations(w) == rels, "an object was created in pg-boss's schema"


async def test_hold_covers_partitions_attached_while_paused(world):
    """A queue created while the trigger is installed gets its own partition (v10 always, v11/v12
    with ``partition: true``); PostgreSQL clones the trigger onto it, so a claim made on the
    partition itself (v12 fetches from the queue's table) is skipped too."""
    w = world
    reader = await w.reader()
    await reader.set_paused(w.ref(), True)
    async with h.admin(w.url) as conn:
        await h.create_queue(conn, w.schema, "late", {"partition": True})
        late = await h.add_job(conn, w.schema, "late")
        table = await conn.fetchval(f"SELECT tableoid::regclass::text FROM {quote_ident(w.schema)}.job WHERE name = 'late'")
    assert not table.endswith(".job") and "job_common" not in table, table
    await reader.discover()
    late_ref = reader._ref(w.schema, "late")
    await reader.set_paused(late_ref, True)
    assert await hold_triggers(w) == 1

    async def claim_on_partition():
        async with h.admin(w.url) as conn:
            return await conn.fetch(f"UPDATE {table} SET state = 'active', started_on = now() "
                                    "WHERE name = 'late' AND state < 'active' RETURNING id")

    assert await claim_on_partition() == []
    await reader.set_paused(w.ref(), False)
    assert await hold_triggers(w) == 1, "dropped while another queue of the schema is still held"
    assert await claim_on_partition() == []
    await reader.set_paused(late_ref, False)
    assert await hold_triggers(w) == 0
    assert [str(r["id"]) for r in await claim_on_partition()] == [late]


async def _wait_for_lock_wait(w: World, app: str) -> int:
    async with h.admin(w.url) as conn:
        for _ in range(400):
            pid = await conn.fetchval("SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                                      "AND wait_event_type = 'Lock'", app)
            if pid:
                return pid
            await asyncio.sleep(0.05)
    raise AssertionError("the console's pause never waited for the table lock")


async def test_hold_survives_a_crash_in_pause_and_in_resume(world):
    """pause/resume are one transaction each: a backend killed mid-way leaves all or nothing, and
    resume (run again) releases everything."""
    from backends.errors import BackendError

    w = world
    waiting = await w.add("created", 3)
    reader = await w.reader()
    app = reader.write_application_name
    j = f"{quote_ident(w.schema)}.job"
    for verb in (True, False):
        async with h.admin(w.url) as blocker, blocker.transaction():
            await blocker.execute(f"LOCK TABLE {j} IN ROW EXCLUSIVE MODE")  # CREATE/DROP TRIGGER wait for it
            task = asyncio.create_task(reader.set_paused(w.ref(), verb))
            pid = await _wait_for_lock_wait(w, app)
            async with h.admin(w.url) as conn:
                await conn.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises(BackendError):
                await task
        if verb:  # the killed pause left nothing: no row, no trigger, jobs claimable
            assert await hold_triggers(w) == 0
            async with h.admin(w.url) as conn:
                assert await conn.fetchval(f"SELECT count(*) FROM {quote_ident(w.store)}.paused_queue") == 0
            await reader.set_paused(w.ref(), True)  # now a real pause
        else:  # the killed resume left the pause whole: still held
            assert await hold_triggers(w) == 1 and await claim(w) == []
    # a trigger whose pause row is gone (e.g. a resume whose DROP lost a lock race) is inert
    await reader.set_paused(w.ref(), False)
    assert await hold_triggers(w) == 0
    taken = await claim(w)
    assert sorted(taken) == sorted(waiting)
    await w.conserved(set(waiting))


async def test_hold_trigger_missing_is_reported_and_resume_releases(world):
    """If pg-boss re-creates its job table while paused, the trigger is gone: the status says the
    queue is NOT HELD; pause again re-installs it; resume works either way."""
    w = world
    await w.add("created", 2)
    reader = await w.reader()
    await reader.set_paused(w.ref(), True)
    async with h.admin(w.url) as conn:
        await conn.execute(f"DROP TRIGGER {HOLD_TRIGGER} ON {quote_ident(w.schema)}.job")
    [st] = await reader.statuses([w.ref()])
    assert st.paused and st.info["paused"] == NOT_HELD_INFO
    await reader.set_paused(w.ref(), True)
    assert await hold_triggers(w) == 1
    [st] = await reader.statuses([w.ref()])
    assert st.info["paused"] == HELD_INFO and await claim(w) == []
    async with h.admin(w.url) as conn:
        await conn.execute(f"DROP TRIGGER {HOLD_TRIGGER} ON {quote_ident(w.schema)}.job")
    await reader.set_paused(w.ref(), False)
    [st] = await reader.statuses([w.ref()])
    assert not st.paused and len(await claim(w)) == 2


async def test_v9_is_read_only(postgres_url):
    schema = h.new_schema("v9")
    async with h.admin(postgres_url) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'CREATE TABLE "{schema}".version (version int)')
        await conn.execute(f'INSERT INTO "{schema}".version VALUES (20)')
        await conn.execute(f"CREATE TYPE \"{schema}\".job_state AS ENUM ('created','retry','active','completed',"
                           "'expired','cancelled','failed')")
        await conn.execute(f'CREATE TABLE "{schema}".job (id uuid primary key, name text, state "{schema}".job_state, '
                           'completedon timestamptz)')
    try:
        [reader] = await open_readers(postgres_url, ConnectOptions(schema=schema))
        try:
            ref = reader._ref(schema, "q")
            from backends.errors import Unsupported

            with pytest.raises(Unsupported):
                await reader.retry_jobs(ref, [str(uuid.uuid4())])
            with pytest.raises(Unsupported):
                await reader.purge_batch(ref, "failed", 0, 10)
            with pytest.raises(Unsupported):
                await reader.set_paused(ref, True)
        finally:
            await reader.close()
    finally:
        await h.drop(postgres_url, schema)


# ----------------------------------------------------------------------------------- interop
PGBOSS_DIR = Path(__file__).resolve().parent / "interop" / "pgboss"
PINNED = {"pgboss10": "10.4.2", "pgboss11": "11.1.2", "pgboss12": "12.38.0"}

# phase "fail": a worker fails every job (retryLimit 0 -> failed at once); phase "work": a worker
# completes whatever it fetches until the given ids are completed. One JSON line on stdout.
WORKER_JS = r"""
import { createRequire } from 'node:module'
import path from 'node:path'
const [url, lib, schema, phase, n] = JSON.parse(process.env.QC_ARGS)
const here = process.cwd()
const require = createRequire(path.join(here, 'x.js'))
const pkg = require(path.join(here, 'node_modules', lib, 'package.json'))
const mod = await import(path.join(here, 'node_modules', lib, pkg.main || 'index.js'))
const PgBoss = mod.PgBoss || mod.default || mod
const cfg = require(path.join(here, '..', 'pg_conn.js')).pgConnection(url)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const boss = new PgBoss({ ...cfg, schema, supervise: false, schedule: false, max: 3 })
boss.on('error', err => console.error('pg-boss error', err))
await boss.start()
const out = { version: pkg.version, ids: [], handled: [] }
if (phase === 'fail') {
  await boss.createQueue('work', { retryLimit: 0 })
  for (let i = 0; i < n; i++) out.ids.push(await boss.send('work', { i }))
  await boss.work('work', { pollingIntervalSeconds: 0.5 }, async ([job]) => { out.handled.push(job.id); throw new Error('boom ' + job.data.i) })
} else {
  out.ids = JSON.parse(process.env.QC_IDS)
  await boss.work('work', { pollingIntervalSeconds: 0.5 }, async ([job]) => { out.handled.push(job.id); return { ok: job.data.i } })
}
const want = phase === 'fail' ? 'failed' : 'completed'
for (let t = 0; t < 300; t++) {
  const jobs = await Promise.all(out.ids.map(id => boss.getJobById('work', id)))
  if (jobs.every(j => j && j.state === want)) { out.states = jobs.map(j => j.state); break }
  await sleep(100)
}
await boss.stop({ graceful: false, wait: true, close: true })
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
"""


def run_worker(env, url: str, lib: str, schema: str, phase: str, n: int = 0, ids: list[str] | None = None) -> dict:
    import os

    proc_env = {**os.environ, "QC_ARGS": json.dumps([url, lib, schema, phase, n]), "QC_IDS": json.dumps(ids or [])}
    done = subprocess.run([env.node, "--input-type=module", "-e", WORKER_JS], cwd=PGBOSS_DIR, env=proc_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"pg-boss worker ({phase}) failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.interop
async def test_interop_jobs_failed_by_pgboss_retried_then_completed_by_pgboss(postgres_url):
    from tests.interop import node_env

    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    lib = "pgboss12"
    schema = h.new_schema(lib)
    w = World(url=postgres_url, major="v12", schema=schema, store=f"qcs_{uuid.uuid4().hex[:10]}")
    try:
        failed = await asyncio.to_thread(run_worker, env, postgres_url, lib, schema, "fail", 4)
        assert failed["version"] == PINNED[lib] and failed["states"] == ["failed"] * 4
        ids = failed["ids"]
        reader = await w.reader()
        acts = actions_for(reader)
        report = await acts.execute(await acts.preview("retry", Selection(w.ref())))
        assert report.complete and report.done == 4
        states = await w.conserved(set(ids))
        assert sorted(states["retry"]) == sorted(ids)
        worked = await asyncio.to_thread(run_worker, env, postgres_url, lib, schema, "work", ids=ids)
        assert worked.get("states") == ["completed"] * 4, worked
        assert sorted(worked["handled"]) == sorted(ids), "each retried job ran exactly once"
        states = await w.conserved(set(ids))
        assert sorted(states["completed"]) == sorted(ids)
        rows = await w.rows()
        assert {(r["retry_count"], r["retry_limit"]) for r in rows.values()} == {(1, 1)}
    finally:
        await w.close()
        await h.drop(postgres_url, schema)
        await h.drop(postgres_url, w.store)
