#!/usr/bin/env node
/*
 * The soak's workload: real BullMQ for Node (tests/interop's pinned 6.7.0) producing and consuming
 * about RATE jobs/s over QUEUES queues, 5% of them failing, until killed.
 *
 *   node tests/soak/workload.js <redis-url> <rate> <queues> <seconds>
 *
 * Completed and failed jobs are kept (removeOnComplete/removeOnFail: 10,000 per queue), as a
 * production queue keeps its recent history. Prints one JSON line per 10 s: jobs added so far.
 */
'use strict';
const path = require('path');
const { Queue, Worker } = require(path.join(__dirname, '..', 'interop', 'node_modules', 'bullmq'));

const [redisUrl, rateArg, queuesArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg || 1000), nQueues = Number(queuesArg || 20), seconds = Number(secondsArg || 3600);
const u = new URL(redisUrl);
const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
const names = Array.from({ length: nQueues }, (_, i) => `soak${String(i).padStart(2, '0')}`);
const queues = names.map((n) => new Queue(n, { connection }));
const workers = names.map((n) => new Worker(n, async (job) => {
  if (Math.floor(job.data.i / nQueues) % 20 === 0) throw new Error(`upstream ${job.data.i % 7 ? 'timeout' : 'refused'} for tenant ${job.data.i % 13}`);
  return { ok: true };
}, { connection, concurrency: 50 }));
let added = 0;
const tickMs = 100;
const perTick = Math.max(1, Math.round(rate * tickMs / 1000));
const opts = { removeOnComplete: 10000, removeOnFail: 10000 };
const timer = setInterval(async () => {
  const batch = [];
  for (let j = 0; j < perTick; j++) {
    const i = added + j;
    batch.push({ q: queues[i % nQueues], job: { name: 'work', data: { i, payload: 'x'.repeat(200) }, opts } });
  }
  added += perTick;
  const byQueue = new Map();
  for (const b of batch) { if (!byQueue.has(b.q)) byQueue.set(b.q, []); byQueue.get(b.q).push(b.job); }
  await Promise.all([...byQueue].map(([q, jobs]) => q.addBulk(jobs)));
}, tickMs);
const report = setInterval(() => process.stdout.write(JSON.stringify({ t: Date.now(), added }) + '\n'), 10000);
setTimeout(async () => {
  clearInterval(timer); clearInterval(report);
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(queues.map((q) => q.close()));
  process.exit(0);
}, seconds * 1000);
