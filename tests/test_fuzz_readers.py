"""Property tests: random bytes in names and fields, and keys of the wrong type, for every store.

The reader contract: whatever is stored, a reader call returns records or raises one of the
documented errors (``backends.errors``: BackendError and its subclasses); every string it returns
is shown inert (``console.safe_text.clean`` leaves nothing that cannot be written to a terminal)
and serialises to JSON the way the CLI prints it. Redis stores are written on a private
redis-server (flushed between examples: it is ours); PostgreSQL rows go into schemas of the test's
own. Bounded: a few dozen examples each, no deadline.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.contract import Reader
from backends.errors import BackendError, Malformed
from backends.urls import parse
from console.safe_text import clean
from tests.private_redis import PrivateRedis

#: this suite's own ports (other fault suites use other ranges)
FAULT_PORTS = range(6431, 6440)

_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
#: CI runs a fixed (derandomized) set of examples, so that it is green or red on any day the same
#: way; a local run draws new ones each time (and replays what failed before)
_CI = bool(os.environ.get("CI"))
#: Redis worlds are cheap (a few ms each); PostgreSQL examples insert rows and open a pool
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=_HEALTH, derandomize=_CI,
                database=None if _CI else settings.default.database)
FUZZ_PG = settings(FUZZ, max_examples=40)

# ----------------------------------------------------------------------------- checks

PAGE_ERRORS: tuple[type[BackendError], ...] = (Malformed,)
DETAIL_ERRORS: tuple[type[BackendError], ...] = ()


def _inert(value, where: str = "record") -> None:
    """Every string is displayable once cleaned, and the record is JSON as the CLI prints it."""
    if isinstance(value, str):
        clean(value).encode("utf-8")  # no lone surrogate survives clean()
    elif isinstance(value, dict):
        for k, v in value.items():
            _inert(k, where)
            _inert(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _inert(v, where)


def _check(model) -> None:
    dumped = model.model_dump()
    _inert(dumped)
    json.dumps(dumped, ensure_ascii=True)


def _out_of_range(exc: BackendError) -> bool:
    """PostgreSQL keeps timestamps up to year 294276; Python's datetime (and asyncpg) stop at 9999:
    such a row fails its page with one line (a known limit), never the counts or other queues."""
    return "date value out of range" in str(exc) or "year" in str(exc) and "out of range" in str(exc)


async def _call(coro, allowed: tuple[type[BackendError], ...] = ()):
    """A reader call: a record, or one of the ``allowed`` documented errors (None). Anything else
    fails the test: on a healthy server no bad key may fail discovery, counts or a job's detail
    (they are shown malformed instead); listing a state whose key has the wrong type may say so
    (Malformed), and a timestamp PostgreSQL has but Python has not fails that page (BackendError)."""
    try:
        return await coro
    except allowed:
        return None
    except BackendError as exc:
        if _out_of_range(exc):
            return None
        raise


async def exercise(reader: Reader, pages: int = 2, limit: int = 3) -> None:
    """Everything the console reads: discovery, counts, pages (walked), details, summaries, rates,
    latency, history."""
    disc = await _call(reader.discover())
    if disc is None:
        return
    _check(disc)
    statuses = await _call(reader.statuses(disc.queues))
    for s in statuses or []:
        _check(s)
        assert s.malformed is not None or s.counts, s
    for q in disc.queues:
        caps = reader.queue_capabilities(q)
        for state in caps.states:
            cursor = None
            for _ in range(pages):
                page = await _call(reader.page(q, state, cursor, limit), PAGE_ERRORS)
                if page is None:
                    break
                _check(page)
                assert len(page.jobs) <= limit
                for job in page.jobs:
                    detail = await _call(reader.job(q, job.id), DETAIL_ERRORS)
                    if detail is not None:
                        _check(detail)
                rows = await _call(reader.summaries(q, [j.id for j in page.jobs], state), DETAIL_ERRORS)
                for row in (rows or {}).values():
                    # BullMQ never plans an unreadable job; Gello's malformed members stay purgeable, and
                    # pg-boss's own statements act on rows with odd timestamps as pg-boss would
                    assert row.malformed is None or reader.backend != "bullmq"
                    _check(row)
                cursor = page.next_cursor
                if cursor is None:
                    break
    for _ in range(2):
        for t in await _call(reader.throughput(disc.queues)) or []:
            _check(t)
    for lat in await _call(reader.latency(disc.queues)) or []:
        _check(lat)
    for history in await _call(reader.history(disc.queues)) or []:
        _check(history)
    for gauge in await _call(reader.gauges(disc.queues)) or []:
        _check(gauge)


# ----------------------------------------------------------------------------- Redis worlds

KINDS = ("none", "list", "zset", "string", "hash", "set")
WEIRD_NUMBERS = [b"1e400", b"-1e400", b"nan", b"inf", b"-inf", b"99999999999999999999999999", b"1700000000000",
                 b"0", b"-5", b"1.5", b"", b" 12 ", b"0x10", b"\xff"]
WEIRD_SCORES = [math.inf, -math.inf, 0.0, -0.0, 1e300, -1e300, 1.5, 1700000000000.0, 5e-324]
byte_values = st.one_of(st.binary(max_size=24), st.sampled_from(WEIRD_NUMBERS))
scores = st.one_of(st.sampled_from(WEIRD_SCORES), st.floats(allow_nan=False), st.integers(-2 ** 53, 2 ** 53))


@st.composite
def redis_key(draw, key: bytes, kinds=KINDS, members=st.binary(max_size=12)):
    """(key, kind, content) for one key of a random type."""
    kind = draw(st.sampled_from(kinds))
    if kind in ("list", "set"):
        return key, kind, draw(st.lists(members, min_size=1, max_size=6))
    if kind == "zset":
        return key, kind, draw(st.dictionaries(members, scores, min_size=1, max_size=6))
    if kind == "hash":
        return key, kind, draw(st.dictionaries(st.one_of(st.binary(max_size=8), st.sampled_from(FIELDS)),
                                               byte_values, min_size=1, max_size=8))
    if kind == "string":
        return key, kind, draw(byte_values)
    return key, kind, None


FIELDS = [b"name", b"timestamp", b"processedOn", b"finishedOn", b"failedReason", b"atm", b"attemptsMade",
          b"priority", b"delay", b"data", b"opts", b"stacktrace", b"returnvalue", b"progress", b"ats", b"parentKey",
          b"version", b"opts.maxLenEvents", b"paused", b"concurrency", b"max", b"duration", b"count",
          b"prevTS", b"prevCount"]
BULL_SUFFIXES = [b"meta", b"id", b"wait", b"paused", b"active", b"prioritized", b"delayed", b"completed", b"failed",
                 b"waiting-children", b"events", b"meta-paused", b"metrics:completed", b"metrics:failed",
                 b"metrics:completed:data", b"metrics:failed:data"]


@st.composite
def bullmq_world(draw):
    """Queues under prefix ``fz`` with random names, state keys of random types, random job ids
    (markers, binary) and job keys of random types with random fields."""
    keys = []
    for name in draw(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=3, unique=True)):
        base = b"fz:" + name + b":"
        ids = draw(st.lists(st.one_of(st.binary(max_size=6), st.sampled_from([b"0:123", b"1", b"repeat:a:1"])),
                            min_size=0, max_size=5, unique=True))
        # meta is usually a BullMQ-shaped hash, so that the queue is found and its keys are read
        keys.append(draw(st.one_of(
            st.just((base + b"meta", "hash", {b"version": b"bullmq:5.0.0", b"opts.maxLenEvents": b"100"})),
            redis_key(base + b"meta"))))
        for suffix in draw(st.lists(st.sampled_from(BULL_SUFFIXES[1:]), max_size=8, unique=True)):
            members = st.sampled_from(ids) if ids else st.binary(max_size=6)
            keys.append(draw(redis_key(base + suffix, members=members)))
        for job_id in ids:
            keys.append(draw(redis_key(base + job_id)))
            if draw(st.booleans()):
                keys.append(draw(redis_key(base + job_id + b":logs")))
    return keys


def _gello_member():
    meta = st.fixed_dictionaries({}, optional={
        "id": st.one_of(st.text(max_size=8), st.integers(), st.none(), st.just("malformed:x")),
        "jobType": st.one_of(st.text(max_size=8), st.integers()),
        "createdAt": st.one_of(st.text(max_size=30), st.sampled_from(["2024-01-02T03:04:05.678Z", "9999-12-31T23:59:59Z",
                                                                      "0001-01-01T00:00:00Z", "+275760-09-13T00:00:00Z"]),
                               st.integers(), st.floats()),
        "failedAt": st.one_of(st.text(max_size=30), st.none(), st.just("2024-01-02T03:04:05Z")),
        "startedAt": st.one_of(st.text(max_size=30), st.none()),
        "scheduledAt": st.one_of(st.text(max_size=30), st.none(), st.just("2024-01-02T03:04:05Z")),
        "attempts": st.one_of(st.integers(), st.floats(), st.text(max_size=4), st.none()),
        "maxAttempts": st.one_of(st.integers(), st.floats(), st.none()),
        "priority": st.one_of(st.sampled_from(["low", "normal", "high", "critical"]), st.text(max_size=5), st.integers()),
        "idempotencyKey": st.one_of(st.text(max_size=8), st.none(), st.integers()),
    })
    job = st.fixed_dictionaries({"meta": st.one_of(meta, st.text(max_size=4), st.none())},
                                optional={"payload": st.recursive(st.none() | st.integers() | st.text(max_size=8),
                                                                  lambda c: st.lists(c, max_size=3), max_leaves=6),
                                          "lastError": st.one_of(st.text(max_size=20), st.integers(), st.none())})
    return st.one_of(job.map(lambda j: json.dumps(j).encode()), st.binary(max_size=24),
                     st.just(b"[" * 5000 + b"]" * 5000), st.just(b'{"meta": {"id": "\\ud800"}}'))


@st.composite
def gello_world(draw):
    keys = []
    for name in draw(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=3, unique=True)):
        base = b"gello:queue:" + name + b":"
        for suffix in draw(st.lists(st.sampled_from([b"pending", b"processing", b"scheduled", b"dead"]),
                                    min_size=1, max_size=4, unique=True)):
            # the right type most of the time, so that members are parsed
            right = "list" if suffix in (b"pending", b"processing") else "zset"
            kinds = (right,) * 4 + KINDS
            keys.append(draw(redis_key(base + suffix, kinds=kinds, members=_gello_member())))
    if draw(st.booleans()):
        keys.append((b"gello:idempotency:" + draw(st.binary(max_size=6)), "string", draw(byte_values)))
    return keys


def _write(client, keys) -> None:
    client.flushall()  # the private server of this module: nothing else lives there
    pipe = client.pipeline(transaction=False)
    for key, kind, content in keys:
        pipe.delete(key)
        if kind == "list":
            pipe.rpush(key, *content)
        elif kind == "set":
            pipe.sadd(key, *content)
        elif kind == "zset":
            pipe.zadd(key, content)
        elif kind == "hash":
            pipe.hset(key, mapping=content)
        elif kind == "string":
            pipe.set(key, content)
    pipe.execute()


@pytest.fixture(scope="module")
def fuzz_redis():
    server = PrivateRedis(ports=FAULT_PORTS)
    client = server.client()
    yield server, client
    client.close()
    server.close()


async def _bullmq_reader(url: str, pinned: bool):
    from backends.registry import ConnectOptions, open_readers

    readers = await open_readers(url, ConnectOptions(prefixes=["fz"] if pinned else [], connect_timeout=5,
                                                     backend="bullmq"))
    return readers[0]


@pytest.mark.timeout(180)
@FUZZ
@given(world=bullmq_world(), pinned=st.booleans())
def test_fuzz_bullmq_and_bull_readers(fuzz_redis, world, pinned):
    server, client = fuzz_redis
    _write(client, world)

    async def run():
        reader = await _bullmq_reader(server.url, pinned)
        try:
            await exercise(reader)
        finally:
            await reader.close()

    asyncio.run(run())


@pytest.mark.timeout(180)
@FUZZ
@given(world=gello_world())
def test_fuzz_gello_redis_reader(fuzz_redis, world):
    from backends.gello_redis.reader import GelloRedisReader
    from backends.redis_client import open_client

    server, client = fuzz_redis
    _write(client, world)

    async def run():
        url = parse(server.url)
        reader = GelloRedisReader(open_client(url, 5, 5), url)
        try:
            await exercise(reader)
        finally:
            await reader.close()

    asyncio.run(run())


# ----------------------------------------------------------------------------- PostgreSQL rows

ODD_NAME = "q \u202e\x1b[31m名\t"
PG_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
SOME_TIME = st.one_of(st.sampled_from(["infinity", "-infinity", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59+00",
                                       "20000-01-01 00:00:00+00", "4000-01-01 00:00:00 BC",
                                       "1970-01-01 00:00:00+00", "2024-02-29 12:00:00+00"]),
                      st.datetimes(timezones=st.just(dt.timezone.utc)).map(str))
TIMES = st.one_of(st.none(), SOME_TIME)
SOME_JSON = st.one_of(
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                 | PG_TEXT,
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(PG_TEXT, c, max_size=3), max_leaves=8).map(json.dumps),
    st.integers(900, 3000).map(lambda n: "[" * n + "]" * n),  # deeper than Python's json recursion limit
    st.just('{"message": {"not": "a string"}, "stack": 5}'),
)
JSONS = st.one_of(st.none(), SOME_JSON)
TEXTS = PG_TEXT
INT32 = st.integers(-2 ** 31, 2 ** 31 - 1)


@pytest.fixture(scope="module")
def pgboss_schema(postgres_url):
    from tests import pgboss_helpers as h

    schema = h.new_schema("fuzz")

    async def setup():
        await h.install(postgres_url, "v12", schema)
        async with h.admin(postgres_url) as conn:
            for name in ("fz", ODD_NAME):
                await h.create_queue(conn, schema, name)

    asyncio.run(setup())
    yield schema
    asyncio.run(h.drop(postgres_url, schema))


pgboss_rows = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["fz", ODD_NAME]),
    "state": st.sampled_from(["created", "retry", "active", "completed", "cancelled", "failed"]),
    "priority": INT32, "retry_count": INT32, "retry_limit": INT32,
    "data": JSONS, "output": JSONS,
    "start_after": SOME_TIME, "created_on": SOME_TIME,
    "started_on": TIMES, "completed_on": TIMES, "singleton_key": st.one_of(st.none(), TEXTS), "policy": TEXTS,
}), min_size=1, max_size=8)


@pytest.mark.timeout(180)
@FUZZ_PG
@given(rows=pgboss_rows)
def test_fuzz_pgboss_rows(postgres_url, pgboss_schema, rows):
    from backends.pgboss.reader import PgBossReader
    from backends.postgres import open_pool
    from tests import pgboss_helpers as h

    schema = pgboss_schema

    async def run():
        async with h.admin(postgres_url) as conn:
            await conn.execute(f'DELETE FROM "{schema}".job')
            for r in rows:
                await conn.execute(
                    f'''INSERT INTO "{schema}".job (name, state, priority, retry_count, retry_limit, data, output,
                            start_after, created_on, started_on, completed_on, singleton_key, policy)
                        VALUES ($1, $2::text::"{schema}".job_state, $3, $4, $5, $6::jsonb, $7::jsonb,
                                $8::text::timestamptz, $9::text::timestamptz, $10::text::timestamptz, $11::text::timestamptz, $12, $13)''',
                    r["name"], r["state"], r["priority"], r["retry_count"], r["retry_limit"], r["data"], r["output"],
                    r["start_after"], r["created_on"], r["started_on"], r["completed_on"], r["singleton_key"],
                    r["policy"])
        url = parse(postgres_url)
        reader = PgBossReader(await open_pool(url, 5, 10), url, schema=schema)
        try:
            await exercise(reader)
        finally:
            await reader.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def gello_schema(postgres_url):
    from tests import pgboss_helpers as h
    from tests.gello_reference import ddl

    schema = h.new_schema("gfuzz")

    async def setup():
        async with h.admin(postgres_url) as conn:
            for stmt in ddl(schema):
                await conn.execute(stmt)

    asyncio.run(setup())
    yield schema
    asyncio.run(h.drop(postgres_url, schema))


JOB_COLUMNS = ("id", "queue", "job_type", "priority", "payload", "attempts", "max_attempts", "created_at",
               "scheduled_at", "started_at", "idempotency_key", "last_error")
FAILED_COLUMNS = ("job_id", "queue", "job_type", "payload", "exception", "attempts", "failed_at")
gello_rows = st.tuples(
    st.lists(st.fixed_dictionaries({
        "id": TEXTS, "queue": st.sampled_from(["fz", ODD_NAME]), "job_type": TEXTS, "priority": TEXTS,
        "payload": SOME_JSON, "attempts": INT32, "max_attempts": INT32,
        "created_at": SOME_TIME, "scheduled_at": SOME_TIME,
        "started_at": TIMES, "idempotency_key": st.one_of(st.none(), TEXTS), "last_error": st.one_of(st.none(), TEXTS),
    }), max_size=6, unique_by=lambda r: r["id"]),
    st.lists(st.fixed_dictionaries({
        "job_id": TEXTS, "queue": st.sampled_from(["fz", ODD_NAME]), "job_type": TEXTS,
        "payload": SOME_JSON, "exception": TEXTS, "attempts": INT32,
        "failed_at": SOME_TIME,
    }), max_size=6),
)


@pytest.mark.timeout(180)
@FUZZ_PG
@given(tables=gello_rows)
def test_fuzz_gello_postgres_rows(postgres_url, gello_schema, tables):
    from backends.gello_postgres.reader import GelloPgReader
    from backends.gello_postgres.discovery import open_pool
    from tests import pgboss_helpers as h

    schema = gello_schema
    jobs, failed = tables

    async def run():
        async with h.admin(postgres_url) as conn:
            await conn.execute(f'DELETE FROM "{schema}".jobs')
            await conn.execute(f'DELETE FROM "{schema}".failed_jobs')
            for r in jobs:
                await conn.execute(
                    f'''INSERT INTO "{schema}".jobs (id, queue, job_type, priority, payload, attempts, max_attempts,
                            created_at, scheduled_at, started_at, idempotency_key, last_error)
                        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8::text::timestamptz, $9::text::timestamptz, $10::text::timestamptz,
                                $11, $12)''', *(r[c] for c in JOB_COLUMNS))
            for r in failed:
                await conn.execute(
                    f'''INSERT INTO "{schema}".failed_jobs (job_id, queue, job_type, payload, exception, attempts,
                            failed_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::text::timestamptz)''',
                    *(r[c] for c in FAILED_COLUMNS))
        url = parse(postgres_url)
        reader = GelloPgReader(await open_pool(url, 5, 10, "queue-console"), url, schema=schema)
        try:
            await exercise(reader)
        finally:
            await reader.close()

    asyncio.run(run())
