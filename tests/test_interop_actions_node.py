"""Interop of the action layer with real Node workers.

(a) BullMQ for Node (6.7.0, and 5.81.5 through the ``bullmq5`` alias): a real Node worker fails
    jobs; the console retries them (``console.actions.Actions`` with a Selection by ids and with
    "all", and the CLI ``dlq retry ... --yes`` with ``--job`` and ``--all``); then a real Node
    worker of the same library processes them. Jobs are conserved after every step (each job in
    exactly one state key, none lost, none duplicated), and every retried job completed exactly
    once (one ``completed`` event per job in the queue's events stream, and the Node worker's own
    log of the ids it processed).
(b) pg-boss 12.38 (real pg-boss for Node installs the schema and sends the jobs): one queue paused
    with ``pause QUEUE`` before, then ``pause --all`` and ``resume --all`` through the CLI. The
    queue that was already paused stays paused (held by the trigger); while paused a real pg-boss
    worker fetches nothing from any paused queue; after the resume it processes the others, and
    never the paused one.

Node and ``npm ci`` come from ``tests/interop/node_env.py``: without Node these tests are skipped
loudly ("INTEROP SKIPPED: ..."); with ``CI`` set they fail instead. Everything is written under the
test's own key prefix (console records under ``<prefix>:console`` through
QUEUE_CONSOLE_STORE_PREFIX) or in schemas of the test's own (pg-boss's and the console's store,
through QUEUE_CONSOLE_STORE_SCHEMA), all deleted / dropped afterwards.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from backends.bullmq.keys import QueueKeys
from backends.contract import QueueRef
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Selection
from console.cli import main as cli_main
from tests.interop import node_env

pytestmark = pytest.mark.interop

INTEROP = Path(__file__).resolve().parent / "interop"
RETRY_WORKER_JS = INTEROP / "retry_worker.js"
PGBOSS_DIR = INTEROP / "pgboss"
PAUSE_WORKER_MJS = PGBOSS_DIR / "pause_worker.mjs"
PGBOSS_PINNED = {"pgboss10": "10.4.2", "pgboss11": "11.1.2", "pgboss12": "12.38.0"}
LIB_VERSION = {"v6": node_env.PINNED["bullmq"], "v5": node_env.PINNED["bullmq5"]}
QUEUE = "rq"

STATE_KEYS = {"wait": "list", "paused": "list", "active": "list", "prioritized": "zset", "delayed": "zset",
              "completed": "zset", "failed": "zset", "waiting-children": "zset"}


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def console_env(monkeypatch, tmp_path, prefix):
    """The CLI reads no user config and keeps its records under this test's own prefix."""
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(config))
    for var in ("QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_READ_ONLY", "QUEUE_CONSOLE_POLICY", "QUEUE_CONSOLE_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    return config


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli_main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def run_node(args: list[str], cwd: Path, timeout: float = 40.0) -> dict:
    """One Node child, always ended (subprocess.run kills it on timeout); its last stdout line."""
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(args[1:3])} took longer than {timeout} s:\n{(exc.stderr or b'')[-3000:]!r}")
    assert done.returncode == 0, f"{args[1]} {args[5:6]} failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def bullmq_node(env: node_env.NodeEnv, url: str, prefix: str, lib: str, phase: str, arg: str) -> dict:
    doc = run_node([env.node, str(RETRY_WORKER_JS), url, prefix, QUEUE, lib, phase, arg], INTEROP)
    assert doc["version"] == LIB_VERSION[lib]
    return doc


def job_states(client: redis.Redis, prefix: str, queue: str) -> dict[str, list[str]]:
    k = QueueKeys(prefix, queue)
    out = {}
    for suffix, kind in STATE_KEYS.items():
        raw = client.lrange(k(suffix), 0, -1) if kind == "list" else client.zrange(k(suffix), 0, -1)
        out[suffix] = [r.decode() for r in raw]
    return out


def assert_conserved(client: redis.Redis, prefix: str, queue: str, expected: set[str]) -> dict[str, list[str]]:
    """Each job in exactly one state key (and once in it), none lost, none added, each hash present."""
    states = job_states(client, prefix, queue)
    seen = [i for ids in states.values() for i in ids]
    dupes = [i for i, n in Counter(seen).items() if n > 1]
    assert not dupes, f"jobs in two states or twice in one: {dupes} ({states})"
    assert set(seen) == expected, f"lost {expected - set(seen)}, extra {set(seen) - expected}"
    pipe = client.pipeline(transaction=False)
    for job_id in expected:
        pipe.exists(QueueKeys(prefix, queue).job(job_id))
    assert all(pipe.execute()), "a job hash is missing"
    return states


def events(client: redis.Redis, prefix: str, queue: str, event: str) -> Counter:
    """How many ``event`` entries each job id has in the queue's events stream."""
    entries = client.xrange(QueueKeys(prefix, queue)("events"))
    return Counter(f[b"jobId"].decode() for _, f in entries if f.get(b"event") == event.encode())


