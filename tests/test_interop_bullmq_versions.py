"""No BullMQ job lost, whatever BullMQ version writes the queue (docs/backends/bullmq.md "Versions").

The matrix: BullMQ for Node 4.18.3, 5.81.5 and 6.7.0 (one long-lived Node process,
tests/interop/versions_driver.js) and BullMQ for Python 3.4.4 (in process) x pause by the library
or by the console x resume by the library or by the console. Per cell, one queue: the library
fails 4 jobs (the first with priority 5), adds 2 waiting and 2 delayed jobs; the queue is paused;
the library adds a job; the console retries one job (--job), retries the rest in bulk (--all) and
promotes a delayed job; the queue is resumed. After every step each job id is in exactly one list
(wait, paused, active, prioritized, delayed, completed, failed, waiting-children) and its hash
exists; finally a real worker of that library completes every job except the delayed one left.

Also: the vendored BullMQ 4/5 scripts equal the npm packages' byte for byte; BullMQ 4's
--reset-attempts resets ``attemptsMade``; unknown ``meta.version`` refuses changes with exit 4.
"""
from __future__ import annotations

import asyncio
import json
import queue as queue_mod
import subprocess
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from backends.bullmq.keys import QueueKeys
from console.cli import main as cli_main
from tests.interop import node_env

pytestmark = pytest.mark.interop

INTEROP = Path(__file__).resolve().parent / "interop"
DRIVER_JS = INTEROP / "versions_driver.js"
LUA_DIR = Path(__file__).resolve().parent.parent / "backends" / "bullmq" / "lua"
NODE_VERSIONS = {"v4": node_env.PINNED["bullmq4"], "v5": node_env.PINNED["bullmq5"], "v6": node_env.PINNED["bullmq"]}
LISTS = {"wait": "list", "paused": "list", "active": "list", "prioritized": "zset", "delayed": "zset",
         "completed": "zset", "failed": "zset", "waiting-children": "zset"}


# ------------------------------------------------------------------------------------ drivers
class NodeDriver:
    """The long-lived Node process: one request line in, one reply line out."""

    def __init__(self, env: node_env.NodeEnv) -> None:
        self.proc = subprocess.Popen([env.node, str(DRIVER_JS)], cwd=INTEROP, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue_mod.Queue[str] = queue_mod.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.errors.append), daemon=True).start()
        self.seq = 0

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line)

    def call(self, op: str, timeout: float = 60.0, **req) -> dict:
        self.seq += 1
        self.proc.stdin.write(json.dumps({"seq": self.seq, "op": op, **req}) + "\n")
        self.proc.stdin.flush()
        try:
            reply = json.loads(self.lines.get(timeout=timeout))
        except queue_mod.Empty:
            raise AssertionError(f"node {op} took longer than {timeout} s: {''.join(self.errors)[-3000:]}")
        assert reply["seq"] == self.seq
        assert reply["ok"], f"node {op} failed: {reply['error']}"
        return reply["result"]

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def node():
    driver = NodeDriver(node_env.require_node())
    yield driver
    driver.close()


