"""Operator experience of the CLI (issue 12/15): pipes, progress, dry runs of pause/resume, time and
unit formatting, --version, --help, completion, the config file's location and check.

Pipes and progress run the real CLI in a subprocess; the rest runs ``console.cli.main`` in process.
Gello (no pause) needs its fixed key layout in a Redis of its own: a private redis-server (ports
6461-6469).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from backends.registry import backend_names
from console import formatting as fmt
from console.cli import build_parser
from tests.cli_harness import isolated_env, run  # noqa: F401 (isolated_env: autouse)
from tests.fixed_data import T0, write_fixed_queue
from tests.private_redis import PrivateRedis

ROOT = Path(__file__).resolve().parents[1]


def cli_command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "console", *argv]


def run_cli(*argv: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*argv), capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **(env or {})}, **kw)


# ------------------------------------------------------------------------------------------ pipes
def test_jobs_json_into_head_exits_quietly(redis_url, prefix, sync_redis, tmp_path):
    """`queue-console jobs Q --json | head -c 10`: head gets its 10 bytes, the CLI ends as a writer
    whose reader went away does (exit 141), with nothing on stderr: no "internal error", no traceback."""
    write_fixed_queue(sync_redis, prefix, "big", failed=0, completed=0, waiting=1000, delayed=0)
    err = tmp_path / "err.txt"
    cmd = shlex.join(cli_command("jobs", "big", "--json", "--limit", "1000", "--url", redis_url, "--prefix", prefix))
    script = f'{cmd} 2>{shlex.quote(str(err))} | head -c 10; echo " ${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.stdout.startswith("{\n  \"conne"), proc.stdout  # 10 bytes of the JSON
    assert proc.stdout.endswith(" 141\n"), proc.stdout
    assert err.read_text() == ""


def test_dry_run_result_is_on_stdout(capsys, redis_url, prefix, sync_redis):
    """`dlq retry --dry-run | less` shows the preview: the result is on stdout, nothing on stderr."""
    write_fixed_queue(sync_redis, prefix, "mail", failed=3, completed=0, waiting=0, delayed=0)
    code, out, err = run(capsys, "dlq", "retry", "mail", "--all", "--dry-run", "--url", redis_url, "--prefix", prefix)
    assert code == 0, err
    assert "3 failed jobs of bullmq:" in out, out
    assert "dry run: retry of 3 selected jobs: 3 would be retried now" in out and "nothing changed" in out, out
    assert err == ""
    assert sync_redis.zcard(f"{prefix}:mail:failed") == 3


# --------------------------------------------------------------------------------------- progress
def test_progress_off_a_terminal_is_whole_lines(redis_url, prefix, sync_redis, tmp_path):
    """stderr redirected to a file: one line per update, no carriage returns, the last state last."""
    write_fixed_queue(sync_redis, prefix, "bulk", failed=2500, completed=0, waiting=0, delayed=0)
    err = tmp_path / "err.txt"
    with err.open("w") as fh:
        proc = subprocess.run(cli_command("dlq", "retry", "bulk", "--all", "--yes", "--url", redis_url,
                                          "--prefix", prefix), stdout=subprocess.PIPE, stderr=fh, text=True,
                              timeout=200, cwd=ROOT)
    assert proc.returncode == 0, err.read_text()
    text = err.read_text()
    assert "\r" not in text, repr(text)
    progress = [line for line in text.splitlines() if line.startswith("retry: ")]
    assert progress and all(re.fullmatch(r"retry: [\d,]+/2,500", line) for line in progress), text
    assert progress[-1] == "retry: 2,500/2,500", text
    assert "bullmq:bulk: retry: 2500 of 2500, done" in proc.stdout, proc.stdout  # the result: stdout


def test_progress_rate_is_bounded_off_a_terminal_and_redrawn_on_one(tmp_path):
    from console.cli_actions import Progress

    path = tmp_path / "progress.txt"
    with path.open("w") as fh:
        p = Progress("retry", stream=fh, interval=3600)
        for i in range(1, 101):
            p(i, 100)
        p.end()
    assert path.read_text() == "retry: 1/100\nretry: 100/100\n"  # first, then (at most every hour) the last

    import pty

    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            p = Progress("purge", stream=tty)
            p(1, 2)
            p(2, 2)
            p.end()
        got = b""
        while not got.endswith(b"\n"):
            got += os.read(master, 1000)
        assert got.replace(b"\r\n", b"\n") == b"\rpurge: 1/2\rpurge: 2/2\n"
    finally:
        os.close(master)
        os.close(slave)


# ------------------------------------------------------------------------------ pause --dry-run
@pytest.fixture
def private():
    server = PrivateRedis(ports=range(6461, 6470))
    yield server
    server.close()


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    return {k: client.dump(k) for k in client.keys("*")}


async def test_pause_and_resume_dry_run_say_what_would_happen_and_change_nothing(private, capsys):
    """One Redis with BullMQ queues (one already paused) and a Gello queue (no pause): the dry run
    names each kind, exits 0, and the server holds exactly what it held before (every key DUMPed)."""
    import redis.asyncio as aioredis

    from tests.gello_reference import RedisGello

    sync = private.client()
    write_fixed_queue(sync, "app", "orders", failed=1, completed=0, waiting=2, delayed=0)
    write_fixed_queue(sync, "app", "held", failed=0, completed=0, waiting=1, delayed=0, paused=True)
    client = aioredis.Redis.from_url(private.url)
    await RedisGello(client, "gello").enqueue("mails", "send", {"to": "a"})
    await client.aclose()
    flags = ["--url", private.url, "--prefix", "app"]
    before = snapshot(sync)

    code, out, err = await asyncio.to_thread(run, capsys, "pause", "--all", "--dry-run", *flags)
    assert code == 0, err
    assert re.search(r"would pause \(1\):\n  bullmq:orders at ", out), out
    assert re.search(r"already paused, stays paused \(1\):\n  bullmq:held at ", out), out
    assert re.search(r"cannot be paused \(1\):\n  gello:mails at .*: Gello has no pause", out), out
    assert out.rstrip().endswith("dry run: pause of 1 queue; nothing changed"), out
    assert snapshot(sync) == before

    code, out, err = await asyncio.to_thread(run, capsys, "pause", "--all", "--dry-run", "--json", *flags)
    assert code == 0, err
    data = json.loads(out)
    assert data["dry_run"] is True and [q["queue"] for q in data["would"]] == ["orders"]
    assert [q["queue"] for q in data["unchanged"]] == ["held"]
    assert [(c["backend"], c["queue"]) for c in data["cannot"]] == [("gello", "mails")]

    # one queue; and read-only mode: cannot, and why
    code, out, err = await asyncio.to_thread(run, capsys, "pause", "held", "--dry-run", *flags)
    assert code == 0 and "already paused, stays paused (1)" in out and "would pause (0): nothing" in out, out
    code, out, err = await asyncio.to_thread(run, capsys, "--read-only", "pause", "orders", "--dry-run", *flags)
    assert code == 0 and "cannot be paused (1):" in out and "read-only" in out, (out, err)
    assert snapshot(sync) == before

    # resume --all --dry-run after a real global pause, with one paused queue deleted since
    code, out, err = await asyncio.to_thread(run, capsys, "pause", "--all", "--yes", *flags)
    assert code == 0, err
    for key in sync.scan_iter(match="app:orders:*"):
        sync.delete(key)
    write_fixed_queue(sync, "app", "other", failed=0, completed=0, waiting=1, delayed=0, paused=True)
    sync.hset("queue-console:paused", "bullmq\x1fapp\x1fother", "1")  # remembered, as pause --all does
    before = snapshot(sync)
    code, out, err = await asyncio.to_thread(run, capsys, "resume", "--all", "--dry-run", *flags)
    assert code == 0, err
    assert re.search(r"would resume \(1\):\n  bullmq:other at ", out), out
    assert "would forget 1 remembered paused queue no longer found at" in out and "app:orders" in out, out
    assert out.rstrip().endswith("dry run: resume of 1 queue; nothing changed"), out
    assert snapshot(sync) == before


async def test_pause_dry_run_on_pgboss_installs_no_hold_and_changes_no_row(postgres_url, capsys, monkeypatch):
    """pg-boss 12: the dry run names the queue it would hold, with the notes on how; no trigger, no
    row, no console schema is written (every relation, trigger and row of the database compared)."""
    from tests import pgboss_helpers as h

    schema = h.new_schema("v12")
    store = f"qcs_{schema[-8:]}"
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_SCHEMA", store)
    await h.install(postgres_url, "v12", schema)

    async def state():
        async with h.admin(postgres_url) as conn:
            rels = await conn.fetch("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                                    "ON n.oid = c.relnamespace WHERE n.nspname IN ($1, $2) ORDER BY 1, 2", schema, store)
            triggers = await conn.fetch("SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN "
                                        "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1",
                                        schema)
            jobs = await conn.fetch(f'SELECT id, state::text, start_after FROM "{schema}".job ORDER BY id')
            return [tuple(r) for r in rels], [tuple(r) for r in triggers], [tuple(r) for r in jobs]

    try:
        async with h.admin(postgres_url) as conn:
            await h.create_queue(conn, schema, "work")
            await h.add_job(conn, schema, "work")
        before = await state()
        flags = ["--url", postgres_url, "--schema", schema]
        code, out, err = await asyncio.to_thread(run, capsys, "pause", "work", "--dry-run", *flags)
        assert code == 0, err
        assert re.search(r"would pause \(1\):\n  pgboss:work at ", out), out
        assert out.rstrip().endswith("dry run: pause of 1 queue; nothing changed"), out
        code, out, err = await asyncio.to_thread(run, capsys, "resume", "work", "--dry-run", *flags)
        assert code == 0 and "not paused, nothing to resume (1):\n  pgboss:work at " in out, (out, err)
        assert await state() == before
    finally:
        await h.drop(postgres_url, schema)
        await h.drop(postgres_url, store)


# ------------------------------------------------------------------------------ time and units
def test_report_and_preview_wording(capsys, redis_url, prefix, sync_redis):
    """'1 batch', '1 failed job', and the age of --older-than in the one duration format."""
    write_fixed_queue(sync_redis, prefix, "one", failed=1, completed=0, waiting=0, delayed=0)
    flags = ["--url", redis_url, "--prefix", prefix]
    code, out, err = run(capsys, "dlq", "purge", "one", "--all", "--older-than", "90s", "--dry-run", *flags)
    assert code == 0 and "purge all 1 failed job older than 1m 30s of bullmq:one" in out, (out, err)
    code, out, err = run(capsys, "dlq", "retry", "one", "--all", "--yes", *flags)
    assert code == 0 and "bullmq:one: retry: 1 of 1, done; 1 batch\n" in out, (out, err)


def test_duration_and_plural_formats():
    assert [fmt.duration_ms(v) for v in (0, 104, 4200, 44_000, 104_600, 120_000, 7_500_000, 90_061_000)] == [
        "0ms", "104ms", "4.2s", "44s", "1m 45s", "2m", "2h 5m", "1d 1h"]
    assert fmt.duration(104.6) == "1m 45s" and fmt.duration(None) == "-"
    assert [fmt.plural(n, "queue") for n in (0, 1, 2)] == ["0 queues", "1 queue", "2 queues"]
    assert [fmt.plural(n, "batch") for n in (1, 3)] == ["1 batch", "3 batches"]


def test_local_time_with_offset_or_utc_flag_env_and_config(redis_url, prefix, sync_redis, tmp_path):
    """Timestamps in local time with the offset; --utc before or after the verb, QUEUE_CONSOLE_UTC or
    `utc = true` in the config file: UTC, with +00:00."""
    write_fixed_queue(sync_redis, prefix, "mail", failed=0, completed=1, waiting=0, delayed=0)
    created = T0 + 1000  # job 1
    local = dt.datetime.fromtimestamp(created / 1000, dt.timezone(dt.timedelta(hours=5, minutes=30)))
    utc = dt.datetime.fromtimestamp(created / 1000, dt.timezone.utc)
    want_local = f"created   {local:%Y-%m-%d %H:%M:%S} +05:30"
    want_utc = f"created   {utc:%Y-%m-%d %H:%M:%S} +00:00"
    env = {"TZ": "QCT-05:30", "QUEUE_CONSOLE_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    flags = ["--url", redis_url, "--prefix", prefix]
    proc = run_cli("job", "mail", "1", *flags, env=env)
    assert proc.returncode == 0 and want_local in proc.stdout, (proc.stdout, proc.stderr)
    for argv, extra in ((["--utc", "job", "mail", "1"], {}), (["job", "mail", "1", "--utc"], {}),
                        (["job", "mail", "1"], {"QUEUE_CONSOLE_UTC": "1"})):
        proc = run_cli(*argv, *flags, env={**env, **extra})
        assert proc.returncode == 0 and want_utc in proc.stdout, (argv, proc.stdout, proc.stderr)
    cfg = tmp_path / "utc.toml"
    cfg.write_text("utc = true\n")
    proc = run_cli("job", "mail", "1", *flags, env={**env, "QUEUE_CONSOLE_CONFIG": str(cfg)})
    assert proc.returncode == 0 and want_utc in proc.stdout, (proc.stdout, proc.stderr)


# ------------------------------------------------------------------------ help, version, completion
def test_help_names_every_backend_of_the_registry(capsys):
    text = build_parser().format_help()
    assert "BullMQ on Redis)" not in text
    for backend in backend_names():
        assert backend in text.split("--backend", 1)[1].split("\n", 1)[0], (backend, text)
    code, out, err = run(capsys, "status", "--backend", "nosuch")
    assert code == 2 and "invalid choice: 'nosuch'" in err


def test_version():
    from importlib.metadata import version

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"queue-console {version('queue-console')}\n", proc


def test_completion_scripts_load_in_their_shells(tmp_path):
    proc = run_cli("completion", "bash")
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "qc.bash"
    script.write_text(proc.stdout)
    check = subprocess.run(["bash", "-c", f"source {shlex.quote(str(script))} && complete -p queue-console"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "queue-console" in check.stdout, (check.stdout, check.stderr)
    for word in ("dlq", "pause", "--dry-run", "--utc", "config"):
        assert word in proc.stdout, word
    zsh = run_cli("completion", "zsh")
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef queue-console"), zsh.stdout[:100]


# ------------------------------------------------------------------------------------ config
def test_config_path_follows_xdg_and_queue_console_config(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("QUEUE_CONSOLE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, out, err = run(capsys, "config", "path")
    assert code == 0 and out == f"{tmp_path / 'xdg' / 'queue-console' / 'config.toml'}\n", (out, err)
    # and that is the file the settings are read from
    (tmp_path / "xdg" / "queue-console").mkdir(parents=True)
    (tmp_path / "xdg" / "queue-console" / "config.toml").write_text("refresh = 7.5\n")
    from console.config import load

    assert load({}).refresh == 7.5
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "mine.toml"))
    code, out, err = run(capsys, "config", "path")
    assert code == 0 and out == f"{tmp_path / 'mine.toml'}\n"


def test_config_check_reports_bad_user_keys_with_file_id_and_value(capsys, tmp_path):
    """[keys]: binding id -> keys, checked against the binding table: an unknown id, a key name that
    is no key, and a key another binding of the same screen answers (here `q`, quit everywhere;
    `x`, cancel on the queue view) are errors naming the file, the id and the value."""
    good = tmp_path / "keys.toml"
    good.write_text('[keys]\ndead_letters = "F"\nretry = ["R", "ctrl+r"]\nprevious_view = "-"\n')
    code, out, err = run(capsys, "config", "check", str(good))
    assert code == 0 and out == f"{good}: ok\n", (out, err)
    bad = tmp_path / "bad-keys.toml"
    for text, words in (('[keys]\nretry_everything = "R"\n', ["keys.retry_everything", "'R'", "no binding"]),
                        ('[keys]\nretry = "q"\n', ["keys.retry", "'q'", "'quit'"]),
                        ('[keys]\npurge = ["D", "x"]\n', ["keys.purge", "cancel_mutation"]),
                        ('[keys]\ndead_letters = "ctrl+ f!"\n', ["keys.dead_letters", "not a key name"]),
                        ('[keys]\ndead_letters = 5\n', ["keys.dead_letters", "5"])):
        bad.write_text(text)
        code, out, err = run(capsys, "config", "check", str(bad))
        assert code == 2 and out == "", (text, out, err)
        assert str(bad) in err and all(w in err for w in words), (text, err)


def test_config_check_ok_or_errors_naming_file_key_and_value(capsys, monkeypatch, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('refresh = 3\nutc = true\n[contexts.prod]\nurls = ["redis://:pw-SECRET@prod:6379/0"]\n'
                    "[policy.fairness]\nrate = 20\n")
    code, out, err = run(capsys, "config", "check", str(good))
    assert code == 0 and out == f"{good}: ok\n" and err == "", (out, err)
    bad = tmp_path / "bad.toml"
    for text, words in (('refresh = "fast"\n', ["refresh", "'fast'"]),
                        ('[contexts.prod]\nurls = ["redis://:pw-SECRET@prod:99999/0"]\n', ["contexts.prod.urls"]),
                        ("[policy.fairness]\nrate = -1\n", ["rate", "-1"]),
                        ("refresh = \n", ["not valid TOML"])):
        bad.write_text(text)
        code, out, err = run(capsys, "config", "check", str(bad))
        assert code == 2 and out == "", (text, out, err)
        assert str(bad) in err and all(w in err for w in words), (text, err)
        assert "pw-SECRET" not in err
    # the file in force when FILE is not given (here: QUEUE_CONSOLE_CONFIG's)
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(bad))
    code, out, err = run(capsys, "config", "check")
    assert code == 2 and "not valid TOML" in err
    # no file where the console would look: what load() does, the defaults
    monkeypatch.delenv("QUEUE_CONSOLE_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing"))
    code, out, err = run(capsys, "config", "check")
    assert code == 0 and out.endswith("config.toml: ok (no such file: the defaults apply)\n"), (out, err)
    code, out, err = run(capsys, "config", "check", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err
