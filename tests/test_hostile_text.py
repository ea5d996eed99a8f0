"""Hostile queue data never reaches the terminal raw (issue 9: terminal injection).

A catalogue of hostile strings fills every field a queue system stores: queue names, job ids,
job names, payloads, return values, options, errors, stack traces, logs. The real TUI runs in a
pseudo-terminal against a Redis holding them and walks every screen (overview, queue view with
the job detail, pause confirmation and its notification, failures view and a retry confirmation,
help); every byte it writes is checked: the only escape sequences are Textual's own (SGR colours,
cursor position, private modes, its keyboard-protocol queries, the OSC 22 pointer shape), no
OSC 0/2/8/52, no DCS, no C1 control, no raw bidi/format/separator character. The CLI's outputs
(text and JSON) are checked the same way with no escape sequence allowed at all. A Pilot test
checks that ``[@click=app.quit]`` in a queue name is shown literally and never becomes an action.
"""
from __future__ import annotations

import json
import re
import time
import unicodedata

import pytest
import redis

from console import cli
from tests.terminal import PtyApp

T0 = 1_790_000_000_000

#: each: (what it tries, the hostile string)
CATALOGUE: list[tuple[str, str]] = [
    ("clear screen", "Q\x1b[2J\x1b[HQ"),
    ("window title (OSC 0)", "Q\x1b]0;TITLE\x1b\\"),
    ("clipboard write (OSC 52)", "Q\x1b]52;c;cHduZWQ=\x1b\\"),
    ("hyperlink (OSC 8)", "\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\"),
    ("title, BEL terminated", "T\x1b]2;BELTITLE\x07"),
    ("256-colour SGR", "\x1b[38;5;196mEVILRED\x1b[0m"),
    ("device status report", "DSR\x1b[6n"),
    ("DCS query", "D\x1bP+q544e\x1b\\"),
    ("C1 CSI / OSC / ST", "C1\x9b31m\x9d0;C1TITLE\x9c"),
    ("Textual click markup", "[@click=app.quit]X[/]"),
    ("bad markup", "crash[/x]q"),
    ("Rich markup", "[bold red]loud[/] [link=http://evil.example]l[/link]"),
    ("bidi override", "bidi\u202egnp.exe\u2066iso\u2069\u061c"),
    ("format characters", "fmt\u2060\u00ad\u2061\u2062\u2063\u2064\ufff9\ufffa\ufffb\u200b\ufeff\u180e"),
    ("line/paragraph separators", "sep\u2028next\u2029para"),
    ("tag characters", "tag\U000e0001\U000e0041\U000e007f\U000e0000"),
    ("C0 controls", "ctl\x07\x08\x00\x7f\r\x0b\x0c"),
]

#: the queues the TUI test opens, pauses through the confirmation and sees notified (the issue's
#: repros: clear screen, OSC 0, OSC 52, click markup, bad markup, C1, bidi); every queue's name and
#: every job's fields are on the overview and the failures view anyway
OPENED = [0, 1, 2, 8, 9, 10, 12]

#: what Textual itself writes: SGR, cursor position, private modes, DECRQM, the kitty keyboard
#: protocol push/pop, and OSC 22 (pointer shape) with a plain word
TEXTUAL_SEQUENCES = re.compile(r"\x1b\[[0-9;]*[mH]|\x1b\[\?[0-9;]*[hl]|\x1b\[\?[0-9;]*\$p|\x1b\[[<>=]?[0-9;]*u"
                               r"|\x1b\]22;[a-z-]*\x07")


def raw_hazards(text: str) -> list[str]:
    """What in ``text`` could act on a terminal: any ESC/BEL/C0 control (but CR, LF), any C1
    control, any format/separator/bidi character, any tag character."""
    bad = []
    for ch in text:
        code = ord(ch)
        if ch in "\r\n":
            continue
        if (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") or 0xE0000 <= code <= 0xE007F
                or 0xFFF9 <= code <= 0xFFFB):
            bad.append(f"U+{code:04X}")
    return sorted(set(bad))


def assert_inert(out: str, textual: bool) -> None:
    rest = TEXTUAL_SEQUENCES.sub("", out) if textual else out
    assert raw_hazards(rest) == [], [rest[max(m.start() - 40, 0):m.start() + 40]
                                     for m in re.finditer("[\x1b\x07\x9b\x9d]", rest)][:5]
    for _, hostile in CATALOGUE:  # none of the catalogue's sequences, byte for byte, with their neighbours
        for m in re.finditer("[\x1b\x9b\x9d]", hostile):
            piece = hostile[max(m.start() - 4, 0):m.start() + 8]
            assert piece not in out, piece


# ------------------------------------------------------------------------------- the data


def queue_prefix(prefix: str, i: int) -> str:
    return f"{prefix}:p{i:02d}"


def seed(client: redis.Redis, prefix: str) -> list[str]:
    """One BullMQ queue per catalogue string (except those with ':' in them, which BullMQ's keys
    cannot name), each with a waiting and a failed job whose every field is hostile."""
    names = []
    everything = " ".join(h for _, h in CATALOGUE)
    pipe = client.pipeline(transaction=False)
    for i, (_, hostile) in enumerate(CATALOGUE):
        name = hostile if ":" not in hostile else f"q{i}"
        names.append(name)
        base = f"{queue_prefix(prefix, i)}:{name}"  # one prefix per queue: a console can show just that one
        pipe.hset(f"{base}:meta", mapping={"version": "bullmq:5.81.5", "opts.maxLenEvents": "100"})
        for n, state in ((1, "wait"), (2, "failed")):
            jid = f"{n}{hostile}" if ":" not in hostile else f"{n}-id"
            fields = {"name": hostile, "data": json.dumps({"note": hostile, "all": everything}, ensure_ascii=False),
                      "opts": json.dumps({"attempts": 3, "jobId": hostile}, ensure_ascii=False),
                      "timestamp": str(T0 + n), "delay": "0", "priority": "0", "atm": "1", "ats": "1",
                      "progress": hostile}
            if state == "failed":
                fields.update(processedOn=str(T0 + 5), finishedOn=str(T0 + 9), failedReason=hostile,
                              stacktrace=json.dumps([hostile, "Error: " + everything], ensure_ascii=False),
                              returnvalue=json.dumps(hostile, ensure_ascii=False))
                pipe.zadd(f"{base}:failed", {jid: T0 + 9})
            else:
                pipe.lpush(f"{base}:wait", jid)
            pipe.hset(f"{base}:{jid}", mapping=fields)
            pipe.rpush(f"{base}:{jid}:logs", hostile, "log " + everything)
        pipe.set(f"{base}:id", "2")
    pipe.execute()
    return names


@pytest.fixture
def hostile(redis_url, prefix, sync_redis):
    names = seed(sync_redis, prefix)
    return redis_url, prefix, names


# ------------------------------------------------------------------------------- the TUI, byte for byte


def _run(args: list[str], steps) -> tuple[int, bytes]:
    app = PtyApp(args)
    try:
        steps(app)
        time.sleep(0.5)  # pacing only: a key right after ESC would read as alt+key
        app.press("q")
        code = app.wait_exit()
    finally:
        app._dump()
        app.kill()
    return code, app.output


def _pause_the_only_queue(app: PtyApp) -> None:
    app.wait_for("bullmq")  # the overview lists the one queue
    time.sleep(0.5)
    m = app.mark()
    app.press("\r")  # open it: title, tabs, jobs, detail of the hostile waiting job
    app.wait_for("page 1", m)
    app.wait_for("data (", m)
    m = app.mark()
    app.press("P")  # pause: the confirmation names the queue
    app.wait_for("y: go ahead", m)
    m = app.mark()
    app.press("y")
    app.wait_for("PAUSED", m)  # the title says so, and a notification names the queue


def _every_screen(app: PtyApp) -> None:
    app.wait_for("[@click=app.quit]X[/]")  # the overview lists every queue, markup shown as text
    time.sleep(0.5)
    m = app.mark()
    app.press("f")  # failures: error signatures, queues, the failed jobs' detail
    app.wait_for("failed jobs in", m)
    app.press("\r")
    m = app.mark()
    app.press("j")
    app.wait_for("error (latest)", m)
    m = app.mark()
    app.press("R")  # a retry preview: sample ids and errors in the confirmation
    app.wait_for("y: go ahead", m)
    m = app.mark()
    app.press("n")
    app.wait_for("nothing changed", m)
    m = app.mark()
    app.press("?")
    app.wait_for("Keys:", m)
    app.press("\x1b")


@pytest.mark.timeout(400)
def test_tui_writes_nothing_hostile_to_the_terminal(hostile):
    url, prefix, names = hostile
    outputs = []
    for i in OPENED:  # the pause confirmation and notification of the queues
        code, out = _run(["--url", url, "--prefix", queue_prefix(prefix, i), "--refresh", "5"], _pause_the_only_queue)
        assert code == 0
        outputs.append(out)
    every_prefix = [arg for i in range(len(names)) for arg in ("--prefix", queue_prefix(prefix, i))]
    code, out = _run(["--url", url, *every_prefix, "--refresh", "5"], _every_screen)
    assert code == 0
    outputs.append(out)
    out = b"\n".join(outputs).decode("utf-8")  # strictly UTF-8: no stray C1 bytes either
    assert "Traceback" not in out and "MarkupError" not in out
    assert_inert(out, textual=True)
    # the hostile text is on screen, as visible escapes and as literal markup
    for shown in ("[@click=app.quit]X[/]", "crash[/x]q", "Q\\x1b]52;c;cHduZWQ=\\x1b\\", "\\u202e", "\\U000e0041",
                  "\\u2028", "[bold red]loud[/]", "paused Q\\x1b]52;c;cHduZWQ="):
        assert shown in out, shown
    # each of those queues really was paused through the confirmation
    client = redis.Redis.from_url(url)
    try:
        assert [names[i] for i in OPENED
                if client.hget(f"{queue_prefix(prefix, i)}:{names[i]}:meta", "paused") != b"1"] == []
    finally:
        client.close()


# ------------------------------------------------------------------------------- markup never acts


@pytest.mark.timeout(120)
async def test_click_markup_in_a_queue_name_is_text_not_an_action(redis_url, prefix, sync_redis):
    from textual.widgets._toast import Toast

    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.screens.queue import QueueScreen

    for name in ("[@click=app.quit]X[/]", "crash[/x]q"):
        sync_redis.hset(f"{prefix}:{name}:meta", mapping={"version": "bullmq:5.81.5"})
    app = QueueConsoleApp(Settings(urls=[redis_url], prefixes=[prefix], refresh=5))
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        for _ in range(200):
            if any(s.statuses for s in app.snapshots.values()):
                break
            await pilot.pause(0.05)
        queues = {s.queue.name: s.queue for snap in app.snapshots.values() for s in snap.statuses}
        for name in ("crash[/x]q", "[@click=app.quit]X[/]"):
            await app.push_screen(QueueScreen(queues[name]))
            await pilot.pause()
            await pilot.press("P")
            for _ in range(200):
                if app.screen.__class__.__name__ == "ConfirmScreen":
                    break
                await pilot.pause(0.05)
            await pilot.press("y")
            for _ in range(200):
                if app.screen.query(Toast):
                    break
                await pilot.pause(0.05)
            toasts = list(app.screen.query(Toast))
            assert toasts, "no notification"
            assert [n.message for n in app._notifications] == [f"paused {name}"]
            shown = " ".join(str(t.render()) for t in toasts)
            assert name in shown  # rendered literally, brackets and all
            for toast in toasts:  # clicking the notification (and its "link") runs nothing
                await pilot.click(toast)
            await pilot.pause()
            assert app.is_running
            app.clear_notifications()
            app.pop_screen()
        assert sync_redis.hget(f"{prefix}:crash[/x]q:meta", "paused") == b"1"


# ------------------------------------------------------------------------------- the CLI


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        cli.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.timeout(300)
def test_cli_outputs_are_inert(hostile, capsys):
    url, prefix, names = hostile
    flags = ["--url", url, *[arg for i in range(len(names)) for arg in ("--prefix", queue_prefix(prefix, i))]]
    runs = [["status"], ["status", "--json"], ["dlq", "list"], ["dlq", "list", "--json"], ["dlq", "list", "--group"],
            ["dlq", "retry", "--all", "--dry-run"], ["audit"], ["jobs", "nosuchqueue\x1b]0;T\x07"]]
    for name in names:
        runs += [["jobs", f"bullmq:{name}"], ["jobs", f"bullmq:{name}", "--state", "failed", "--json"],
                 ["jobs", f"bullmq:{name}", "--state", "failed"], ["pause", f"bullmq:{name}", "--yes"],
                 ["resume", f"bullmq:{name}", "--yes"]]
    for hostile_id in [f"2{h}" if ":" not in h else "2-id" for _, h in CATALOGUE]:
        runs += [["job", f"bullmq:{names[0]}", hostile_id], ["job", f"bullmq:{names[0]}", hostile_id, "--json"]]
    for i, (_, h) in enumerate(CATALOGUE):
        jid = f"2{h}" if ":" not in h else "2-id"
        runs += [["job", f"bullmq:{names[i]}", jid]]
    outputs = []
    for argv in runs:
        code, out = run_cli(argv + flags, capsys)
        assert code in (0, 2), (argv, out)
        assert "internal error" not in out, (argv, out)
        assert_inert(out, textual=False)
        outputs.append(out)
    for hostile_url in ("redis://127.0.0.1:6429/0#\x1b]0;URLTITLE\x07", "redis://\x1b[2J@127.0.0.1:6429/0",
                        "redis\x1b]52;c;eA==\x07://h/0", "redis://h\u202e:6379/0", "[@click=app.quit]://x"):
        for argv in (["status"], ["dlq", "list", "--json"]):  # connection errors name the URL
            code, out = run_cli(argv + ["--url", hostile_url], capsys)
            assert code in (2, 3), (hostile_url, out)
            assert "internal error" not in out, out
            assert_inert(out, textual=False)
            outputs.append(out)
    joined = "\n".join(outputs)
    assert "[@click=app.quit]X[/]" in joined and "\\x1b[2J" in joined and "\\u202e" in joined
