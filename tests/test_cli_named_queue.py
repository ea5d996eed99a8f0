"""A command that names its queue looks it up directly: no SCAN of the keyspace (private Redis,
whose command statistics the test resets and reads)."""
from __future__ import annotations

import json

import pytest
import redis

from console.cli import main
from tests.cli_harness import isolated_env  # noqa: F401 (autouse: no developer config or environment)


@pytest.fixture
def sync(private_redis):
    r = redis.Redis.from_url(private_redis.url)
    r.flushall()  # the test's own server
    yield r
    r.close()


def _queue(r, prefix: str, name: str, failed: int) -> None:
    base = f"{prefix}:{name}"
    r.hset(f"{base}:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0"})
    for i in range(1, failed + 1):
        r.hset(f"{base}:{i}", mapping={"name": "n", "data": "{}", "opts": "{}", "timestamp": 1000 + i,
                                       "finishedOn": 2000 + i, "failedReason": f"boom {i}", "atm": 1})
        r.zadd(f"{base}:failed", {str(i): 2000 + i})
    for i in range(300):  # other programs' keys and other queues: what a scan would walk
        r.set(f"other:{i}", 1)
    r.hset("bull:elsewhere:meta", mapping={"opts.maxLenEvents": 10000})


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def scans(r) -> int:
    return r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)


@pytest.mark.parametrize("pinned", [False, True])
def test_jobs_job_and_dlq_list_of_a_named_queue_do_not_scan(capsys, private_redis, sync, pinned):
    _queue(sync, "bull", "mail", 3)
    flags = ["--url", private_redis.url] + (["--prefix", "bull"] if pinned else [])
    sync.config_resetstat()
    code, out, err = run(capsys, "jobs", "mail", "--state", "failed", "--json", *flags)
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["queue"], doc["total"], [j["id"] for j in doc["jobs"]]) == ("mail", 3, ["3", "2", "1"])
    code, out, err = run(capsys, "job", "mail", "2", "--json", *flags)
    assert code == 0, err
    assert json.loads(out)["summary"]["id"] == "2"
    code, out, err = run(capsys, "dlq", "list", "mail", "--json", *flags)
    assert code == 0, err
    assert scans(sync) == 0
    # the whole-server verb still discovers
    code, out, err = run(capsys, "status", "--json", *flags)
    assert code == 0, err
    assert {q["queue"] for q in json.loads(out)["queues"]} == {"mail", "elsewhere"}
    assert scans(sync) > 0


def test_a_queue_under_another_prefix_is_still_found_by_discovery(capsys, private_redis, sync):
    _queue(sync, "myapp", "mail", 2)
    code, out, err = run(capsys, "jobs", "mail", "--state", "failed", "--json", "--url", private_redis.url)
    assert code == 0, err
    assert [j["id"] for j in json.loads(out)["jobs"]] == ["2", "1"]


def test_an_unknown_queue_is_still_exit_2_naming_what_exists(capsys, private_redis, sync):
    _queue(sync, "bull", "mail", 1)
    code, out, err = run(capsys, "jobs", "nosuch", "--url", private_redis.url)
    assert code == 2
    assert "no queue named 'nosuch'" in err and "mail" in err


def test_status_of_named_queues_looks_them_up_without_a_scan(capsys, private_redis, sync):
    _queue(sync, "bull", "mail", 3)
    _queue(sync, "bull", "sms", 1)
    flags = ["--url", private_redis.url]
    sync.config_resetstat()
    code, out, err = run(capsys, "status", "mail", "bullmq:sms", "--json", *flags)
    assert code == 0, err
    doc = json.loads(out)
    assert {q["queue"]: q["counts"]["failed"] for q in doc["queues"]} == {"mail": 3, "sms": 1}
    assert any("looked up 2 named queues directly" in n for n in doc["notes"])
    assert scans(sync) == 0
    # a name the lookup cannot find: the connection is discovered, and the unknown name is exit 2
    code, out, err = run(capsys, "status", "mail", "nosuch", *flags)
    assert code == 2 and "no queue named 'nosuch'" in err
    assert scans(sync) > 0
