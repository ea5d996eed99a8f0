"""The pg-boss pause holds with no console running (issue 8): real pg-boss 10.4.2, 11.1.2, 12.38.0.

Per version, in a schema of the test's own (tests/interop/pgboss/hold_pause.mjs does the Node side):
a worker per queue (plain with priorities, singleton, stately, and a flaky one holding a job),
then ONE CLI call in a subprocess (``pause --all``) holds every queue and exits; no console runs
after it. A producer sends jobs for a while (QC_PAUSE_RATE jobs/s for QC_PAUSE_SECONDS s; 20 x 8 by
default, the issue's 50 x 30 by hand), the flaky worker fails its job into ``retry`` meanwhile, and
the workers keep polling: they must take none. Then ``resume --all`` (CLI) and every job held runs
exactly once, in pg-boss's order (priority desc, created_on: each fetch of 20 takes the next 20;
a singleton fetch takes one job per key out of the next 20), the failed one once more.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from backends.pgboss.layout import quote_ident
from backends.pgboss.mutations import HOLD_TRIGGER
from tests import pgboss_helpers as h

PGBOSS_DIR = Path(__file__).resolve().parent / "interop" / "pgboss"
SCRIPT = PGBOSS_DIR / "hold_pause.mjs"
PINNED = {"pgboss10": "10.4.2", "pgboss11": "11.1.2", "pgboss12": "12.38.0"}
RATE = float(os.environ.get("QC_PAUSE_RATE", "20"))
SECONDS = float(os.environ.get("QC_PAUSE_SECONDS", "8"))
REPO = Path(__file__).resolve().parent.parent
BATCH = 20  # hold_pause.mjs: batchSize of the workers of plain, single, stately


async def console_cli(url: str, schema: str, store: str, *args: str) -> tuple[int, str, str]:
    """The real CLI in a process of its own (it exits before the next step)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", "--url", url, "--schema", schema, *args,
        cwd=REPO, env={**os.environ, "QUEUE_CONSOLE_STORE_SCHEMA": store},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, out.decode(), err.decode()


async def read_doc(proc, timeout: float) -> dict:
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        err = await proc.stderr.read()
        raise AssertionError(f"hold_pause.mjs ended early: {err.decode()[-4000:]}")
    return json.loads(line)


async def rows_of(url: str, schema: str, ids: list[str]) -> dict[str, dict]:
    async with h.admin(url) as conn:
        rows = await conn.fetch(
            f"SELECT id::text AS id, name, state::text AS state, priority, created_on, started_on, singleton_key "
            f"FROM {quote_ident(schema)}.job WHERE id = ANY($1::uuid[])", ids)
    return {r["id"]: dict(r) for r in rows}


async def trigger_count(url: str, schema: str) -> int:
    async with h.admin(url) as conn:
        return await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2",
                                   f"{quote_ident(schema)}.job", HOLD_TRIGGER)


