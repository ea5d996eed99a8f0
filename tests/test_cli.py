"""The headless command line (console.cli) against a real Redis: output shapes, exit codes, safety."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from bullmq import Queue, Worker

from backends.urls import redact
from tests.cli_harness import isolated_env, run  # noqa: F401 (isolated_env: autouse)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "qc-test-secret-7f3a"
NATIVE_TYPES = ("active", "completed", "delayed", "failed", "prioritized", "waiting", "waiting-children", "paused")


def assert_one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("queue-console: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, err)


def with_password(url: str) -> str:
    """The test server's URL carrying a password: Redis accepts any password for a `nopass` user
    given with an explicit user name (AUTH default <pw>), so redaction is tested end to end."""
    parts = urlsplit(url)
    if parts.password:
        return url
    netloc = f"default:{SECRET}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def secret_of(url: str) -> str:
    return urlsplit(url).password or SECRET


def bullmq(redis_url: str, prefix: str, name: str, coro_fn):
    """Run ``coro_fn(queue)`` with a BullMQ (Python) Queue, on a private event loop."""

    async def go():
        q = Queue(name, {"connection": redis_url, "prefix": prefix})
        try:
            return await coro_fn(q)
        finally:
            await q.close()

    return asyncio.run(go())


def produce_and_work(redis_url: str, prefix: str, name: str, ok: int, bad: int, waiting: int) -> dict:
    """ok+bad jobs processed by a real BullMQ worker, then `waiting` more left waiting; returns getJobCounts."""

    async def go(q: Queue):
        for i in range(ok):
            await q.add("ok", {"i": i})
        for i in range(bad):
            await q.add("bad", {"i": i})

        async def proc(job, token):
            if job.name == "bad":
                raise RuntimeError(f"bad job {job.data['i']}")
            return {"done": job.data["i"]}

        w = Worker(name, proc, {"connection": redis_url, "prefix": prefix})
        try:
            deadline = time.monotonic() + 10
            while True:
                c = await q.getJobCounts("completed", "failed")
                if c["completed"] == ok and c["failed"] == bad:
                    break
                assert time.monotonic() < deadline, c
                await asyncio.sleep(0.02)
        finally:
            await w.close()
        for i in range(waiting):
            await q.add("later", {"i": i})
        return await q.getJobCounts(*NATIVE_TYPES)

    return bullmq(redis_url, prefix, name, go)


def job_hash(r, base: str, job_id: str, **fields) -> None:
    defaults = {"name": f"job-{job_id}", "data": json.dumps({"id": job_id}), "opts": "{}",
                "timestamp": 1_700_000_000_000, "delay": 0, "priority": 0}
    defaults.update(fields)
    r.hset(f"{base}:{job_id}", mapping=defaults)


# ---------------------------------------------------------------------------- status


def test_status_json_shape_counts_and_redaction(capsys, redis_url, prefix):
    native = produce_and_work(redis_url, prefix, "orders", ok=3, bad=2, waiting=4)
    url = with_password(redis_url)
    code, out, err = run(capsys, "status", "--url", url, "--prefix", prefix, "--json")
    assert code == 0, err
    assert secret_of(url) not in out + err
    doc = json.loads(out)
    assert set(doc) == {"queues", "notes", "connections"}
    assert doc["notes"] == []
    assert doc["connections"] == [{"url": redact(url)}]  # Redis: no standby/lag fields
    [rec] = doc["queues"]
    assert {"connection", "backend", "queue", "paused", "counts", "native"} <= set(rec)
    assert rec["connection"] == redact(url)
    assert "***" in rec["connection"]
    assert rec["backend"] == "bullmq"
    assert rec["queue"] == "orders"
    assert rec["namespace"] == prefix
    assert rec["paused"] is False
    assert rec["native"] == native
    assert rec["counts"] == {"waiting": 4, "delayed": 0, "active": 0, "completed": 3, "failed": 2,
                             "cancelled": None, "waiting_children": 0}


def test_status_flags_before_the_verb_and_several_urls(capsys, redis_url, prefix, sync_redis):
    sync_redis.hset(f"{prefix}:q1:meta", mapping={"opts.maxLenEvents": 10000})
    sync_redis.lpush(f"{prefix}:q1:wait", "1", "2")
    second = with_password(redis_url)
    code, out, err = run(capsys, "--url", redis_url, "--url", second, "--prefix", prefix, "status", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert sorted(r["connection"] for r in doc["queues"]) == sorted([redact(redis_url), redact(second)])
    assert all(r["counts"]["waiting"] == 2 for r in doc["queues"])
    assert secret_of(second) not in out


def test_status_reads_queue_console_url(capsys, redis_url, prefix, sync_redis, monkeypatch):
    sync_redis.hset(f"{prefix}:envq:meta", mapping={"opts.maxLenEvents": 10000, "paused": 1})
    monkeypatch.setenv("QUEUE_CONSOLE_URL", redis_url)
    code, out, err = run(capsys, "status", "--prefix", prefix, "--json")
    assert code == 0, err
    [rec] = json.loads(out)["queues"]
    assert (rec["queue"], rec["paused"]) == ("envq", True)


def test_status_table(capsys, redis_url, prefix, sync_redis):
    r = sync_redis
    r.hset(f"{prefix}:alpha:meta", mapping={"opts.maxLenEvents": 10000})
    for i in range(1234):
        r.lpush(f"{prefix}:alpha:wait", f"j{i}")
    r.set(f"{prefix}:oldbull:id", 1)
    r.zadd(f"{prefix}:oldbull:failed", {"1": 1})
    code, out, err = run(capsys, "status", "--url", redis_url, "--prefix", prefix)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["QUEUE", "BACKEND", "PAUSED", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "FAILED",
                                "CANCELLED", "WAITING_CHILDREN"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["alpha"] == ["alpha", "bullmq", "no", "1,234", "0", "0", "0", "0", "–", "0"]
    assert rows["oldbull"][:8] == ["oldbull", "bull", "no", "0", "0", "0", "0", "1"]
    assert rows["oldbull"][8:] == ["–", "–"]  # bull has neither cancelled nor waiting_children


def test_status_with_no_queues_notes_the_prefixes(capsys, redis_url, prefix):
    code, out, err = run(capsys, "status", "--url", redis_url, "--prefix", prefix, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["queues"] == []
    [note] = doc["notes"]
    assert f"{prefix}:*:meta" in note and f"{prefix}:*:id" in note
    assert "--prefix" in note

    code, out, err = run(capsys, "status", "--url", redis_url, "--prefix", prefix)
    assert code == 0
    assert out == ""
    assert f"{prefix}:*:meta" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------- jobs


def _failed_with_ties(r, prefix: str, name: str = "dlq") -> list[str]:
    base = f"{prefix}:{name}"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    members = {f"f{i:02d}": 1_700_000_000_000 + (i // 3) for i in range(11)}  # ties in threes
    for job_id, score in members.items():
        job_hash(r, base, job_id, finishedOn=score, failedReason=f"error of {job_id}", atm=2)
    r.zadd(f"{base}:failed", members)
    return [x.decode() for x in r.zrevrange(f"{base}:failed", 0, -1)]


def test_jobs_failed_json_with_limit_and_cursor(capsys, redis_url, prefix, sync_redis):
    expected = _failed_with_ties(sync_redis, prefix)
    seen, cursor, pages = [], None, 0
    while True:
        argv = ["jobs", "dlq", "--state", "failed", "--limit", "3", "--json", "--url", redis_url, "--prefix", prefix]
        if cursor:
            argv += ["--cursor", cursor]
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        doc = json.loads(out)
        assert set(doc) == {"connection", "backend", "queue", "state", "total", "next_cursor", "jobs"}
        assert (doc["queue"], doc["state"], doc["total"], doc["backend"]) == ("dlq", "failed", 11, "bullmq")
        assert len(doc["jobs"]) <= 3
        for job in doc["jobs"]:
            assert job["state"] == "failed"
            assert job["failed_reason"]["text"] == f"error of {job['id']}"
            assert job["attempts_made"] == 2
        seen.extend(j["id"] for j in doc["jobs"])
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 4


def test_jobs_text_output(capsys, redis_url, prefix, sync_redis):
    expected = _failed_with_ties(sync_redis, prefix)
    code, out, err = run(capsys, "jobs", "dlq", "--state", "failed", "--limit", "4", "--url", redis_url,
                         "--prefix", prefix)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "failed jobs of dlq (bullmq): 4 of 11"
    assert [line.split()[0] for line in lines[1:5]] == expected[:4]
    assert f"error of {expected[0]}" in lines[1]
    assert "attempts=2" in lines[1]
    assert lines[-1].startswith("more: --cursor ")


def test_jobs_default_state_is_waiting_from_bullmq(capsys, redis_url, prefix):
    produce_and_work(redis_url, prefix, "fresh", ok=0, bad=0, waiting=5)
    code, out, err = run(capsys, "jobs", "fresh", "--json", "--url", redis_url, "--prefix", prefix)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["state"] == "waiting"
    assert [j["id"] for j in doc["jobs"]] == ["1", "2", "3", "4", "5"]
    assert doc["next_cursor"] is None


def test_qualified_name_resolves_bull_versus_bullmq(capsys, redis_url, prefix, sync_redis):
    r = sync_redis
    r.hset(f"{prefix}:new:same:meta", mapping={"opts.maxLenEvents": 10000})
    r.lpush(f"{prefix}:new:same:wait", "a1")
    job_hash(r, f"{prefix}:new:same", "a1")
    r.set(f"{prefix}:old:same:id", 1)
    r.lpush(f"{prefix}:old:same:wait", "b1", "b2")
    job_hash(r, f"{prefix}:old:same", "b1")
    job_hash(r, f"{prefix}:old:same", "b2")
    common = ["--url", redis_url, "--prefix", f"{prefix}:new", "--prefix", f"{prefix}:old"]

    code, out, err = run(capsys, "jobs", "same", *common)
    assert code == 2
    assert_one_line_error(err, "ambiguous", "'same'")

    code, out, err = run(capsys, "jobs", "bull:same", "--json", *common)
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["backend"], [j["id"] for j in doc["jobs"]]) == ("bull", ["b1", "b2"])

    code, out, err = run(capsys, "jobs", "bull:same", "--state", "waiting_children", *common)
    assert code == 2  # bull has no such state: bad input, not a backend failure
    assert_one_line_error(err, "waiting_children")

    code, out, err = run(capsys, "jobs", "bullmq:same", "--json", *common)
    assert code == 0, err
    assert [j["id"] for j in json.loads(out)["jobs"]] == ["a1"]


def test_ambiguous_queue_in_two_prefixes_then_pinned(capsys, redis_url, prefix, sync_redis):
    for pfx in (f"{prefix}:east", f"{prefix}:west"):
        sync_redis.hset(f"{pfx}:mail:meta", mapping={"opts.maxLenEvents": 10000})
    code, out, err = run(capsys, "jobs", "mail", "--url", redis_url, "--prefix", f"{prefix}:east",
                         "--prefix", f"{prefix}:west")
    assert code == 2
    assert_one_line_error(err, "ambiguous", f"{prefix}:east", f"{prefix}:west")
    assert out == ""
    code, out, err = run(capsys, "jobs", "mail", "--json", "--url", redis_url, "--prefix", f"{prefix}:west")
    assert code == 0, err
    assert json.loads(out)["total"] == 0


# ---------------------------------------------------------------------------- job


def test_job_json_from_a_real_worker(capsys, redis_url, prefix):
    produce_and_work(redis_url, prefix, "pay", ok=1, bad=1, waiting=0)
    code, out, err = run(capsys, "job", "pay", "2", "--json", "--url", redis_url, "--prefix", prefix)
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["queue"], doc["backend"]) == ("pay", "bullmq")
    assert doc["summary"]["id"] == "2"
    assert doc["summary"]["state"] == "failed"
    assert doc["summary"]["failed_reason"]["text"] == "bad job 0"
    assert json.loads(doc["data"]["text"]) == {"i": 0}
    assert doc["data"]["truncated"] is False and doc["data"]["is_binary"] is False
    assert "RuntimeError: bad job 0" in doc["stacktrace"][0]["text"]
    assert doc["logs"] == {"lines": [], "total": 0}

    code, out, err = run(capsys, "job", "pay", "1", "--url", redis_url, "--prefix", prefix)
    assert code == 0, err
    assert out.splitlines()[0] == "job 1 of pay (bullmq)"
    assert "  state     completed (completed)" in out
    assert "return value:" in out and '"done": 0' in out


def test_job_missing_is_exit_2(capsys, redis_url, prefix):
    produce_and_work(redis_url, prefix, "pay", ok=0, bad=0, waiting=1)
    code, out, err = run(capsys, "job", "pay", "999", "--url", redis_url, "--prefix", prefix)
    assert code == 2
    assert_one_line_error(err, "'999'")


def test_hostile_payloads_print_without_escape_bytes(capsys, redis_url, prefix, sync_redis):
    r = sync_redis
    evil_queue = "evil\x1b[2J"
    base = f"{prefix}:{evil_queue}"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000})
    job_hash(
        r, base, "x1",
        name="\x1b]0;owned\x07\u202eexe.txt",
        data=json.dumps({"msg": "\x1b[31m[bold]shout[/bold]\x1b[0m", "c1": "\x9b2J"}),
        failedReason="\x1b[1mbad\x1b[0m [red]markup[/red]\r\nsecond line",
        stacktrace=json.dumps(["trace \x1b[5mblink", "\x9d0;title\x9c"]),
        returnvalue=b"\x1b[?1049h\xff",
        finishedOn=1_700_000_000_000,
    )
    r.zadd(f"{base}:failed", {"x1": 1_700_000_000_000})
    r.rpush(f"{base}:x1:logs", "log \x1b[2K line", "\x07bell")
    common = ["--url", redis_url, "--prefix", prefix]

    outputs = []
    for argv in (["job", evil_queue, "x1"], ["job", evil_queue, "x1", "--json"],
                 ["jobs", evil_queue, "--state", "failed"], ["jobs", evil_queue, "--state", "failed", "--json"],
                 ["status"], ["status", "--json"]):
        code, out, err = run(capsys, *argv, *common)
        assert code == 0, (argv, err)
        for raw in ("\x1b", "\x07", "\x9b", "\x9c", "\x9d", "\u202e", "\r"):
            assert raw not in out, (argv, repr(raw))
            assert raw not in err, (argv, repr(raw))
        outputs.append(out)
    text = outputs[0]
    assert "[bold]shout[/bold]" in text  # markup stays literal
    assert "[red]markup[/red]" in text
    assert "\\x1b[31m" in text or "\\u001b[31m" in text
    assert "\\u202e" in text
    assert "trace \\x1b[5mblink" in text
    assert "log \\x1b[2K line" in text
    assert "binary" in text  # the return value is not UTF-8
    assert json.loads(outputs[1])["summary"]["name"] == "\x1b]0;owned\x07\u202eexe.txt"  # JSON keeps the truth
    assert "evil\\x1b[2J" in outputs[4]


# ---------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(("argv", "words"), [
    (["status", "--url", "ftp://host/x"], ["unknown URL scheme", "ftp"]),
    (["status", "--url", "mysql://root:hunter2@db/x"], ["unknown URL scheme"]),
    (["status", "--url", "redis://localhost:port/0"], ["bad port"]),
    (["status", "--url", "redis://:hunter2@localhost/zero"], ["must be a number"]),
    (["status", "--url", "redis://[::1/0"], ["malformed"]),
    (["status", "--url", "localhost:6379"], ["not a connection URL"]),
    (["status", "--url", "redis://127.0.0.1:1/0?socket_timeout=abc"], ["socket_timeout"]),
    (["--refresh", "0", "status", "--url", "redis://127.0.0.1:1/0"], ["refresh"]),
    (["status", "--url", "redis://127.0.0.1:1/0", "--context", "nope"], ["unknown context", "'nope'"]),
])
def test_bad_input_is_exit_2_before_connecting(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, *words)
    assert "hunter2" not in err
    assert out == ""


def test_bad_env_url_is_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("QUEUE_CONSOLE_URL", "gopher://:hunter2@x/")
    code, out, err = run(capsys, "status")
    assert code == 2
    assert_one_line_error(err, "QUEUE_CONSOLE", "gopher")
    assert "hunter2" not in err


def test_usage_errors_against_a_real_server(capsys, redis_url, prefix, sync_redis):
    sync_redis.hset(f"{prefix}:real:meta", mapping={"opts.maxLenEvents": 10000})
    common = ["--url", redis_url, "--prefix", prefix]

    code, out, err = run(capsys, "jobs", "nosuchqueue", *common)
    assert code == 2
    assert_one_line_error(err, "'nosuchqueue'", "bullmq:real")

    for state in ("bogus", "cancelled", "paused"):
        code, out, err = run(capsys, "jobs", "real", "--state", state, *common)
        assert code == 2, state
        assert_one_line_error(err, repr(state), "waiting")

    for limit in ("0", "1001", "-3"):
        code, out, err = run(capsys, "jobs", "real", "--limit", limit, *common)
        assert code == 2, limit
        assert_one_line_error(err, "--limit", limit)

    code, out, err = run(capsys, "jobs", "real", "--state", "failed", "--cursor", "garbage", *common)
    assert code == 2  # a cursor the reader never made is bad input
    assert_one_line_error(err, "cursor", "'garbage'")


def test_non_numeric_limit_is_argparse_exit_2(capsys):
    code, out, err = run(capsys, "jobs", "q", "--limit", "lots")
    assert code == 2
    assert "invalid int value: 'lots'" in err
    assert "Traceback" not in err


def test_refused_connection_is_exit_3_quickly_without_password(capsys):
    start = time.monotonic()
    code, out, err = run(capsys, "status", "--url", "redis://:secret@127.0.0.1:1/0", "--connect-timeout", "2")
    elapsed = time.monotonic() - start
    assert code == 3
    assert elapsed < 4
    assert_one_line_error(err, "127.0.0.1:1")
    assert "secret" not in err
    assert out == ""


@pytest.mark.parametrize("url", ["postgresql://app:secret@127.0.0.1:1/jobs", "rediss://:secret@127.0.0.1:1/0",
                                 "redis://127.0.0.1:1/0?password=secret"])
def test_refused_connection_other_schemes(capsys, url):
    code, out, err = run(capsys, "status", "--url", url, "--connect-timeout", "2")
    assert code == 3
    assert_one_line_error(err, "127.0.0.1:1")
    assert "secret" not in err


def test_refused_connection_via_the_real_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_CONSOLE_")}
    env["QUEUE_CONSOLE_CONFIG"] = str(tmp_path / "none.toml")
    (tmp_path / "none.toml").write_text("")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "console", "jobs", "q", "--url", "redis://user:secret@127.0.0.1:1/0",
         "--connect-timeout", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=30,
    )
    assert time.monotonic() - start < 10
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert_one_line_error(proc.stderr, "cannot connect", "127.0.0.1:1")
    assert "secret" not in proc.stderr


def test_wrong_password_is_exit_3_without_the_password(capsys, redis_url):
    parts = urlsplit(redis_url)
    bad = f"redis://nosuchuser:{SECRET}@{parts.hostname}:{parts.port}/0"
    code, out, err = run(capsys, "status", "--url", bad)
    assert code == 3
    assert_one_line_error(err, f"{parts.hostname}:{parts.port}")
    assert SECRET not in err


def test_headless_verb_never_imports_textual(redis_url, prefix, sync_redis, tmp_path):
    sync_redis.hset(f"{prefix}:hq:meta", mapping={"opts.maxLenEvents": 10000})
    (tmp_path / "none.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUE_CONSOLE_")}
    env["QUEUE_CONSOLE_CONFIG"] = str(tmp_path / "none.toml")
    code = (
        "import sys\n"
        "from console.cli import main\n"
        "try:\n"
        f"    main(['status', '--json', '--url', {redis_url!r}, '--prefix', {prefix!r}])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print('TEXTUAL' if any(m.split('.')[0] == 'textual' for m in sys.modules) else 'CLEAN', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "CLEAN"
    assert json.loads(proc.stdout)["queues"][0]["queue"] == "hq"


def test_silent_server_is_exit_3_within_the_connect_timeout(capsys):
    """A port that accepts connections but never answers (a hung server): no waiting for the op timeout."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accept(): the kernel completes the handshake, nobody replies
        port = listener.getsockname()[1]
        start = time.monotonic()
        code, out, err = run(capsys, "status", "--url", f"redis://:secret@127.0.0.1:{port}/0",
                             "--connect-timeout", "1")
        elapsed = time.monotonic() - start
    assert code == 3
    assert elapsed < 3
    assert_one_line_error(err, f"127.0.0.1:{port}", "timed out")
    assert "secret" not in err
