"""Passwords never leak: not in redaction, parse errors, CLI output (text and JSON), audit records.

Issue 9. The property tests generate passwords of any printable character (raw or percent-
encoded in the URL) and run the real CLI against a private Redis with an ACL user of exactly that
password (valid URLs), and against unreachable servers and invalid URLs (errors). No substring of
3 or more characters of the password may appear anywhere, unless the same substring is also in
the output of the same command with a password of "z"s (words the output always holds).
"""
from __future__ import annotations

import os
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backends.errors import BadUrl
from backends.urls import parse, redact
from console import cli
from tests.private_redis import PrivateRedis, running

PORTS = range(6421, 6429)  # this suite's private range (6429 stays unused)
UNREACHABLE = 6429  # nothing listens there
PORT = 0  # the private server's port, set by the fixture

# ------------------------------------------------------------------------------- generators

#: every printable ASCII character (space included) and some non-ASCII letters and symbols
printable = st.sampled_from(string.printable[:95]) | st.characters(min_codepoint=0xA1, max_codepoint=0x2FF)
passwords = st.text(printable, min_size=3, max_size=24)


def in_url(password: str, form: str) -> str:
    """The password as typed in a URL: raw (a human's way), or percent-encoded (all or some)."""
    if form == "encoded" or "%" in password:  # a raw '%' followed by hex digits would decode
        return quote(password, safe="")
    if form == "some-encoded":
        return "".join(quote(ch, safe="") if i % 2 else ch for i, ch in enumerate(password))
    return password


def grams(text: str, n: int = 3) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


#: pieces of the password made of digits only (a password "0000" gives "000") turn up in every
#: timestamp, stream id and count: they are looked for only as a whole digit password this long
DIGITS_FROM = 8


def leaked(secret_forms: list[str], shown: str, vocabulary: str) -> list[str]:
    pieces = set()
    for form in secret_forms:
        pieces |= {g for g in grams(form) if not g.isdigit()}
        if form.isdigit() and len(form) >= DIGITS_FROM:
            pieces.add(form)
    return sorted(g for g in pieces if g in shown and g not in vocabulary)


# ------------------------------------------------------------------------------- the issue's cases


@pytest.mark.parametrize(("raw", "secret"), [
    ("redis://u:pa/SECRETTAIL@host/0", "SECRETTAIL"),
    ("postgresql://u:Pg@:/%S3cret@host/db", "S3cret"),
    ("redis://u:ab?cdSECRET@host/0", "SECRET"),
    ("redis://u:ab#cdSECRET@host:6379/zero", "SECRET"),
    ("1redis://:pwSECRET@h/0", "SECRET"),
    ("redis ://:pwSECRET@h/0", "SECRET"),
    ('{"url": "redis://:pwSECRET@h/0"}', "SECRET"),
    ("redis://:SECRET", "SECRET"),
    ("redis://h/0?password=ab@SECRET", "SECRET"),
    ("redis://:x?password=SECRET@host/0", "SECRET"),
    ("SECRET@host:6379", "SECRET"),
    ("redis://:SECRET:", "SECRET"),  # the property test's "redis://:00:": was "no host in redis://:00:"
    ("redis://h:6379:SECRET/0", "SECRET"),
    ("redis+sentinel://a:26379,b:SECRET/master", "SECRET"),
])
def test_issue_urls_never_show_the_password(raw, secret):
    assert secret not in redact(raw)
    try:
        url = parse(raw)
    except BadUrl as exc:
        assert secret not in str(exc)
    else:
        assert secret not in url.redacted and secret not in url.host_label


def test_redact_keeps_the_scheme_letters():
    # the old scrubber replaced every "p" of the message when the password was "p"
    assert redact("postgresql://u:p@host/db") == "postgresql://u:***@host/db"


@pytest.mark.parametrize("raw", ["1redis://:pw@h/0", "redis ://:pw@h/0", '{"url": "redis://:pw@h/0"}'])
def test_bad_schemes_are_bad_urls_not_recursion(raw):
    with pytest.raises(BadUrl):
        parse(raw)


def test_a_raw_slash_in_a_password_is_the_password():
    url = parse("postgresql://u:Pg@:/%S3cret@db.internal:5432/jobs")
    assert url.host_label == "db.internal:5432"
    assert url.password == "Pg@:/%S3cret"
    assert url.connect_url == "postgresql://u:Pg%40%3A%2F%25S3cret@db.internal:5432/jobs"
    assert parse("redis://u:p%40ss@h/0").password == "p@ss"  # percent-encoding still means what it says


# ------------------------------------------------------------------------------- property: parse/redact