async def bullmq_reader(url: str, prefix: str):
    options = ConnectOptions(prefixes=[prefix], store_prefix=f"{prefix}:console",
                             client_name=f"qc-test-{uuid.uuid4().hex[:8]}")
    [reader] = await open_readers(url, options)
    await reader.discover()
    return reader


def bullmq_ref(url: str, prefix: str) -> QueueRef:
    return QueueRef(connection=url, backend="bullmq", namespace=prefix, name=QUEUE)


# ------------------------------------------------------------------------------------ (a) BullMQ
@pytest.mark.parametrize("lib", ["v6", "v5"])
@pytest.mark.parametrize("how", ["actions-ids", "actions-all", "cli"])
async def test_jobs_failed_by_node_bullmq_retried_by_the_console_then_completed_once(
        lib, how, redis_url, prefix, sync_redis, console_env, capsys):
    env = node_env.require_node()
    n = 8
    failed = await asyncio.to_thread(bullmq_node, env, redis_url, prefix, lib, "fail", str(n))
    ids = failed["ids"]
    assert len(ids) == n and sorted(failed["handled"]) == sorted(ids)
    states = assert_conserved(sync_redis, prefix, QUEUE, set(ids))
    assert sorted(states["failed"]) == sorted(ids)
    assert sync_redis.hget(QueueKeys(prefix, QUEUE)("meta"), "version").decode().endswith(LIB_VERSION[lib])

    if how == "actions-ids":
        chosen = ids[::2]
    else:
        chosen = list(ids)
    if how == "cli":
        flags = ["--url", redis_url, "--prefix", prefix]
        # two jobs by id first, then --all for the rest (a fixed snapshot)
        code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", QUEUE, "--job", ids[0], "--job", ids[1],
                                                 *flags, "--yes", "--json")
        assert code == 0, err
        [rep] = json.loads(out)["reports"]
        assert rep["done"] == 2 and rep["complete"] and not rep["skipped"], rep
        states = assert_conserved(sync_redis, prefix, QUEUE, set(ids))
        assert sorted(states["wait"]) == sorted(ids[:2])
        code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", QUEUE, "--all", *flags, "--yes", "--json")
        assert code == 0, err
        [rep] = json.loads(out)["reports"]
        assert rep["done"] == n - 2 and rep["complete"], rep
        code, out, err = await asyncio.to_thread(cli, capsys, "audit", *flags, "--json")
        assert code == 0
        audit = json.loads(out)["records"]
        assert [r["action"] for r in audit[:2]] == ["retry", "retry"] and {r["count"] for r in audit[:2]} == {2, n - 2}
    else:
        reader = await bullmq_reader(redis_url, prefix)
        try:
            acts = Actions(lambda q: reader, operator="test@host")
            sel = Selection(bullmq_ref(redis_url, prefix), job_ids=list(chosen) if how == "actions-ids" else None)
            preview = await acts.preview("retry", sel)
            assert preview.count == len(chosen)
            report = await acts.execute(preview)
            assert report.complete and report.done == len(chosen) and not report.skipped, report.summary()
            audit = await reader.console_store().audit_read(5)
            assert audit[0]["action"] == "retry" and audit[0]["count"] == len(chosen)
        finally:
            await reader.close()
    states = assert_conserved(sync_redis, prefix, QUEUE, set(ids))
    assert sorted(states["wait"]) == sorted(chosen)
    assert sorted(states["failed"]) == sorted(set(ids) - set(chosen))
    # every retried job is announced once, by the library's own event ("waiting", prev "failed")
    entries = sync_redis.xrange(QueueKeys(prefix, QUEUE)("events"))
    retried = Counter(f[b"jobId"].decode() for _, f in entries
                      if f.get(b"event") == b"waiting" and f.get(b"prev") == b"failed")
    assert retried == Counter(chosen)

    worked = await asyncio.to_thread(bullmq_node, env, redis_url, prefix, lib, "work", ",".join(chosen))
    assert Counter(worked["handled"]) == Counter(chosen), "the Node worker processed a job twice, or a wrong one"
    assert {s["state"] for s in worked["states"].values()} == {"completed"}
    assert all(s["returnvalue"] == {"ok": i} for i, s in worked["states"].items())
    # attempts are not reset: the failed attempt counts, plus the one that completed
    assert {s["attemptsMade"] for s in worked["states"].values()} == {2}
    states = assert_conserved(sync_redis, prefix, QUEUE, set(ids))
    assert sorted(states["completed"]) == sorted(chosen)
    assert sorted(states["failed"]) == sorted(set(ids) - set(chosen))
    assert events(sync_redis, prefix, QUEUE, "completed") == Counter(chosen), "each retried job completed exactly once"
    # nothing of this test outside its own prefix: the console's records are under <prefix>:console
    assert sync_redis.exists(f"{prefix}:console:audit") or any(
        sync_redis.scan_iter(match=f"{prefix}:console:*", count=1000))


