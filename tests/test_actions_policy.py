"""The policy engine plans every manual requeue: budgets shared through the ledger on the server,
failure classes refused unless forced, paced starts, and --dry-run showing the plan that runs."""
from __future__ import annotations

import asyncio
import json

import pytest

from console.actions import Actions, Selection
from console.policy import policy_from_toml
from tests.test_actions_bullmq import World, assert_conserved, cli, job_states, wait_until  # noqa: F401


@pytest.fixture
async def world(redis_url, prefix):
    w = World(redis_url, prefix)
    yield w
    await w.close()


@pytest.fixture(autouse=True)
def own_store_prefix(monkeypatch, prefix):
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_PREFIX", f"{prefix}:console")


def acts(reader, toml: str, **kw) -> Actions:
    return Actions(lambda q: reader, operator="test@host", policy=policy_from_toml(toml, "test.toml"), **kw)


async def fail_again(world: World, ids: list[str]) -> None:
    world.fail = True
    world.start_worker()
    await wait_until(lambda: world._all_failed(ids), what="jobs to fail again")


async def test_per_job_budget_is_shared_across_consoles_through_the_ledger(world, sync_redis):
    ids = await world.make_failed(4)
    policy = "[policy.budgets]\nper_job = 1\n"
    first = acts(await world.reader(), policy)
    p1 = await first.preview("retry", Selection(world.ref()))
    assert p1.plan is not None and p1.plan.summary.now == 4
    r1 = await first.execute(p1)
    assert r1.complete and r1.done == 4 and r1.refused == 0
    await fail_again(world, ids)
    # another operator, another console, same server: the ledger says each job had its requeue
    second = acts(await world.reader(), policy)
    p2 = await second.preview("retry", Selection(world.ref()))
    assert p2.plan.summary.refused == 4
    assert {d.reason for d in p2.plan.refused} == {"job_budget"}
    r2 = await second.execute(p2)
    assert r2.done == 0 and r2.refused == 4
    assert sorted(job_states(sync_redis, world.prefix, "work")["failed"]) == sorted(ids)


async def test_permanent_failures_refused_unless_forced(world, sync_redis):
    ids = await world.make_failed(3)
    policy = '[[policy.failure_classes]]\npattern = "boom"\nclass = "permanent"\n'
    await world.stop_worker()
    plain = acts(await world.reader(), policy)
    p = await plain.preview("retry", Selection(world.ref(), job_ids=ids[:2]))
    assert p.plan.summary.refused == 2 and {d.reason for d in p.plan.refused} == {"permanent"}
    report = await plain.execute(p)
    assert report.done == 0
    forced = acts(await world.reader(), policy, force="permanent")
    report = await forced.execute(await forced.preview("retry", Selection(world.ref(), job_ids=ids[:2])))
    assert report.done == 2 and report.refused == 0
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert sorted(states["wait"]) == sorted(ids[:2])


async def test_rate_limited_plan_paces_the_requeues_and_runs_them_all(world, sync_redis):
    ids = await world.make_failed(5)
    await world.stop_worker()
    a = acts(await world.reader(), "[policy.fairness]\nrate = 10\n")
    p = await a.preview("retry", Selection(world.ref()))
    delays = sorted(d.delay_ms for d in p.plan.accepted)
    assert all(b - a_ >= 100 for a_, b in zip(delays, delays[1:])), delays  # never faster than the rate
    report = await a.execute(p)
    assert report.complete and report.done == 5
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert sorted(states["wait"]) == sorted(ids)
    ledger = sync_redis.xrange(f"{world.prefix}:console:ledger")
    assert sorted(json.loads(e[1][b"record"])["job_id"] for e in ledger) == sorted(ids)


async def test_dry_run_shows_the_plan_that_then_runs(world, sync_redis, capsys, tmp_path):
    ids = await world.make_failed(4)
    await world.stop_worker()
    policy = tmp_path / "policy.toml"
    policy.write_text('[policy.budgets]\nper_job = 3\n[[policy.failure_classes]]\npattern = "boom 2$"\nclass = "fatal"\n')
    flags = ["--url", world.url, "--prefix", world.prefix, "--policy", str(policy), "--json"]
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--dry-run", *flags)
    assert code == 0, err
    dry = json.loads(out)["previews"][0]
    assert dry["plan"]["summary"]["refused"] == 1
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--yes", *flags)
    assert code == 4, err  # one job refused by the policy
    report = json.loads(out)["reports"][0]
    assert report["plan_fingerprint"] == dry["plan_fingerprint"]
    assert report["done"] == 3 and report["refused"] == 1
    states = assert_conserved(sync_redis, world.prefix, "work", set(ids))
    assert states["failed"] == ["2"]


async def test_bad_policy_file_is_a_usage_error(world, capsys, tmp_path):
    await world.make_failed(1)
    policy = tmp_path / "p.toml"
    policy.write_text("[policy.budgets]\nper_job = -1\n")
    code, out, err = await asyncio.to_thread(cli, capsys, "dlq", "retry", "work", "--all", "--yes", "--url", world.url,
                                             "--prefix", world.prefix, "--policy", str(policy))
    assert code == 2 and "per_job" in err and "-1" in err and str(policy) in err


async def test_a_run_refused_because_the_plan_changed_is_audited_as_refused_not_done(world, sync_redis):
    from console.actions import Refused

    ids = await world.make_failed(4)
    await world.stop_worker()
    reader = await world.reader()
    a = acts(reader, "[policy.budgets]\nper_job = 3\n")
    preview = await a.preview("retry", Selection(world.ref()))
    other = acts(await world.reader(), "[policy.budgets]\nper_job = 3\n")
    await other.execute(await other.preview("retry", Selection(world.ref(), job_ids=[ids[0]])))
    with pytest.raises(Refused):
        await a.execute(preview)
    record = (await reader.console_store().audit_read(1))[0]
    assert record["count"] == 0 and record["result"].startswith("0 of 4, stopped by: refused: the plan changed")
