"""Reports that are true: what a bulk run says it did is what the server did, also when the
connection drops in the middle of a batch or the server restarts, and the audit record says the
same. Fault tests run on a private redis-server (tests/private_redis.py), never the shared one."""
from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid

import pytest
import redis

from backends.bullmq.scripts import script_source
from backends.registry import ConnectOptions, open_readers
from console.actions import Actions, Selection
from console.cli import main
from tests.private_redis import PrivateRedis, ReplyDropper
from tests.cli_harness import isolated_env  # noqa: F401 (autouse: no developer config or environment)
from tests.test_actions_bullmq import World, assert_conserved, job_states


def script_sha(name: str) -> str:
    """The SHA1 under which the console calls BullMQ's script ``name`` (EVALSHA)."""
    return hashlib.sha1(script_source(name).encode()).hexdigest()


@pytest.fixture
def private():
    server = PrivateRedis()
    yield server
    server.close()


@pytest.fixture
async def pworld(private):
    w = World(private.url, f"qcr{uuid.uuid4().hex[:6]}")
    yield w
    await w.close()


def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def audit_records(server: PrivateRedis, store_prefix: str = "queue-console") -> list[dict]:
    c = server.client()
    try:
        return [json.loads(f[b"record"]) for _, f in c.xrevrange(f"{store_prefix}:audit")]
    finally:
        c.close()


async def test_reply_lost_mid_bulk_purge_is_recounted_and_run_plus_rerun_add_up(pworld, private, capsys,
                                                                                 monkeypatch):
    """`dlq purge --all`: the connection is cut (CLIENT KILL) after the server ran a batch but before
    its reply arrived. The report counts that batch (recounted on the server), so the run and its
    re-run add up to exactly the jobs purged, and the audit record holds the same count."""
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    ids = await pworld.make_failed(60)
    await pworld.stop_worker()
    # the third purge batch (cleanJobsInSet): the console's counts and lookups run scripts too
    proxy = ReplyDropper(private.port, nth=3, sha=script_sha("cleanJobsInSet"))
    try:
        flags = ["--url", proxy.url, "--prefix", pworld.prefix, "--yes", "--json"]
        code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "purge", "work", "--all", *flags)
        assert proxy.dropped, "the fault was not injected"
        assert code == 3, err
        [first] = json.loads(out)["reports"]
        remaining = job_states(private.client(), pworld.prefix, "work")["failed"]
        purged = 60 - len(remaining)
        assert first["done"] == purged, (first, purged)
        assert first["recounted"] == 10 and first["status"].startswith(f"{purged} of 60, stopped by: ")
        code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "purge", "work", "--all", *flags)
        assert code == 0, err
        [second] = json.loads(out)["reports"]
        assert first["done"] + second["done"] == 60
        assert not any(private.client().exists(f"{pworld.prefix}:work:{i}") for i in ids)
        records = audit_records(private)
        assert [r["count"] for r in records] == [second["done"], first["done"]]
        assert records[1]["result"] == first["status"]
    finally:
        proxy.close()


async def test_redis_restarted_mid_bulk_retry_says_n_of_m_exits_3_and_audits_after_restart(
        pworld, private, capsys, monkeypatch):
    """`dlq retry --all` while the server restarts (SHUTDOWN SAVE, up again a second later): one
    line "N of M, stopped by: ...", exit 3, and an audit record with N written once it answers."""
    import console.actions as actions_module
    import console.cli_actions as cli_actions

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    ids = await pworld.make_failed(60)
    await pworld.stop_worker()
    restarted = threading.Event()

    class Progress(cli_actions.Progress):
        def __call__(self, done, total):
            super().__call__(done, total)
            if done >= 20 and not restarted.is_set():
                restarted.set()
                private.stop(save=True)
                threading.Timer(1.0, private.start).start()

    monkeypatch.setattr(cli_actions, "Progress", Progress)
    flags = ["--url", private.url, "--prefix", pworld.prefix, "--yes"]
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", *flags)
    assert restarted.is_set()
    assert code == 3, err
    assert "internal error" not in err and "Traceback" not in err
    assert "retry: 20 of 60, stopped by: cannot connect to Redis" in out, (out, err)
    assert "audit record NOT written" not in out + err
    states = assert_conserved(private.client(), pworld.prefix, "work", set(ids))
    assert len(states["wait"]) == 20 and len(states["failed"]) == 40
    [record] = audit_records(private)
    assert record["count"] == 20 and record["requested"] == 60
    assert record["result"].startswith("20 of 60, stopped by: cannot connect to Redis")