class Lib:
    """One queue driven by one library: Node (through the driver) or BullMQ for Python."""

    def __init__(self, lib: str, node: NodeDriver | None, url: str, prefix: str, queue: str) -> None:
        self.lib, self.node, self.url, self.prefix, self.queue = lib, node, url, prefix, queue

    def __call__(self, op: str, **kw) -> dict:
        if self.lib != "py":
            return self.node.call(op, lib=self.lib, url=self.url, prefix=self.prefix, queue=self.queue, **kw)
        return asyncio.run(getattr(self, f"_py_{op}")(**kw))

    # BullMQ for Python 3.4.4, one event loop per call
    def _opts(self) -> dict:
        return {"connection": self.url, "prefix": self.prefix}

    async def _with_queue(self, fn):
        from bullmq import Queue

        q = Queue(self.queue, self._opts())
        try:
            return await fn(q)
        finally:
            await q.close()

    async def _until(self, what: str, check, limit_s: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + limit_s
        while not await check():
            assert loop.time() < end, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    async def _worker(self, processor):
        from bullmq import Worker

        return Worker(self.queue, processor, {**self._opts(), "concurrency": 4, "drainDelay": 1})

    async def _py_seed(self, failed: int, waiting: int, delayed: int) -> dict:
        async def go(q):
            f = []
            for i in range(failed):
                opts = {"attempts": 1, **({"priority": 5} if i == 0 else {})}
                f.append((await q.add("fail", {"i": i}, opts)).id)

            async def boom(job, token):
                raise RuntimeError(f"boom {job.id}")
            w = await self._worker(boom)
            try:
                await self._until("jobs to fail", lambda: _count(q, "failed", failed))
            finally:
                await w.close()
            w_ids = [(await q.add("wait", {"i": i})).id for i in range(waiting)]
            d_ids = [(await q.add("later", {"i": i}, {"delay": 3_600_000})).id for i in range(delayed)]
            return {"version": "python", "failed": f, "waiting": w_ids, "delayed": d_ids}
        return await self._with_queue(go)

    async def _py_add(self, n: int) -> dict:
        async def go(q):
            return {"ids": [(await q.add("added", {"i": i})).id for i in range(n)]}
        return await self._with_queue(go)

    async def _py_pause(self) -> dict:
        await self._with_queue(lambda q: q.pause())
        return {}

    async def _py_resume(self) -> dict:
        await self._with_queue(lambda q: q.resume())
        return {}

    async def _py_states(self, ids: list[str]) -> dict:
        async def go(q):
            return {"states": {i: await q.getJobState(i) for i in ids}}
        return await self._with_queue(go)

    async def _py_work(self, ids: list[str]) -> dict:
        handled: list[str] = []

        async def ok(job, token):
            handled.append(job.id)
            return {"ok": job.id}

        async def go(q):
            w = await self._worker(ok)
            try:
                async def done():
                    return all([await q.getJobState(i) == "completed" for i in ids])
                await self._until(f"jobs {ids} to complete", done)
                await asyncio.sleep(0.3)
            finally:
                await w.close()
            return {"handled": handled}
        return await self._with_queue(go)

    async def _py_close(self) -> dict:
        return {}


async def _count(q, state: str, n: int) -> bool:
    return (await q.getJobCounts(state))[state] >= n


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def console_env(monkeypatch, tmp_path, prefix):
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


def lists(client: redis.Redis, prefix: str, queue: str) -> dict[str, list[str]]:
    k = QueueKeys(prefix, queue)
    out = {}
    for suffix, kind in LISTS.items():
        raw = client.lrange(k(suffix), 0, -1) if kind == "list" else client.zrange(k(suffix), 0, -1)
        out[suffix] = [r.decode() for r in raw if not r.startswith(b"0:")]  # pre-v5 markers are no jobs
    return out


def assert_each_once(client: redis.Redis, prefix: str, queue: str, expected: set[str], step: str) -> dict:
    where = lists(client, prefix, queue)
    seen = Counter(i for ids in where.values() for i in ids)
    twice = [i for i, n in seen.items() if n > 1]
    assert not twice, f"after {step}: jobs in two lists or twice in one: {twice} {where}"
    assert set(seen) == expected, f"after {step}: lost {sorted(expected - set(seen))}, extra {set(seen) - expected} {where}"
    pipe = client.pipeline(transaction=False)
    for job_id in expected:
        pipe.exists(QueueKeys(prefix, queue).job(job_id))
    assert all(pipe.execute()), f"after {step}: a job hash is missing"
    return where


# ------------------------------------------------------------------------------------ the matrix
@pytest.mark.timeout(120)
@pytest.mark.parametrize("resume_by", ["lib", "console"])
@pytest.mark.parametrize("pause_by", ["lib", "console"])
@pytest.mark.parametrize("lib", ["v4", "v5", "v6", "py"])
def test_every_job_in_exactly_one_list_whatever_version_pauses_and_resumes(
        lib, pause_by, resume_by, node, redis_url, prefix, sync_redis, console_env, capsys):
    name = f"m-{lib}-{pause_by}-{resume_by}"
    q = Lib(lib, node if lib != "py" else None, redis_url, prefix, name)
    flags = ["--url", redis_url, "--prefix", prefix]
    seeded = q("seed", failed=4, waiting=2, delayed=2)
    if lib != "py":
        assert seeded["version"] == NODE_VERSIONS[lib]
    failed, waiting, delayed = seeded["failed"], seeded["waiting"], seeded["delayed"]
    every = set(failed) | set(waiting) | set(delayed)
    assert_each_once(sync_redis, prefix, name, every, "seed")

    def console(*args: str) -> None:
        code, out, err = cli(capsys, *args, *flags, "--yes")
        assert code == 0, f"{' '.join(args)} -> exit {code}: {err}{out}"

    if pause_by == "lib":
        q("pause")
    else:
        console("pause", name)
    assert sync_redis.hexists(QueueKeys(prefix, name)("meta"), "paused")
    added = q("add", n=1)["ids"]
    every |= set(added)
    assert_each_once(sync_redis, prefix, name, every, "add while paused")
    console("dlq", "retry", name, "--job", failed[0])
    console("dlq", "retry", name, "--all")
    console("promote", name, "--job", delayed[0])
    paused_view = assert_each_once(sync_redis, prefix, name, every, "retry, bulk retry, promote while paused")
    assert not paused_view["failed"] and paused_view["delayed"] == [delayed[1]]

    if resume_by == "lib":
        q("resume")
    else:
        console("resume", name)
    where = assert_each_once(sync_redis, prefix, name, every, "resume")
    runnable = set(failed) | set(waiting) | set(added) | {delayed[0]}
    assert set(where["wait"]) | set(where["prioritized"]) == runnable, where
    assert not where["paused"] and not sync_redis.hexists(QueueKeys(prefix, name)("meta"), "paused")

    worked = q("work", ids=sorted(runnable))
    assert Counter(worked["handled"]) == Counter(runnable), "a job was processed twice, or not at all"
    where = assert_each_once(sync_redis, prefix, name, every, "work")
    assert set(where["completed"]) == runnable and where["delayed"] == [delayed[1]]
    q("close")


# ------------------------------------------------------------------------------------ the rest
def test_vendored_legacy_scripts_equal_the_npm_packages():
    env = node_env.require_node()
    done = subprocess.run([env.node, str(INTEROP / "vendor_scripts.js"), str(LUA_DIR), "--check"], cwd=INTEROP,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(doc["checked"]) == 8 and doc["mismatched"] == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lib", ["v4", "v5", "v6"])
def test_reset_attempts_resets_the_field_the_version_reads(lib, node, redis_url, prefix, sync_redis,
                                                            console_env, capsys):
    """The failed job's attempt count (``attemptsMade`` in v4, ``atm`` in v5/v6) is gone after a
    retry with --reset-attempts, so the library's worker gives it its full attempts again."""
    name = f"reset-{lib}"
    q = Lib(lib, node, redis_url, prefix, name)
    k = QueueKeys(prefix, name)
    [job_id] = q("seed", failed=1, waiting=0, delayed=0)["failed"]
    field = "attemptsMade" if lib == "v4" else "atm"
    assert sync_redis.hget(k.job(job_id), field) == b"1"
    code, out, err = cli(capsys, "dlq", "retry", name, "--job", job_id, "--reset-attempts",
                         "--url", redis_url, "--prefix", prefix, "--yes")
    assert code == 0, err
    assert sync_redis.hget(k.job(job_id), "attemptsMade") is None and sync_redis.hget(k.job(job_id), "atm") is None
    where = lists(sync_redis, prefix, name)
    assert where["wait"] + where["prioritized"] == [job_id]  # priority 5: v6 keeps it, v4/v5 push to wait
    q("close")


@pytest.mark.parametrize("version", ["bullmq:99.0.0", "bullmq-pro:7.0.0", "\x00garbage", "bullmq:3.15.0"])
def test_unknown_meta_version_reads_but_refuses_changes(version, redis_url, prefix, sync_redis, console_env,
                                                         capsys):
    name = f"unk-{uuid.uuid4().hex[:6]}"
    k = QueueKeys(prefix, name)
    now = 1_700_000_000_000
    sync_redis.hset(k("meta"), mapping={"opts.maxLenEvents": "10000", "version": version})
    sync_redis.hset(k.job("1"), mapping={"name": "t", "data": "{}", "opts": "{}", "timestamp": now,
                                         "finishedOn": now, "failedReason": "boom", "atm": "1"})
    sync_redis.zadd(k("failed"), {"1": now})
    sync_redis.hset(k.job("2"), mapping={"name": "t", "data": "{}", "opts": "{}", "timestamp": now, "delay": 9})
    sync_redis.zadd(k("delayed"), {"2": now * 4096})
    flags = ["--url", redis_url, "--prefix", prefix]
    code, out, err = cli(capsys, "status", *flags, "--json")
    assert code == 0, err
    before = {key: sync_redis.dump(key) for key in sync_redis.scan_iter(match=f"{prefix}:{name}:*")}
    for args in (("dlq", "retry", name, "--job", "1"), ("dlq", "retry", name, "--all"),
                 ("promote", name, "--job", "2"), ("pause", name), ("resume", name),
                 ("dlq", "purge", name, "--all")):
        code, out, err = cli(capsys, *args, *flags, "--yes")
        assert code == 4, f"{args}: exit {code} {out}{err}"
        assert "meta.version" in err and "refuses" in err, err
    after = {key: sync_redis.dump(key) for key in sync_redis.scan_iter(match=f"{prefix}:{name}:*")}
    assert after == before


# ------------------------------------------------------------------------------------ mixed versions
def _console(capsys, redis_url: str, prefix: str, *args: str) -> tuple[int, str]:
    code, out, err = cli(capsys, *args, "--url", redis_url, "--prefix", prefix, "--yes")
    return code, err + out


@pytest.mark.timeout(120)
def test_v5_paused_then_v6_connected_is_refused_until_the_console_resumes(node, redis_url, prefix, sync_redis,
                                                                          console_env, capsys):
    """meta.version says 6 but a legacy paused list holds jobs: retry and promote are refused with the
    reason (exit 4); the console's resume merges both lists (as v6 does); then everything runs."""
    name = "mixed-5-6"
    v5, v6 = (Lib(v, node, redis_url, prefix, name) for v in ("v5", "v6"))
    seeded = v5("seed", failed=3, waiting=2, delayed=1)
    failed, waiting, delayed = seeded["failed"], seeded["waiting"], seeded["delayed"]
    v5("pause")
    added = v6("add", n=1)["ids"]  # v6 connects: meta.version is now 6; its add goes to wait
    every = set(failed) | set(waiting) | set(delayed) | set(added)
    where = assert_each_once(sync_redis, prefix, name, every, "v5 pause, v6 add")
    assert sorted(where["paused"]) == sorted(waiting) and where["wait"] == added
    before = {key: sync_redis.dump(key) for key in sync_redis.scan_iter(match=f"{prefix}:{name}:*")}
    for args in (("dlq", "retry", name, "--job", failed[0]), ("dlq", "retry", name, "--all"),
                 ("promote", name, "--job", delayed[0])):
        code, text = _console(capsys, redis_url, prefix, *args)
        assert code == 4 and "legacy paused list holds 2 jobs" in text, (args, code, text)
    assert {key: sync_redis.dump(key) for key in sync_redis.scan_iter(match=f"{prefix}:{name}:*")} == before
    code, text = _console(capsys, redis_url, prefix, "resume", name)
    assert code == 0, text
    where = assert_each_once(sync_redis, prefix, name, every, "console resume")
    assert set(where["wait"]) == set(waiting) | set(added) and not where["paused"]
    for args in (("dlq", "retry", name, "--all"), ("promote", name, "--job", delayed[0])):
        code, text = _console(capsys, redis_url, prefix, *args)
        assert code == 0, text
    v6("work", ids=sorted(every))
    assert set(assert_each_once(sync_redis, prefix, name, every, "work")["completed"]) == every
    v5("close")
    v6("close")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pauser, adder, resumer", [("v6", "v5", "console"), ("v4", "v5", "v4"),
                                                    ("v5", "v4", "v5"), ("v4", "v5", "console")])
