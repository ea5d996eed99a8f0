"""Redis Cluster and Sentinel: what routing by slot and the cached sentinel master cost.

    QC_TEST_CLUSTER_PORTS=7100-7119 QC_TEST_SENTINEL_PORTS=7130-7159 python -m tests.benchmarks.bench_topology

Starts its own servers on loopback (tests/topology_servers.py: a three-master cluster; a master,
a replica and three sentinels), never a shared one, and stops them at the end.

- **Cluster.** BullMQ for Node (tests/interop, ioredis's Cluster client) produces Q ``{bull}`` queues
  (one slot) and Q ``bull:{qN}`` queues (one slot each, spread over the three masters), a few jobs
  each with some failed. The console's counts must equal getJobCounts; then ``reader.statuses()`` of
  every queue (one pipelined round trip per master, the masters at once) is timed against Node's
  ``getJobCounts`` of every queue with ``Promise.all`` (tests/interop/cluster_driver.js ``time``).
  Node times its own rounds in its own process; both after 3 untimed rounds.
- **Sentinel.** A refresh of Q queues' counts and one job detail through ``redis+sentinel://``, with
  the master's address cached (now) and asked of a sentinel before every command (before: the same
  pool told to ask every time), round-robin in one loop.

Writes the section "Redis Cluster and Sentinel" of docs/performance.md (only that section).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import subprocess

from backends.registry import ConnectOptions, open_readers
from tests.benchmarks.bench_bullmq import measure, ms, ratio_words
from tests.benchmarks.bench_pgboss import write_doc
from tests.interop import node_env

BEGIN = "<!-- topology section: written by tests/benchmarks/bench_topology.py; edit only outside it -->"
END = "<!-- end of the topology section -->"
DRIVER = node_env.INTEROP_DIR / "cluster_driver.js"


def drive(env, port: int, prefix: str, *args: str) -> dict:
    done = subprocess.run([env.node, str(DRIVER), f"127.0.0.1:{port}", prefix, *args], cwd=node_env.INTEROP_DIR,
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


async def bench_cluster(queues: int, rounds: int) -> list[str]:
    from tests.test_topology_cluster import names_on_every_master
    from tests.topology_servers import RedisCluster

    env = node_env.require_node()
    cluster = await asyncio.to_thread(RedisCluster)
    try:
        port = cluster.ports[0]
        plain = [f"q{i}" for i in range(queues)]
        tagged = names_on_every_master(cluster, "bull", -(-queues // 3))[:queues]
        made = {}
        for prefix, names in (("{bull}", plain), ("bull", tagged)):
            doc = await asyncio.to_thread(drive, env, port, prefix, "produce",
                                          ",".join(f"{n}:4:{i % 3}" for i, n in enumerate(names)))
            made.update({(prefix, n): c for n, c in doc["counts"].items()})
        [reader] = await open_readers(f"redis://127.0.0.1:{port}/0",
                                      ConnectOptions(prefixes=["{bull}", "bull"], backend="bullmq"))
        try:
            refs = [q for q in (await reader.discover()).queues if (q.namespace, q.name) in made]
            assert len(refs) == 2 * queues, f"discovered {len(refs)} of {2 * queues} queues"
            for status in await reader.statuses(refs):
                want = made[(status.queue.namespace, status.queue.name)]
                assert {k: v for k, v in status.native.items() if k in want} == want, status.queue.qualified
            ours = (await measure({"console": lambda: reader.statuses(refs)}, rounds))["console"].median
            items = ",".join(f"{q.namespace}|{q.name}" for q in refs)
            node_ms = (await asyncio.to_thread(drive, env, port, "-", "time", items, str(rounds)))["ms"]
            theirs = sorted(node_ms)[len(node_ms) // 2]
            masters = len({cluster.port_of(f"{q.namespace}:{q.name}:meta") for q in refs})
        finally:
            await reader.close()
    finally:
        cluster.close()
    return [
        "### Counts on a three-master cluster",
        "",
        f"{2 * queues} queues ({queues} under `{{bull}}`, {queues} named `bull:{{qN}}` on {masters} masters), "
        f"counts checked equal to getJobCounts first; {rounds} rounds each, medians in ms:",
        "",
        "| call | median ms |",
        "|---|---:|",
        f"| queue-console `statuses()` of every queue | {ms(ours)} |",
        f"| BullMQ for Node `getJobCounts` of every queue, `Promise.all` | {ms(theirs)} |",
        "",
        f"queue-console is {ratio_words(ours, theirs)} BullMQ for Node here (ratio {theirs / ours:.2f}). Node "
        "times its rounds in its own process, after the console's (not round-robin): on a busy machine the two "
        "medians move apart from run to run.",
    ]


async def bench_sentinel(queues: int, rounds: int) -> list[str]:
    from backends import redis_topology
    from tests.fixed_data import write_fixed_queue
    from tests.topology_servers import SentinelSet

    sentinels = await asyncio.to_thread(SentinelSet)
    try:
        with sentinels.master() as c:
            for i in range(queues):
                write_fixed_queue(c, "qcbench", f"q{i}", failed=5, completed=5, waiting=5, delayed=0)
        options = ConnectOptions(prefixes=["qcbench"], backend="bullmq")
        [cached] = await open_readers(sentinels.url, options)
        [asking] = await open_readers(sentinels.url, options)

        async def always(self) -> bool:  # the pool as it was: a sentinel asked before every command
            return True

        pool = asking.client.connection_pool
        pool._master_may_have_changed = always.__get__(pool)
        assert isinstance(pool, redis_topology._fenced_pool_class())
        try:
            refs = (await cached.discover()).queues
            job_id = (await cached.page(refs[0], "failed", limit=1)).jobs[0].id
            counts = await measure({"cached": lambda: cached.statuses(refs), "asking": lambda: asking.statuses(refs)},
                                   rounds)
            detail = await measure({"cached": lambda: cached.job(refs[0], job_id),
                                    "asking": lambda: asking.job(refs[0], job_id)}, rounds)
        finally:
            await cached.close()
            await asking.close()
    finally:
        sentinels.close()
    rows = [(f"counts of {queues} queues (`statuses()`)", counts), ("one job's detail (`job()`)", detail)]
    return [
        "### Sentinel: the master cached instead of asked before every command",
        "",
        f"`redis+sentinel://` (a master, a replica, three sentinels on loopback); {rounds} rounds, round-robin, "
        "medians in ms:",
        "",
        "| call | cached (now) | asked every command (before) | ratio |",
        "|---|---:|---:|---:|",
        *(f"| {label} | {ms(s['cached'].median)} | {ms(s['asking'].median)} | "
          f"{s['asking'].median / s['cached'].median:.2f} |" for label, s in rows),
        "",
        "On loopback a round trip to a sentinel is about as cheap as one to the master; on a network each "
        "saved round trip is a network round trip.",
    ]


async def run(args) -> str:
    lines = [BEGIN, "", "## Redis Cluster and Sentinel", "",
             f"`python -m tests.benchmarks.bench_topology --queues {args.queues} --rounds {args.rounds}`, "
             f"{datetime.date.today().isoformat()}, {platform.machine()}, Python {platform.python_version()}.", ""]
    lines += await bench_cluster(args.queues, args.rounds)
    lines += [""] + await bench_sentinel(args.queues, args.rounds)
    return "\n".join(lines + ["", END]) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queues", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--no-doc", action="store_true", help="print the section instead of writing docs/performance.md")
    args = ap.parse_args()
    section = asyncio.run(run(args))
    if not args.no_doc:
        write_doc(section, BEGIN, END)
    print(section)


if __name__ == "__main__":
    main()