# ------------------------------------------------------------------------------------ (b) pg-boss
def pgboss_node(env, url: str, schema: str, phase: str, queues: list[str], extra: str) -> dict:
    doc = run_node([env.node, str(PAUSE_WORKER_MJS), url, "pgboss12", schema, phase, ",".join(queues), extra],
                   PGBOSS_DIR)
    assert doc["version"] == PGBOSS_PINNED["pgboss12"]
    return doc


async def _drop_schema(url: str, schema: str) -> None:
    from tests import pgboss_helpers as h

    await h.drop(url, schema)


async def test_pgboss_global_pause_keeps_an_already_paused_queue_paused(postgres_url, monkeypatch, tmp_path,
                                                                       capsys):
    from backends.pgboss.layout import quote_ident
    from backends.pgboss.mutations import HOLD_TRIGGER
    from tests import pgboss_helpers as h

    env = node_env.require_node_dir(PGBOSS_DIR, PGBOSS_PINNED)
    schema = h.new_schema("v12p")
    store = f"qcs_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(config))
    for var in ("QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_READ_ONLY", "QUEUE_CONSOLE_POLICY", "QUEUE_CONSOLE_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_SCHEMA", store)
    names = ["qa", "qb", "qc"]
    s = quote_ident(schema)

    async def job_rows() -> dict[str, dict]:
        async with h.admin(postgres_url) as conn:
            rows = await conn.fetch(f"SELECT id::text AS id, name, state::text AS state, start_after FROM {s}.job")
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), "a job is stored twice"
        return {r["id"]: dict(r) for r in rows}

    try:
        setup = await asyncio.to_thread(pgboss_node, env, postgres_url, schema, "setup", names, "3")
        ids = setup["ids"]
        everyone = {i for q in names for i in ids[q]}
        flags = ["--url", postgres_url, "--schema", schema]
        # qb was parked by someone before the incident
        code, out, err = await asyncio.to_thread(cli, capsys, "pause", "qb", *flags, "--yes")
        assert code == 0, err
        code, out, err = await asyncio.to_thread(cli, capsys, "pause", "--all", *flags, "--yes", "--json")
        assert code == 0, err
        assert "already paused" in err and "qb" in err, err
        assert sorted(r["queue"] for r in json.loads(out)["results"]) == ["qa", "qc"]
        rows = await job_rows()
        assert set(rows) == everyone
        assert all(r["state"] == "created" for r in rows.values()), rows
        async with h.admin(postgres_url) as conn:
            assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) "
                                       "AND tgname = $2", f"{s}.job", HOLD_TRIGGER) == 1
        async with h.admin(postgres_url) as conn:
            remembered = {r[0] for r in await conn.fetch(f"SELECT queue_key FROM {quote_ident(store)}.paused")}
            parked_queues = {r[0] for r in await conn.fetch(f"SELECT name FROM {quote_ident(store)}.paused_queue")}
        assert {k.split("\x1f")[-1] for k in remembered} == {"qa", "qc"}
        assert parked_queues == set(names)

        # while paused, a real pg-boss worker fetches nothing from the parked queues
        probe = await asyncio.to_thread(pgboss_node, env, postgres_url, schema, "probe", names, "2")
        assert probe["handled"] == {q: [] for q in names} and probe["fetched"] == {q: [] for q in names}, probe
        rows = await job_rows()
        assert set(rows) == everyone and {r["state"] for r in rows.values()} == {"created"}

        code, out, err = await asyncio.to_thread(cli, capsys, "resume", "--all", *flags, "--yes", "--json")
        assert code == 0, err
        assert sorted(r["queue"] for r in json.loads(out)["results"]) == ["qa", "qc"], out
        async with h.admin(postgres_url) as conn:  # qb is still held, so the trigger stays
            assert await conn.fetchval("SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) "
                                       "AND tgname = $2", f"{s}.job", HOLD_TRIGGER) == 1

        want = {"qa": ids["qa"], "qc": ids["qc"]}
        worked = await asyncio.to_thread(pgboss_node, env, postgres_url, schema, "work", names, json.dumps(want))
        assert worked["handled"]["qb"] == [], "a worker processed a job of the queue that stayed parked"
        for q in ("qa", "qc"):
            assert Counter(worked["handled"][q]) == Counter(ids[q]), f"{q}: each job processed exactly once"
            assert set(worked["states"][q].values()) == {"completed"}
        rows = await job_rows()
        assert set(rows) == everyone
        assert {rows[i]["state"] for q in ("qa", "qc") for i in ids[q]} == {"completed"}
        assert {rows[i]["state"] for i in ids["qb"]} == {"created"}
        code, out, err = await asyncio.to_thread(cli, capsys, "status", *flags, "--json")
        assert code == 0, err
        assert '"paused": true' in out
        async with h.admin(postgres_url) as conn:
            assert await conn.fetchval(f"SELECT count(*) FROM {quote_ident(store)}.paused") == 0
            assert {r[0] for r in await conn.fetch(f"SELECT name FROM {quote_ident(store)}.paused_queue")} == {"qb"}
    finally:
        await _drop_schema(postgres_url, schema)
        await _drop_schema(postgres_url, store)