def test_mixed_versions_around_the_console_lose_nothing(pauser, adder, resumer, node, redis_url, prefix,
                                                        sync_redis, console_env, capsys):
    """One version pauses, another connects and adds (meta.version changes), the console retries,
    bulk retries and promotes, one of them resumes: every job in exactly one list, then completed."""
    name = f"mixed-{pauser}-{adder}-{resumer}"
    libs = {v: Lib(v, node, redis_url, prefix, name) for v in {pauser, adder, resumer} - {"console"}}
    seeded = libs[pauser]("seed", failed=3, waiting=2, delayed=2)
    failed, waiting, delayed = seeded["failed"], seeded["waiting"], seeded["delayed"]
    libs[pauser]("pause")
    added = libs[adder]("add", n=1)["ids"]
    every = set(failed) | set(waiting) | set(delayed) | set(added)
    assert_each_once(sync_redis, prefix, name, every, f"{pauser} pause, {adder} add")
    for args in (("dlq", "retry", name, "--job", failed[0]), ("dlq", "retry", name, "--all"),
                 ("promote", name, "--job", delayed[0])):
        code, text = _console(capsys, redis_url, prefix, *args)
        assert code == 0, (args, text)
    assert_each_once(sync_redis, prefix, name, every, "console retry, bulk retry, promote")
    if resumer == "console":
        code, text = _console(capsys, redis_url, prefix, "resume", name)
        assert code == 0, text
    else:
        libs[resumer]("resume")
    where = assert_each_once(sync_redis, prefix, name, every, f"{resumer} resume")
    runnable = every - {delayed[1]}
    assert set(where["wait"]) | set(where["prioritized"]) == runnable and not where["paused"], where
    worker = adder
    libs[worker]("work", ids=sorted(runnable))
    assert set(assert_each_once(sync_redis, prefix, name, every, "work")["completed"]) == runnable
    for lib in libs.values():
        lib("close")


