#!/usr/bin/env node
/*
 * Interop: flows made by BullMQ for Node's FlowProducer, moved by its own Worker, then reported by
 * the library itself (Job.getDependenciesCount, Job.getDependencies, Job.getState, Job.parentKey)
 * as one JSON line on stdout. The test reads the same keys with queue-console's reader.
 *
 *   node flows.js <redis-url> <key-prefix> <queue-name-base> <v6|v5>
 *
 * Parents live in <base>-parents (no worker: they stay where the children leave them); children
 * in <base>-kids, processed by one worker:
 *   parent-mixed  3 children that complete (processed), 1 that fails with ignoreDependencyOnFailure
 *                 (ignored), 2 delayed an hour (still pending): stays waiting-children
 *   parent-fpof   1 child that fails with failParentOnFailure (failed / unsuccessful), 1 delayed
 *   parent-big    120 delayed children (more than the reader lists: the cap)
 * Exit 2: the flows could not be built; 3: hard timeout (60 s).
 */
'use strict';

const [redisUrl, prefix, base, lib] = process.argv.slice(2);
if (!redisUrl || !prefix || !base || !['v6', 'v5'].includes(lib)) {
  process.stderr.write('usage: node flows.js <redis-url> <key-prefix> <queue-name-base> <v6|v5>\n');
  process.exit(64);
}
const { connectionFromUrl, bullmqOf, hardTimeout } = require('./node_common');
const { bullmq, version: pkgVersion, pkgName } = bullmqOf(lib);
const { Queue, Worker, Job, FlowProducer } = bullmq;

const hardTimer = hardTimeout(60000, 'flows');

const connection = connectionFromUrl(redisUrl);
const names = { parents: `${base}-parents`, kids: `${base}-kids` };
const HOUR = 3600000;
const sleep = ms => new Promise(r => setTimeout(r, ms));

function kid(kind, opts = {}) {
  return { name: `kid-${kind}`, queueName: names.kids, data: { kind }, opts };
}

async function main() {
  const parents = new Queue(names.parents, { connection, prefix });
  const kids = new Queue(names.kids, { connection, prefix });
  const flow = new FlowProducer({ connection, prefix });
  const added = [];
  added.push(await flow.add({
    name: 'parent', queueName: names.parents, data: {}, opts: { jobId: 'parent-mixed' },
    children: [kid('ok'), kid('ok'), kid('ok'), kid('fail', { ignoreDependencyOnFailure: true }),
      kid('later', { delay: HOUR }), kid('later', { delay: HOUR })],
  }));
  added.push(await flow.add({
    name: 'parent', queueName: names.parents, data: {}, opts: { jobId: 'parent-fpof' },
    children: [kid('fail', { failParentOnFailure: true }), kid('later', { delay: HOUR })],
  }));
  added.push(await flow.add({
    name: 'parent', queueName: names.parents, data: {}, opts: { jobId: 'parent-big' },
    children: Array.from({ length: 120 }, () => kid('later', { delay: HOUR })),
  }));
  await flow.close();

  const worker = new Worker(names.kids, async job => {
    if (job.data.kind === 'fail') throw new Error(`child ${job.id} failed on purpose`);
    return { child: job.id };
  }, { connection, prefix, concurrency: 4 });
  // wait until every runnable child has finished (3 completed, 2 failed)
  for (const deadline = Date.now() + 30000; ;) {
    const c = await kids.getJobCounts('completed', 'failed');
    if (c.completed === 3 && c.failed === 2) break;
    if (Date.now() > deadline) throw new Error(`children did not finish: ${JSON.stringify(c)}`);
    await sleep(50);
  }
  await worker.close();

  const report = { package: pkgName, version: pkgVersion, parents: {}, children: {} };
  for (const node of added) {
    const parent = await Job.fromId(parents, node.job.id);
    const deps = await parent.getDependencies();
    const keys = v => (Array.isArray(v) ? v : Object.keys(v || {}));
    report.parents[parent.id] = {
      queue: names.parents,
      state: await parent.getState(),
      counts: await parent.getDependenciesCount(),
      dependencies: { processed: keys(deps.processed), unprocessed: keys(deps.unprocessed),
        ignored: keys(deps.ignored), failed: keys(deps.failed) },
    };
    for (const child of node.children || []) {
      const job = await Job.fromId(kids, child.job.id);
      report.children[job.id] = { queue: names.kids, key: kids.toKey(job.id), state: await job.getState(),
        parentKey: job.parentKey, parent: job.parent };
    }
  }
  await parents.close();
  await kids.close();
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().then(() => { clearTimeout(hardTimer); process.exit(0); }, err => {
  process.stderr.write(`flows: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
