#!/usr/bin/env node
/*
 * BullMQ for Node (6.7.0) on a Redis Cluster, through ioredis's Cluster client, for
 * tests/test_topology_cluster.py. Prints one JSON line on stdout; diagnostics go to stderr.
 *
 *   node cluster_driver.js <host:port> <prefix> produce <queue:total:failing,...>
 *       per queue: adds <total> jobs (attempts 1); a worker fails the first <failing> of them and
 *       completes the rest; prints {version, counts: {queue: getJobCounts()}, failed: {queue: [ids]}}
 *   node cluster_driver.js <host:port> <prefix> counts <queue,queue,...>
 *       prints {counts: {queue: getJobCounts()}}
 *   node cluster_driver.js <host:port> - time <prefix|queue,prefix|queue,...> <rounds>
 *       getJobCounts of every queue at once (Promise.all), <rounds> times after 3 untimed rounds;
 *       prints {ms: [one round's milliseconds, ...]} (tests/benchmarks/bench_topology.py)
 *   node cluster_driver.js <host:port> <prefix> work <queue> <completed>
 *       completes whatever it fetches until the queue has <completed> completed jobs and nothing
 *       waiting, active or failed, then keeps working for a short grace period (a duplicate
 *       delivery would be seen); prints {counts, handled: [ids]}
 *
 * Exit code 2: an error; 3: the hard timeout (40 s).
 */
'use strict';

const [seed, prefix, phase, arg, arg2] = process.argv.slice(2);
if (!seed || !prefix || !['produce', 'counts', 'work', 'time'].includes(phase)) {
  process.stderr.write('usage: node cluster_driver.js <host:port> <prefix> <produce SPEC|counts QUEUES|work QUEUE N>\n');
  process.exit(64);
}
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const version = require('bullmq/package.json').version;

const hardTimer = setTimeout(() => {
  process.stderr.write('cluster_driver: hard timeout\n');
  process.exit(3);
}, 40000);

const [host, port] = seed.split(':');
const connection = new IORedis.Cluster([{ host, port: Number(port) }], {
  redisOptions: { maxRetriesPerRequest: null },
});
const sleep = ms => new Promise(r => setTimeout(r, ms));
const closers = [];

async function counts(names) {
  const out = {};
  for (const name of names) {
    const q = new Queue(name, { connection, prefix });
    closers.push(() => q.close());
    out[name] = await q.getJobCounts();
  }
  return out;
}

async function produce(spec) {
  const failed = {};
  const names = [];
  for (const item of spec.split(',')) {
    const [name, total, failing] = item.split(':');
    names.push(name);
    const queue = new Queue(name, { connection, prefix });
    closers.push(() => queue.close());
    const ids = [];
    for (let i = 0; i < Number(total); i++) {
      ids.push((await queue.add('task', { i, fail: i < Number(failing) }, { attempts: 1 })).id);
    }
    failed[name] = ids.slice(0, Number(failing));
    const worker = new Worker(name, async job => {
      if (job.data.fail) throw new Error(`boom ${job.id}`);
      return { ok: job.id };
    }, { connection, prefix, concurrency: 8 });
    worker.on('error', err => process.stderr.write(`worker error: ${err && err.stack}\n`));
    for (let t = 0; ; t++) {
      const c = await queue.getJobCounts('completed', 'failed');
      if (c.completed + c.failed >= Number(total)) break;
      if (t > 1500) throw new Error(`jobs of ${name} did not finish: ${JSON.stringify(c)}`);
      await sleep(20);
    }
    await worker.close();
  }
  return { version, counts: await counts(names), failed };
}

async function work(name, completed) {
  const queue = new Queue(name, { connection, prefix });
  closers.push(() => queue.close());
  const handled = [];
  const worker = new Worker(name, async job => {
    handled.push(job.id);
    return { ok: job.id };
  }, { connection, prefix, concurrency: 8 });
  worker.on('error', err => process.stderr.write(`worker error: ${err && err.stack}\n`));
  for (let t = 0; ; t++) {
    const c = await queue.getJobCounts();
    if (c.completed >= completed && c.waiting + c.active + c.failed + c.delayed + c.prioritized === 0) break;
    if (t > 1500) throw new Error(`not done: ${JSON.stringify(c)}`);
    await sleep(20);
  }
  await sleep(500); // a duplicate delivery would show up in `handled` now
  await worker.close();
  return { counts: await counts([name]), handled };
}

async function time(items, rounds) {
  const queues = items.split(',').map(item => {
    const [p, name] = item.split('|');
    const q = new Queue(name, { connection, prefix: p });
    closers.push(() => q.close());
    return q;
  });
  const ms = [];
  for (let r = 0; r < rounds + 3; r++) {
    const t0 = process.hrtime.bigint();
    await Promise.all(queues.map(q => q.getJobCounts()));
    if (r >= 3) ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms };
}

async function main() {
  let out;
  try {
    if (phase === 'produce') out = await produce(arg);
    else if (phase === 'time') out = await time(arg, Number(arg2));
    else if (phase === 'counts') out = { counts: await counts(arg.split(',')) };
    else out = await work(arg, Number(arg2));
  } catch (err) {
    process.stderr.write(`cluster_driver failed: ${err && err.stack}\n`);
    process.exit(2);
  }
  for (const close of closers) await Promise.race([close(), sleep(3000)]);
  await Promise.race([connection.quit(), sleep(3000)]);
  process.stdout.write(JSON.stringify(out) + '\n');
  clearTimeout(hardTimer);
  process.exit(0);
}

main();