async def test_server_gone_for_good_report_says_the_audit_record_was_not_written(pworld, private, monkeypatch):
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    await pworld.make_failed(30)
    await pworld.stop_worker()
    [reader] = await open_readers(private.url, ConnectOptions(prefixes=[pworld.prefix]))
    pworld.readers.append(reader)
    await reader.discover()
    acts = Actions(lambda q: reader, operator="test@host", reconnect_wait=1.0)
    preview = await acts.preview("purge", Selection(pworld.ref()))

    def stop(done, total):
        if done == 10:
            private.stop(save=False)

    report = await acts.execute(preview, progress=stop)
    assert report.done == 10 and report.error and not report.complete
    assert report.audit_id is None and report.audit_error
    assert "10 of 30, stopped by: " in report.summary() and "audit record NOT written" in report.summary()


# ----------------------------------------------------------------- what the CLI says


@pytest.fixture
def store_prefix(monkeypatch, prefix):
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")
    return f"{prefix}:console"


@pytest.fixture
async def world(redis_url, prefix):
    w = World(redis_url, prefix)
    yield w
    await w.close()


async def test_dry_run_totals_give_now_later_and_refused_apart_and_audit_shows_them(world, store_prefix,
                                                                                    capsys, tmp_path):
    """A plan that refuses one job and paces the rest: the dry run says so instead of "would touch
    6 jobs", in text and JSON; the audit text shows requested, done and refused."""
    ids = await world.make_failed(6)
    await world.stop_worker()
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy.fairness]\nrate = 20\n[[policy.failure_classes]]\npattern = "boom 2$"\n'
                      'class = "fatal"\n')
    flags = ["--url", world.url, "--prefix", world.prefix, "--policy", str(policy)]
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--dry-run", "--json",
                                             *flags)
    assert code == 0, err
    totals = json.loads(out)["totals"]
    assert totals["selected"] == 6 and totals["refused"] == 1 and totals["later"] >= 1
    assert totals["now"] + totals["later"] == 5 and json.loads(out)["total"] == 5
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--dry-run", *flags)
    assert code == 0 and "would touch" not in out + err
    # a dry run's result is on stdout (`| less` shows it)
    assert (f"retry of 6 selected jobs: {totals['now']} would be retried now, {totals['later']} later "
            "(paced or scheduled by the policy), 1 refused by the policy; nothing changed") in out, (out, err)
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--yes", *flags)
    assert code == 4, err
    assert "retry: 5 of 5, done" in out and "1 refused by the policy (of 6 selected)" in out, (out, err)
    states = assert_conserved(redis.Redis.from_url(world.url), world.prefix, "work", set(ids))
    assert len(states["wait"]) == 5 and len(states["failed"]) == 1
    code, out, err = await asyncio.to_thread(cli, capsys, "audit", "--url", world.url, "--prefix", world.prefix)
    assert code == 0
    assert "requested=6 done=5 refused=1  5 of 5, done" in out, out


