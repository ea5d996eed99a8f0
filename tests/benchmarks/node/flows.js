'use strict';
// tests/benchmarks/bench_flows.py's BullMQ for Node side (the pinned tests/interop packages):
//   node flows.js <redis-url> <prefix> <queue> <children> <rounds>
// Makes one flow with FlowProducer (a parent in <queue>-parents with <children> delayed children in
// <queue>-kids, one FlowProducer.add), then times the library's own reads of that parent, each <rounds> times, and prints one JSON line:
// {"parent": id, "build_ms": n, "counts": {...}, "getDependenciesCount": [ms...], "getDependencies50": [ms...]}
const path = require('path');
const { Queue, Job, FlowProducer } = require(path.join(__dirname, '..', '..', 'interop', 'node_modules', 'bullmq'));

const [url, prefix, queue, children, rounds] = process.argv.slice(2);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };

async function main() {
  const n = Number(children);
  const flow = new FlowProducer({ connection, prefix });
  const t0 = performance.now();
  const tree = await flow.add({
    name: 'parent', queueName: `${queue}-parents`, data: {}, opts: { jobId: `parent-${n}` },
    children: Array.from({ length: n }, (_, i) => ({ name: 'kid', queueName: `${queue}-kids`, data: { i },
      opts: { delay: 3600000 } })),
  });
  const buildMs = performance.now() - t0;
  await flow.close();
  const parents = new Queue(`${queue}-parents`, { connection, prefix });
  const parent = await Job.fromId(parents, tree.job.id);
  const out = { parent: parent.id, build_ms: buildMs, counts: await parent.getDependenciesCount(),
    getDependenciesCount: [], getDependencies50: [] };
  for (let r = 0; r < Number(rounds); r++) {
    let t = performance.now();
    await parent.getDependenciesCount();
    out.getDependenciesCount.push(performance.now() - t);
    t = performance.now();
    await parent.getDependencies({ unprocessed: { cursor: 0, count: 50 } });
    out.getDependencies50.push(performance.now() - t);
  }
  await parents.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().then(() => process.exit(0), err => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
