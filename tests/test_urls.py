"""Connection strings: parsing, validation and redaction (backends.urls)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.errors import BadUrl
from backends.urls import parse, redact


@pytest.mark.parametrize(
    ("raw", "scheme", "kind", "host_label"),
    [
        ("redis://127.0.0.1:6379/0", "redis", "redis", "127.0.0.1:6379"),
        ("redis://localhost", "redis", "redis", "localhost"),
        ("REDIS://cache.internal:6380/3", "redis", "redis", "cache.internal:6380"),
        ("rediss://:pw@redis.example.com:6380/1", "rediss", "redis", "redis.example.com:6380"),
        ("unix:///var/run/redis/redis.sock", "unix", "redis", "/var/run/redis/redis.sock"),
        ("unix:///tmp/r.sock?db=2", "unix", "redis", "/tmp/r.sock"),
        ("redis+unix:///tmp/redis.sock", "redis+unix", "redis", "/tmp/redis.sock"),
        ("postgresql://app:pw@db.internal:5432/jobs", "postgresql", "postgres", "db.internal:5432"),
        ("postgres://db.internal/jobs", "postgres", "postgres", "db.internal"),
    ],
)
def test_parse_accepts_every_documented_scheme(raw, scheme, kind, host_label):
    url = parse(raw)
    assert url.raw == raw
    assert url.scheme == scheme
    assert url.kind == kind
    assert url.host_label == host_label


@pytest.mark.parametrize(
    ("raw", "password"),
    [
        ("redis://:s3cretpw@127.0.0.1:6379/0", "s3cretpw"),
        ("redis://alice:hunter2pw@127.0.0.1:6379/0", "hunter2pw"),
        ("rediss://default:tls-secret@redis.example.com:6380", "tls-secret"),
        ("unix://bob:bobpw1@/tmp/redis.sock", "bobpw1"),
        ("redis+unix://bob:zq9pw2@/tmp/redis.sock?db=1", "zq9pw2"),
        ("postgresql://app:pgsecret@db:5432/jobs", "pgsecret"),
        ("postgres://app:pgsecret2@db/jobs?sslmode=require", "pgsecret2"),
        ("unix:///tmp/redis.sock?db=0&password=querysecret", "querysecret"),
        ("redis://127.0.0.1:6379/0?PASSWORD=upper-secret&db=1", "upper-secret"),
        ("postgresql://db/jobs?user=app&pass=pgquery1", "pgquery1"),
        ("postgresql://db/jobs?pwd=pgquery2", "pgquery2"),
        ("redis://:p%40ss%3Aword@host:6379/0", "p%40ss%3Aword"),
        ("redis://:pa@ss@host:6379/0", "pa@ss"),
        # a raw '#', '/' or '?' in a password makes urlsplit end the authority early
        ("redis://:sec#ret@host:6379/0", "sec#ret"),
        ("redis://:se/cret@host:6379/0", "se/cret"),
        ("redis://:se?cret@host:6379/0", "se?cret"),
    ],
)
def test_redact_never_shows_the_password(raw, password):
    shown = redact(raw)
    assert password not in shown
    # no fragment of a password of 4+ characters either
    for part in (password[:4], password[-4:]):
        assert part not in shown
    assert "***" in shown
    assert parse_or_none(raw) is None or password not in parse(raw).redacted


def parse_or_none(raw):
    try:
        return parse(raw)
    except BadUrl:
        return None


def test_redact_keeps_what_is_not_secret():
    assert redact("redis://alice:pw@cache:6379/2") == "redis://alice:***@cache:6379/2"
    assert redact("redis://:pw@cache:6379/2") == "redis://:***@cache:6379/2"
    assert redact("redis://alice@cache:6379/2") == "redis://alice@cache:6379/2"
    assert redact("redis://cache:6379/2") == "redis://cache:6379/2"
    assert redact("unix:///tmp/r.sock?db=3&password=x") == "unix:///tmp/r.sock?db=3&password=***"
    assert redact("postgresql://app:pw@db/jobs?sslmode=require") == "postgresql://app:***@db/jobs?sslmode=require"


@pytest.mark.parametrize(
    "raw",
    [
        "ftp://host/x",
        "http://localhost:6379",
        "mysql://root:pw@db/x",
        "amqp://guest:guest@rabbit:5672",
    ],
)
def test_unknown_scheme_is_bad_url(raw):
    with pytest.raises(BadUrl) as info:
        parse(raw)
    assert "unknown URL scheme" in str(info.value)
    assert "redis://" in str(info.value)  # says what is expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "not a connection URL"),
        ("localhost:6379", "not a connection URL"),
        ("redis:/localhost", "not a connection URL"),
        ("redis://", "no host"),
        ("redis:///0", "no host"),
        ("unix://", "without a path"),
        ("redis+unix://", "without a path"),
        ("redis://localhost/zero", "must be a number"),
        ("rediss://localhost:6380/1x", "must be a number"),
        ("redis://localhost:port/0", "bad port"),
        ("redis://localhost:99999/0", "bad port"),
        ("redis://localhost:-1/0", "bad port"),
        ("postgresql://db:5432x/jobs", "bad port"),
        ("redis://[::1/0", ""),
        ("unix:///tmp/r.sock?db=abc", "must be a number"),
        ("redis://localhost/0?db=x", "must be a number"),
    ],
)
def test_malformed_urls_are_bad_url(raw, words):
    with pytest.raises(BadUrl) as info:
        parse(raw)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("redis://:topsecret@localhost:port/0", "topsecret"),
        ("redis://:topsecret@localhost/zero", "topsecret"),
        ("gopher://:topsecret@localhost/", "topsecret"),
        ("unix://:topsecret@/tmp/s.sock?db=x", "topsecret"),
    ],
)
def test_bad_url_messages_hide_the_password(raw, secret):
    with pytest.raises(BadUrl) as info:
        parse(raw)
    assert secret not in str(info.value)
    assert "secret" not in str(info.value)


_pw_chars = st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="@%")


@settings(max_examples=300, deadline=None)
@given(
    password=st.text(_pw_chars, min_size=6, max_size=20).filter(
        lambda p: p not in "rediss://postgresql://alice:default:@host.example:6379/0?password=***"
    ),
    scheme=st.sampled_from(["redis", "rediss", "postgresql", "postgres"]),
    user=st.sampled_from(["", "alice", "default"]),
)
def test_redact_property_password_never_survives(password, scheme, user):
    """Whatever (unencoded) characters a password holds, its text never appears redacted."""
    raw = f"{scheme}://{user}:{password}@host.example:6379/0"
    shown = redact(raw)
    assert password not in shown
    query = f"{scheme}://host.example:6379/0?password={password.replace('&', '').replace('#', '')}"
    hidden = password.replace("&", "").replace("#", "")
    if len(hidden) >= 4:
        assert hidden not in redact(query)