async def test_bullmq_and_gello_in_one_redis_audit_once_and_pause_all_names_what_it_cannot_pause(
        private, capsys):
    """One Redis holding BullMQ and Gello queues: `pause --all` lists the Gello queue it cannot pause
    and why (text and JSON), and `audit` lists each record once."""
    import redis.asyncio as aioredis
    from bullmq import Queue

    from tests.gello_reference import RedisGello

    q = Queue("orders", {"connection": private.url, "prefix": "app"})
    await q.add("x", {})
    await q.close()
    client = aioredis.Redis.from_url(private.url)
    await RedisGello(client, "gello").enqueue("mails", "send", {"to": "a"})
    await client.aclose()
    flags = ["--url", private.url, "--prefix", "app", "--yes"]
    code, out, err = await asyncio.to_thread(cli, capsys, "pause", "--all", "--json", *flags)
    assert code == 0, err
    data = json.loads(out)
    assert [r["queue"] for r in data["results"]] == ["orders"]
    [skipped] = data["cannot_pause"]
    assert skipped["backend"] == "gello" and skipped["queue"] == "mails" and "no pause" in skipped["reason"]
    assert "cannot be paused, left running (1): gello:mails (Gello has no pause" in err, err
    code, out, err = await asyncio.to_thread(cli, capsys, "audit", "--json", *flags[:-1])
    assert code == 0, err
    records = json.loads(out)["records"]
    assert len(records) == 1 and records[0]["action"] == "pause"
    assert len({r["_id"] for r in records}) == len(records)


async def test_group_sample_names_its_queue(redis_url, prefix, sync_redis, capsys):
    """Two queues both have a failed job 479 with the same error: the group's sample says which."""
    for name, when in (("alpha", 1_700_000_000_000), ("beta", 1_700_000_100_000)):
        base = f"{prefix}:{name}"
        sync_redis.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
        sync_redis.set(f"{base}:id", 479)
        sync_redis.hset(f"{base}:479", mapping={"name": "t", "data": "{}", "opts": "{}", "timestamp": when,
                                                "finishedOn": when, "failedReason": "boom 479"})
        sync_redis.zadd(f"{base}:failed", {"479": when})
    flags = ["--url", redis_url, "--prefix", prefix]
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "list", "--group", "--json", *flags)
    assert code == 0, err
    [group] = json.loads(out)["groups"]
    assert group["count"] == 2
    assert group["sample_job"]["queue"] == "beta" and group["sample_job"]["id"] == "479"
    assert group["sample_job"]["backend"] == "bullmq"
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "list", "--group", *flags)
    assert "e.g. bullmq:beta job 479" in out, out


@pytest.mark.timeout(120)
def test_read_only_before_the_demo_verb_reaches_the_demo(capsys, monkeypatch):
    """`queue-console --read-only --theme X demo`: the global flags reach the demo's console."""
    import console.app

    seen = []
    monkeypatch.setattr(console.app, "run_app", lambda settings, **kw: seen.append(settings))
    main(["--read-only", "--theme", "queue-console-light", "--refresh", "3", "demo"])
    [settings] = seen
    assert settings.read_only is True and settings.theme == "queue-console-light" and settings.refresh == 3
    from console.actions import Actions, Refused
    from backends.contract import QueueRef

    with pytest.raises(Refused):
        Actions(lambda q: None, read_only=settings.read_only).check_allowed(
            "retry", QueueRef(connection="x", backend="bullmq", namespace="p", name="q"))


