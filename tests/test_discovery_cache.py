"""The kept discovery (backends/bullmq/discovery.py, the cache): ``status`` on a big keyspace lists
the queues of the last complete scan instead of walking the keyspace again, says so, drops queues
deleted since, and ``--rescan`` walks it now; the TUI's background discovery starts from it. A
server of the test's own (its keyspace is filled past CACHE_MIN_KEYS and its command statistics
are read)."""
from __future__ import annotations

import asyncio
import json

import pytest
import redis

from backends.bullmq import discovery
from backends.registry import ConnectOptions, open_readers
from console.cli import main
from tests.cli_harness import isolated_env  # noqa: F401 (autouse: no developer config or environment)

FILL = """
for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'filler:' .. i, '1') end
return 1
"""


@pytest.fixture
def sync(private_redis):
    r = redis.Redis.from_url(private_redis.url)
    r.flushall()  # the test's own server
    yield r
    r.close()


def _big(r) -> None:
    r.eval(FILL, 0, discovery.CACHE_MIN_KEYS)


def _queue(r, name: str, waiting: int = 1) -> None:
    r.hset(f"bull:{name}:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0"})
    r.lpush(f"bull:{name}:wait", *[str(i) for i in range(1, waiting + 1)])


def _drop(r, name: str) -> None:
    r.delete(f"bull:{name}:meta", f"bull:{name}:wait")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def scans(r) -> int:
    return r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)


def status(capsys, url: str, *flags: str) -> tuple[dict[str, int], list[str]]:
    code, out, err = run(capsys, "status", "--json", "--url", url, *flags)
    assert code == 0, err
    doc = json.loads(out)
    return {q["queue"]: q["counts"]["waiting"] for q in doc["queues"]}, doc["notes"]


def test_status_lists_the_kept_scan_says_so_and_rescan_walks_again(capsys, private_redis, sync):
    _big(sync)
    _queue(sync, "old", 2)
    _queue(sync, "gone")
    queues, notes = status(capsys, private_redis.url)
    assert queues == {"old": 2, "gone": 1} and notes == []  # a full scan, kept
    assert sync.ttl(discovery.cache_key("queue-console", None)) > 0

    _queue(sync, "new")
    _drop(sync, "gone")
    sync.rpush("bull:old:wait", "3")
    before = scans(sync)
    queues, notes = status(capsys, private_redis.url)
    assert scans(sync) == before  # no SCAN at all: not of BullMQ keys, not for Gello detection
    assert queues == {"old": 3}  # counts are read now; a queue deleted since drops out; "new" is not seen
    [note] = notes
    assert "queues as of the scan" in note and "--rescan" in note and "not listed" in note

    queues, notes = status(capsys, private_redis.url, "--rescan")
    assert scans(sync) > before
    assert queues == {"old": 3, "new": 1} and notes == []
    queues, notes = status(capsys, private_redis.url)  # the rescan was kept
    assert queues == {"old": 3, "new": 1} and len(notes) == 1


def test_pinned_prefixes_keep_a_scan_of_their_own(capsys, private_redis, sync):
    _big(sync)
    _queue(sync, "a")
    sync.hset("other:b:meta", mapping={"opts.maxLenEvents": 10000})
    assert status(capsys, private_redis.url, "--prefix", "other")[0] == {"b": 0}
    queues, notes = status(capsys, private_redis.url)  # nothing kept for "every prefix" yet: a scan
    assert queues == {"a": 1, "b": 0} and notes == []


def test_read_only_keeps_nothing(capsys, private_redis, sync):
    _big(sync)
    _queue(sync, "a")
    code, out, err = run(capsys, "--read-only", "status", "--json", "--url", private_redis.url)
    assert code == 0, err
    assert sync.exists(discovery.cache_key("queue-console", None)) == 0
    _queue(sync, "b")
    code, out, err = run(capsys, "--read-only", "status", "--json", "--url", private_redis.url)
    assert code == 0, err
    assert {q["queue"] for q in json.loads(out)["queues"]} == {"a", "b"}


def test_a_small_keyspace_is_scanned_every_time(capsys, redis_url, prefix, sync_redis, monkeypatch, tmp_path):
    """Below CACHE_MIN_KEYS nothing is kept or read: a queue created a moment ago is listed."""
    for name in ("QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_CONTEXT", "QUEUE_CONSOLE_STORE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(cfg))
    if sync_redis.dbsize() >= discovery.CACHE_MIN_KEYS:
        pytest.skip("the test server's keyspace is not small")
    sync_redis.hset(f"{prefix}:a:meta", mapping={"opts.maxLenEvents": 10000})
    assert status(capsys, redis_url, "--prefix", prefix) == ({"a": 0}, [])
    sync_redis.hset(f"{prefix}:b:meta", mapping={"opts.maxLenEvents": 10000})
    assert status(capsys, redis_url, "--prefix", prefix) == ({"a": 0, "b": 0}, [])
    assert sync_redis.exists(discovery.cache_key("queue-console", [prefix])) == 0


def test_background_discovery_starts_from_the_kept_scan(capsys, private_redis, sync):
    """The TUI's first slice lists the kept queues at once (not complete, and saying why); its own
    first complete pass replaces them (a queue deleted since goes, one created since comes)."""
    _big(sync)
    _queue(sync, "kept")
    _queue(sync, "gone")
    status(capsys, private_redis.url)  # keeps the scan
    _drop(sync, "gone")
    _queue(sync, "new")

    async def go() -> tuple[list[str], bool, str | None, list[str]]:
        [reader, *_] = await open_readers(private_redis.url, ConnectOptions())
        try:
            first = await reader.discover_step(0.0)
            last = first
            for _ in range(200):
                if last.complete:
                    break
                last = await reader.discover_step(1.0)
            return [q.name for q in first.queues], first.complete, first.note, [q.name for q in last.queues]
        finally:
            await reader.close()

    first, complete, note, last = asyncio.run(go())
    # (a slice of no time walks at most one SCAN step of 200,000 keys: "kept" comes from the kept scan)
    assert "kept" in first and "gone" not in first and not complete and "last complete scan" in note
    assert sorted(last) == ["kept", "new"]