# ------------------------------------------------------------------------------------ reads
def _json(capsys, *args: str) -> dict:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.timeout(120)
def test_v4_queue_name_with_colons_under_the_default_prefix(node, redis_url, sync_redis, console_env, capsys):
    """BullMQ 4 allows ':' in queue names; without --prefix the queue is bull + the rest of the key."""
    tag = f"qct{uuid.uuid4().hex[:10]}"
    name = f"{tag}:colon:name"
    try:
        q = Lib("v4", node, redis_url, "bull", name)
        q("add", n=1)
        doc = _json(capsys, "status", "--url", redis_url)
        mine = [(r["namespace"], r["queue"]) for r in doc["queues"] if tag in r["namespace"] + r["queue"]]
        assert mine == [("bull", name)]
        page = _json(capsys, "jobs", name, "--url", redis_url)
        assert page["total"] == 1 and [j["id"] for j in page["jobs"]] == ["1"]
        q("close")
    finally:
        keys = list(sync_redis.scan_iter(match=f"bull:{tag}:*", count=1000))
        if keys:
            sync_redis.delete(*keys)


@pytest.mark.timeout(120)
def test_v4_delay_marker_in_wait_is_no_waiting_job(node, redis_url, prefix, sync_redis, console_env, capsys):
    name = "marker4"
    q = Lib("v4", node, redis_url, prefix, name)
    q("seed", failed=0, waiting=0, delayed=1)
    [marker] = sync_redis.lrange(QueueKeys(prefix, name)("wait"), 0, -1)
    assert marker.startswith(b"0:"), "BullMQ 4 puts a 0:<ts> delay marker into wait"
    flags = ["--url", redis_url, "--prefix", prefix]
    [rec] = _json(capsys, "status", *flags)["queues"]
    page = _json(capsys, "jobs", name, "--state", "waiting", *flags)
    assert rec["counts"]["waiting"] == 0 and page["total"] == 0 and page["jobs"] == []
    q("close")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lib", ["v4", "v5"])