SKELETONS = [
    "redis://u:{pw}@127.0.0.1:6379/0", "rediss://{pw2}:{pw}@cache.example/1", "postgresql://app:{pw}@db/jobs",
    "postgres://:{pw}@/jobs?host=/tmp", "unix://:{pw}@/tmp/r.sock?db=1",
    "1redis://:{pw}@h/0", "redis ://:{pw}@h/0", "redis://:{pw}@h:port/0", "redis://:{pw}@h/zero",
    "redis://:{pw}@h/0?db=x", "mysql://root:{pw}@db/x", '{{"url": "redis://:{pw}@h/0"}}', "u:{pw}@h:6379",
    "redis://h/0?password={pw}", "redis://:{pw}", "redis://[::1:{pw}@h/0",
]


@settings(max_examples=400, deadline=None)
@given(password=passwords, form=st.sampled_from(["raw", "encoded", "some-encoded"]),
       skeleton=st.sampled_from(SKELETONS))
def test_property_no_password_text_in_redaction_or_errors(password, form, skeleton):
    typed = in_url(password, form)
    raw = skeleton.format(pw=typed, pw2="user")
    vocabulary = redact(skeleton.format(pw="zzzzzzzz", pw2="user")) + " ".join(SKELETONS)
    shown = [redact(raw)]
    try:
        url = parse(raw)
        shown += [url.redacted, url.host_label]
    except BadUrl as exc:
        shown.append(str(exc))
        vocabulary += str(_error_of(skeleton.format(pw="zzzzzzzz", pw2="user")))
    for text in shown:
        assert leaked([password, typed], text, vocabulary) == [], (raw, text)


def _error_of(raw: str) -> str:
    try:
        parse(raw)
    except BadUrl as exc:
        return str(exc)
    return ""


# ------------------------------------------------------------------------------- property: the CLI


@pytest.fixture(scope="module")
def server():
    global PORT
    from tests.fixed_data import write_fixed_queue

    with running(PORTS) as srv, srv.client() as admin:
        srv.admin = admin
        PORT = srv.port
        write_fixed_queue(srv.admin, "bull", "mail", failed=4, completed=2, waiting=2, delayed=1)
        yield srv


def run_cli(argv: list[str], capsys, env: dict[str, str] | None = None) -> tuple[int, str]:
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        try:
            cli.main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    out = capsys.readouterr()
    return code, out.out + "\n" + out.err


VALID_COMMANDS = [["status"], ["status", "--json"], ["jobs", "mail", "--state", "failed"],
                  ["jobs", "mail", "--state", "failed", "--json"], ["dlq", "list"], ["dlq", "list", "--json"],
                  ["pause", "mail", "--yes"], ["resume", "mail", "--yes"], ["audit", "--json", "--limit", "5"]]
_vocabulary: dict[tuple, str] = {}


def _set_password(server: PrivateRedis, password: str) -> None:
    server.admin.execute_command("ACL", "SETUSER", "u", "reset", "on", f">{password}", "~*", "&*", "+@all")


def _vocab(key: tuple, make) -> str:
    if key not in _vocabulary:
        _vocabulary[key] = make()
    return _vocabulary[key]


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords, form=st.sampled_from(["raw", "encoded", "some-encoded"]))
@example(password="00[", form="raw")  # was "internal error: ValueError: Invalid IPv6 URL" (ACL user lookup)
@example(password="0000", form="raw")
def test_property_cli_with_a_valid_url_never_shows_the_password(server, capsys, password, form):
    _set_password(server, password)
    url = f"redis://u:{in_url(password, form)}@127.0.0.1:{PORT}/0"
    for argv in VALID_COMMANDS:
        code, shown = run_cli(argv + ["--url", url], capsys)
        assert code == 0, shown

        def baseline(argv=argv):
            _set_password(server, "zzzzzzzz")
            _, text = run_cli(argv + ["--url", f"redis://u:zzzzzzzz@127.0.0.1:{PORT}/0"], capsys)
            _set_password(server, password)
            return text

        vocabulary = _vocab(tuple(argv), baseline)
        assert leaked([password, in_url(password, form)], shown, vocabulary) == [], (argv, shown)
    # the audit records on the server itself
    records = everything_stored(server)
    assert "pause" in records  # the audit records are there
    assert leaked([password, in_url(password, form)], records, _vocab(("records",), lambda: records)) == []


def everything_stored(server: PrivateRedis) -> str:
    """Every value of the console's own keys (audit, ledger, pause memory), as text."""
    out = []
    for key in server.admin.scan_iter(match="queue-console*"):
        kind = server.admin.type(key)
        values = {b"string": lambda k: [server.admin.get(k)], b"list": lambda k: server.admin.lrange(k, 0, -1),
                  b"hash": lambda k: [x for kv in server.admin.hgetall(k).items() for x in kv],
                  b"set": lambda k: list(server.admin.smembers(k)),
                  b"zset": lambda k: server.admin.zrange(k, 0, -1),
                  b"stream": lambda k: [repr(e) for e in server.admin.xrange(k)]}.get(kind, lambda k: [])(key)
        out += [key.decode("utf-8", "replace")] + [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                                                    for v in values]
    return "\n".join(out)