@pytest.mark.interop
@pytest.mark.timeout(240)
@pytest.mark.parametrize("lib", sorted(PINNED))
async def test_pause_holds_with_no_console_running(postgres_url, lib):
    from tests.interop import node_env

    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    schema, store = h.new_schema(lib), f"qcs_{uuid.uuid4().hex[:10]}"
    proc = await asyncio.create_subprocess_exec(
        env.node, str(SCRIPT), postgres_url, lib, schema, str(RATE), str(SECONDS), cwd=PGBOSS_DIR,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        ready = await read_doc(proc, 60)
        assert ready["step"] == "ready" and ready["version"] == PINNED[lib], ready
        flaky = ready["flaky"]

        code, out, err = await console_cli(postgres_url, schema, store, "pause", "--all", "--yes")
        assert code == 0, (out, err)
        assert "falling back" not in err and "not held" not in out, (out, err)
        assert await trigger_count(postgres_url, schema) == 1

        proc.stdin.write(b"paused\n")
        await proc.stdin.drain()
        paused = await read_doc(proc, SECONDS * 3 + 60)
        sent = paused["sent"]
        everyone = [i for ids in sent.values() for i in ids]
        print(f"{lib}: sent while paused {len(everyone)} "
              f"({ {q: len(v) for q, v in sent.items()} }, refused by stately: {paused['refused']['stately']}) "
              f"in {paused['producedSeconds']:.1f} s; taken while paused {len(paused['taken'])}")
        assert len(everyone) >= RATE * SECONDS * 0.8, paused["refused"]
        assert paused["taken"] == [], "a pg-boss worker took a job of a paused queue"
        held = await rows_of(postgres_url, schema, everyone + [flaky])
        assert set(held) == set(everyone) | {flaky}, "a job was lost while paused"
        assert {held[i]["state"] for i in everyone} == {"created"}
        assert all(held[i]["started_on"] is None for i in everyone)
        assert held[flaky]["state"] == "retry", "the failing worker's job was not re-queued"
        # pg-boss's order for each queue, as its fetch would take them
        order = {q: [i for i in sorted(ids, key=lambda i: (-held[i]["priority"], held[i]["created_on"], i))]
                 for q, ids in sent.items()}

        code, out, err = await console_cli(postgres_url, schema, store, "resume", "--all", "--yes")
        assert code == 0, (out, err)
        assert await trigger_count(postgres_url, schema) == 0, "the last resume left the trigger"

        proc.stdin.write(b"resumed\n")
        await proc.stdin.drain()
        resumed = await read_doc(proc, 120)
        fetches = resumed["handled"]
        for q, ids in sent.items():
            flat = [i for batch in fetches[q] for i in batch]
            assert Counter(flat) == Counter(ids), f"{q}: not every held job ran exactly once"
            if q == "single":
                # pg-boss's singleton fetch: the next BATCH candidates in order, then one per key
                # (which one of a key is not ordered by pg-boss: row_number() OVER (PARTITION BY key))
                rest = list(order[q])
                for batch in fetches[q]:
                    assert set(batch) <= set(rest[:BATCH]), f"{q}: a fetch took a job out of pg-boss's order"
                    assert len({held[i]["singleton_key"] for i in batch}) == len(batch)
                    rest = [i for i in rest if i not in batch]
            else:  # each fetch takes the next jobs in pg-boss's order
                at = 0
                for batch in fetches[q]:
                    assert set(batch) == set(order[q][at:at + len(batch)]), f"{q}: not released in pg-boss's order"
                    at += len(batch)
        assert fetches["flaky"] == [[flaky], [flaky]], "the re-queued job did not run exactly once more"
        done = await rows_of(postgres_url, schema, everyone + [flaky])
        assert {r["state"] for r in done.values()} == {"completed"}
        assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await h.drop(postgres_url, schema)
        await h.drop(postgres_url, store)


@pytest.mark.interop
@pytest.mark.timeout(180)
async def test_pause_holds_while_pgboss_migrates_11_to_12(postgres_url):
    """Paused on a pg-boss 11.1.2 schema (version 26), then real pg-boss 12.38.0 starts on it and
    migrates it to version 46 (its own migrations, while paused): the trigger is still on the job
    table, the 12.38 worker takes nothing, and after resume it runs every job exactly once."""
    import subprocess

    from backends.registry import ConnectOptions, open_readers
    from backends.pgboss.mutations import HELD_INFO
    from tests.interop import node_env

    env = node_env.require_node_dir(PGBOSS_DIR, PINNED)
    schema, store = h.new_schema("v11mig"), f"qcs_{uuid.uuid4().hex[:10]}"

    def worker(phase: str, extra: str) -> dict:
        done = subprocess.run([env.node, str(PGBOSS_DIR / "pause_worker.mjs"), postgres_url, "pgboss12", schema,
                               phase, "work", extra], cwd=PGBOSS_DIR, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    async def version() -> int:
        async with h.admin(postgres_url) as conn:
            return await conn.fetchval(f"SELECT version FROM {quote_ident(schema)}.version")

    async def reader():
        [r] = await open_readers(postgres_url, ConnectOptions(schema=schema))
        r.store_schema = store
        await r.discover()
        return r

    await h.install(postgres_url, "v11", schema)
    try:
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, schema, "work")
            ids = [await h.add_job(conn, schema, "work", created_s=-10 + i) for i in range(3)]
        assert await version() == 26
        r = await reader()
        try:
            assert await r.set_paused(r._ref(schema, "work"), True) is None
        finally:
            await r.close()
        probe = await asyncio.to_thread(worker, "probe", "2")  # boss.start() migrates 26 -> 46 first
        assert await version() == 46
        assert probe["handled"] == {"work": []} and probe["fetched"] == {"work": []}, probe
        assert await trigger_count(postgres_url, schema) == 1, "the migration dropped the trigger"
        r = await reader()
        try:
            [st] = await r.statuses([r._ref(schema, "work")])
            assert st.paused and st.info["paused"] == HELD_INFO
            await r.set_paused(r._ref(schema, "work"), False)
        finally:
            await r.close()
        assert await trigger_count(postgres_url, schema) == 0
        worked = await asyncio.to_thread(worker, "work", json.dumps({"work": ids}))
        assert Counter(worked["handled"]["work"]) == Counter(ids), worked
        assert set(worked["states"]["work"].values()) == {"completed"}
    finally:
        await h.drop(postgres_url, schema)
        await h.drop(postgres_url, store)