def test_jobs_in_the_legacy_paused_list_are_waiting_as_the_library_says(lib, node, redis_url, prefix, sync_redis,
                                                                        console_env, capsys):
    name = f"pl-{lib}"
    q = Lib(lib, node, redis_url, prefix, name)
    waiting = q("seed", failed=0, waiting=2, delayed=0)["waiting"]
    q("pause")
    assert sorted(lists(sync_redis, prefix, name)["paused"]) == sorted(waiting)
    library = q("states", ids=waiting)["states"]
    flags = ["--url", redis_url, "--prefix", prefix]
    page = _json(capsys, "jobs", name, "--state", "waiting", *flags)
    assert {j["id"]: j["native_state"] for j in page["jobs"]} == library == {i: "waiting" for i in waiting}
    detail = _json(capsys, "job", name, waiting[0], *flags)
    assert detail["summary"]["native_state"] == "waiting" and detail["extra"]["list"].startswith("paused")
    [rec] = _json(capsys, "status", *flags)["queues"]
    assert rec["paused"] is True and rec["native"]["paused"] == 2
    q("close")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("lib", ["v5", "v6"])
@pytest.mark.parametrize("global_max", [None, 3])
def test_rate_limit_ttl_as_getRateLimitTtl_computes_it(lib, global_max, node, redis_url, prefix, console_env,
                                                       capsys):
    name = f"rl-{lib}-{global_max}"
    q = Lib(lib, node, redis_url, prefix, name)
    q("add", n=2)
    flags = ["--url", redis_url, "--prefix", prefix]
    [rec] = _json(capsys, "status", *flags)["queues"]
    assert rec["rate_limit_ttl_ms"] == 0 and q("ttl")["ttl"] <= 0
    q("ratelimit", ms=600_000, **({"max": global_max} if global_max else {}))
    before = q("ttl")["ttl"]
    [rec] = _json(capsys, "status", *flags)["queues"]
    after = q("ttl")["ttl"]
    assert 0 < after <= rec["rate_limit_ttl_ms"] <= before, (after, rec["rate_limit_ttl_ms"], before)
    # the queue view's title shows every QueueStatus.info entry
    [st] = asyncio.run(_statuses(redis_url, prefix))
    assert st.info["rate limited"].startswith(f"{st.rate_limit_ttl_ms} ms more")
    q("close")


async def _statuses(url: str, prefix: str):
    from backends.registry import ConnectOptions, open_readers

    [reader] = await open_readers(url, ConnectOptions(prefixes=[prefix], store_prefix=f"{prefix}:console",
                                                      client_name=f"qc-test-{uuid.uuid4().hex[:8]}"))
    try:
        return await reader.statuses((await reader.discover()).queues)
    finally:
        await reader.close()
