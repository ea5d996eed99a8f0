#!/usr/bin/env node
/*
 * A real BullMQ for Node worker for tests/test_interop_actions_node.py: it fails jobs, or completes
 * them, and prints one JSON line on stdout.
 *
 *   node retry_worker.js <redis-url> <key-prefix> <queue> <v6|v5> fail <n>
 *       adds <n> jobs (attempts 1) and fails every one of them; prints {version, ids, handled}
 *   node retry_worker.js <redis-url> <key-prefix> <queue> <v6|v5> work <id,id,...>
 *       completes whatever it fetches until every given id is completed, then keeps working for a
 *       short grace period (so a duplicate delivery would be seen); prints {version, handled, states}
 *
 * "v6" uses the `bullmq` dependency (6.7.0), "v5" the `bullmq5` alias (5.81.5). Exit code 2: an
 * error; 3: the hard timeout (30 s). Diagnostics go to stderr.
 */
'use strict';

const [redisUrl, prefix, queueName, lib, phase, arg] = process.argv.slice(2);
if (!redisUrl || !prefix || !queueName || !['v6', 'v5'].includes(lib) || !['fail', 'work'].includes(phase)) {
  process.stderr.write('usage: node retry_worker.js <redis-url> <prefix> <queue> <v6|v5> <fail N|work IDS>\n');
  process.exit(64);
}
const pkgName = lib === 'v5' ? 'bullmq5' : 'bullmq';
const { Queue, Worker, Job } = require(pkgName);
const version = require(`${pkgName}/package.json`).version;

const hardTimer = setTimeout(() => {
  process.stderr.write('retry_worker: hard timeout\n');
  process.exit(3);
}, 30000);

function connectionFromUrl(raw) {
  const u = new URL(raw);
  const conn = {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db: u.pathname && u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null,
  };
  if (u.username) conn.username = decodeURIComponent(u.username);
  if (u.password) conn.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') conn.tls = {};
  return conn;
}

const sleep = ms => new Promise(r => setTimeout(r, ms));
const connection = connectionFromUrl(redisUrl);

async function main() {
  const queue = new Queue(queueName, { connection, prefix });
  await queue.waitUntilReady();
  const handled = [];
  let worker;
  const out = { lib, version, phase };
  try {
    if (phase === 'fail') {
      const n = Number(arg);
      const ids = [];
      for (let i = 0; i < n; i++) ids.push((await queue.add('task', { i }, { attempts: 1 })).id);
      worker = new Worker(queueName, async job => {
        handled.push(job.id);
        throw new Error(`boom ${job.id} code ${1000 + job.data.i}`);
      }, { connection, prefix, concurrency: 4 });
      worker.on('error', err => process.stderr.write(`worker error: ${err && err.stack}\n`));
      for (let t = 0; ; t++) {
        if ((await queue.getJobCounts('failed')).failed >= n) break;
        if (t > 1000) throw new Error('jobs did not fail');
        await sleep(20);
      }
      out.ids = ids;
    } else {
      const want = arg ? arg.split(',') : [];
      worker = new Worker(queueName, async job => {
        handled.push(job.id);
        return { ok: job.id };
      }, { connection, prefix, concurrency: 4 });
      worker.on('error', err => process.stderr.write(`worker error: ${err && err.stack}\n`));
      for (let t = 0; ; t++) {
        const states = await Promise.all(want.map(id => queue.getJobState(id)));
        if (states.every(s => s === 'completed')) break;
        if (t > 1000) throw new Error(`not completed: ${JSON.stringify(states)}`);
        await sleep(20);
      }
      await sleep(700); // a duplicate delivery would show up in `handled` now
      out.states = {};
      for (const id of want) {
        const job = await Job.fromId(queue, id);
        out.states[id] = { state: await queue.getJobState(id), returnvalue: job ? job.returnvalue : null,
                           attemptsMade: job ? job.attemptsMade : null };
      }
    }
    await worker.close();
    out.handled = handled;
  } catch (err) {
    process.stderr.write(`retry_worker failed: ${err && err.stack}\n`);
    if (worker) await Promise.race([worker.close(true), sleep(3000)]);
    await Promise.race([queue.close(), sleep(3000)]);
    process.exit(2);
  }
  await Promise.race([queue.close(), sleep(3000)]);
  process.stdout.write(JSON.stringify(out) + '\n');
  clearTimeout(hardTimer);
  process.exit(0);
}

main();