BAD = [
    (f"redis://u:{{pw}}@127.0.0.1:{UNREACHABLE}/0", 3),  # nothing listens
    ("redis://u:{pw}@127.0.0.1:{port}/0", 3),  # wrong password
    (f"postgresql://u:{{pw}}@127.0.0.1:{UNREACHABLE}/db", 3),
    ("1redis://:{pw}@127.0.0.1/0", 2), ("redis ://:{pw}@127.0.0.1/0", 2), ("redis://:{pw}@127.0.0.1:port/0", 2),
    ("redis://:{pw}@127.0.0.1/zero", 2), ("u:{pw}@127.0.0.1:6379", 2), ("redis://:{pw}", 2),
]


@pytest.mark.timeout(600)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords, form=st.sampled_from(["raw", "encoded", "some-encoded"]), bad=st.sampled_from(BAD),
       argv=st.sampled_from([["status"], ["status", "--json"], ["jobs", "mail"], ["dlq", "list"],
                             ["dlq", "list", "--json"]]),
       via=st.sampled_from(["flag", "env"]))
def test_property_cli_errors_never_show_the_password(server, capsys, password, form, bad, argv, via):
    _set_password(server, "the-right-one")
    skeleton, expected = bad
    typed = in_url(password, form)
    if via == "env" and any(c in typed for c in " \t,"):
        via = "flag"  # QUEUE_CONSOLE_URL is split at spaces and commas (documented)

    def run(pw: str) -> tuple[int, str]:
        url = skeleton.format(pw=pw, port=PORT)
        if via == "env":
            return run_cli(argv, capsys, env={"QUEUE_CONSOLE_URL": url})
        return run_cli(argv + ["--url", url], capsys)

    code, shown = run(typed)
    assert code == expected, shown
    vocabulary = _vocab((skeleton, tuple(argv), via), lambda: run("zzzzzzzz")[1])
    assert leaked([password, typed], shown, vocabulary) == [], shown
    assert "internal error" not in shown


def test_json_looking_environment_url_is_a_usage_error(capsys):
    code, shown = run_cli(["status"], capsys, env={"QUEUE_CONSOLE_URL": '{"url": "redis://:pwSECRET@h/0"}'})
    assert code == 2
    assert "SECRET" not in shown and "Recursion" not in shown


# ------------------------------------------------------------------------------- property: the TUI


async def _tui_screen(url: str) -> str:
    """The TUI's screen (every character of it) once the connection bar shows the connection."""
    import html

    from console.app import QueueConsoleApp
    from console.config import Settings

    app = QueueConsoleApp(Settings(urls=[url], refresh=1, connect_timeout=2))
    async with app.run_test(size=(200, 40)) as pilot:
        for _ in range(1200):  # up to a minute on a loaded machine
            snaps = list(app.snapshots.values())
            if snaps and (snaps[0].statuses or snaps[0].error):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        svg = app.export_screenshot()
    return html.unescape(svg).replace("\xa0", " ")


@pytest.mark.timeout(600)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords, form=st.sampled_from(["raw", "encoded"]), reachable=st.booleans())
def test_property_tui_connection_bar_never_shows_the_password(server, password, form, reachable):
    import asyncio

    port = PORT if reachable else UNREACHABLE
    _set_password(server, password)
    screen = asyncio.run(_tui_screen(f"redis://u:{in_url(password, form)}@127.0.0.1:{port}/0"))
    assert f"127.0.0.1:{port}" in screen  # the connection bar is there
    vocabulary = _vocab(("tui", reachable), lambda: (_set_password(server, "zzzzzzzz"), asyncio.run(
        _tui_screen(f"redis://u:zzzzzzzz@127.0.0.1:{port}/0")))[1])
    _set_password(server, password)
    assert leaked([password, in_url(password, form)], screen, vocabulary) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("password", ["Pg@:/%S3cret", "pa/SECRETTAIL", "se?cr#et@tail"])
def test_tui_issue_passwords(server, password):
    import asyncio

    _set_password(server, password)
    screen = asyncio.run(_tui_screen(f"redis://u:{password}@127.0.0.1:{PORT}/0"))
    assert "mail" in screen  # connected with that password: the queue is listed
    for secret in ("S3cret", "SECRETTAIL", "cr#et", "tail"):
        assert secret not in screen


def test_connection_url_repr_has_no_password():
    # crash tracebacks (Textual shows locals) print reprs
    url = parse("redis://u:reprSECRET@h/0")
    assert "reprSECRET" not in repr(url) and "reprSECRET" not in str(url)