async def test_paced_retry_of_three_queues_interleaves_as_planned(redis_url, prefix, store_prefix, capsys, tmp_path):
    """`dlq retry --all` over three queues under a rate of 1/s per queue (and a fairness key): the
    start times BullMQ records (the `waiting` events of each queue's stream, stamped by the server)
    interleave the queues round by round, and each queue starts its jobs in the plan's order --
    not one queue after another."""
    worlds = [World(redis_url, prefix, name) for name in ("qa", "qb", "qc")]
    try:
        for w in worlds:
            await w.make_failed(3)
            await w.stop_worker()
        policy = tmp_path / "policy.toml"
        policy.write_text('[policy.fairness]\nrate = 1\nkey = "tenant"\n')
        flags = ["--url", redis_url, "--prefix", prefix, "--policy", str(policy), "--json"]
        code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "--all", "--dry-run", *flags)
        assert code == 0, err
        planned = {}
        for p in json.loads(out)["previews"]:
            accepted = [d for d in p["plan"]["decisions"] if d["action"] != "refuse"]
            planned[p["queue"]] = [d["job_id"] for d in sorted(accepted, key=lambda d: (d["delay_ms"], d["position"]))]
        assert sorted(planned) == ["qa", "qb", "qc"] and all(len(v) == 3 for v in planned.values())
        code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "--all", "--yes", *flags)
        assert code == 0, err
        assert json.loads(out)["totals"]["done"] == 9
        client = redis.Redis.from_url(redis_url)
        starts = []  # (server ms, queue, job id) of each retry, from the queues' event streams
        for name in planned:
            for entry_id, f in client.xrange(f"{prefix}:{name}:events"):
                if f.get(b"event") == b"waiting" and f.get(b"prev") == b"failed":
                    starts.append((int(entry_id.split(b"-")[0]), name, f[b"jobId"].decode()))
        client.close()
        starts.sort()
        for name, ids in planned.items():
            assert [j for _, q, j in starts if q == name] == ids, f"{name} did not start in the plan's order"
        rounds = [sorted(q for _, q, _ in starts[k:k + 3]) for k in range(0, 9, 3)]
        assert rounds == [["qa", "qb", "qc"]] * 3, f"queues did not interleave: {[(q, j) for _, q, j in starts]}"
    finally:
        for w in worlds:
            await w.close()


async def test_queues_after_a_server_that_stopped_answering_are_not_started(private, monkeypatch):
    """Several queues on one server that goes away for good in the middle of the first: the rest
    are reported as not started (instead of each waiting for the server again)."""
    import console.actions as actions_module
    from backends.errors import BackendError

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    prefix = f"qcr{uuid.uuid4().hex[:6]}"
    worlds = [World(private.url, prefix, name) for name in ("qa", "qb")]
    try:
        for w in worlds:
            await w.make_failed(20)
            await w.stop_worker()
        [reader] = await open_readers(private.url, ConnectOptions(prefixes=[prefix]))
        worlds[0].readers.append(reader)
        await reader.discover()
        acts = Actions(lambda q: reader, operator="test@host", reconnect_wait=1.0)
        previews = [await acts.preview("purge", Selection(w.ref())) for w in worlds]

        def stop(done, total):
            if done == 10:
                private.stop(save=False)

        first, second = await acts.execute_many(previews, progress=stop)
        assert first.done == 10 and first.error and first.audit_error
        assert isinstance(second, BackendError) and "not started" in str(second)
    finally:
        for w in worlds:
            await w.close()


async def test_interrupted_run_audits_cancelled_with_the_batch_in_flight_unknown(pworld, private, monkeypatch):
    """The run's task itself is cancelled (Ctrl-C, the app closing) while a batch waits on the server
    (CLIENT PAUSE WRITE on the private server holds it): the audit record says "N of M, cancelled"
    and that the batch in flight may or may not have run -- not "done"."""
    import console.actions as actions_module

    monkeypatch.setattr(actions_module, "BULK_BATCH", 10)
    await pworld.make_failed(45)
    await pworld.stop_worker()
    [reader] = await open_readers(private.url, ConnectOptions(prefixes=[pworld.prefix]))
    pworld.readers.append(reader)
    await reader.discover()
    acts = Actions(lambda q: reader, operator="test@host")
    preview = await acts.preview("retry", Selection(pworld.ref()))
    admin = private.client()
    paused = asyncio.Event()

    def pause_after_first(done, total):
        if done == 10:
            admin.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
            paused.set()

    task = asyncio.create_task(acts.execute(preview, progress=pause_after_first))
    await asyncio.wait_for(paused.wait(), 30)
    await asyncio.sleep(0.3)  # the next batch is now held by the pause
    task.cancel()
    await asyncio.sleep(0.3)  # the audit write waits behind the pause as well
    admin.execute_command("CLIENT", "UNPAUSE")
    with pytest.raises(asyncio.CancelledError):
        await task
    [record] = audit_records(private)
    assert record["result"] == "10 of 45, cancelled" and record["unknown"] == 10 and record["count"] == 10
    admin.close()
