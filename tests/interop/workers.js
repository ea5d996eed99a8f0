#!/usr/bin/env node
/*
 * Live BullMQ for Node workers for tests/test_metrics_exporter.py: an unnamed and a named worker
 * (`name: "nw"`) on one queue, so that CLIENT LIST holds both name forms Node's getWorkers reads.
 *
 *   node workers.js <redis-url> <key-prefix> <queue> <v6|v5>
 *
 * Prints {lib, version, workers: queue.getWorkersCount()} on one line of stdout once both workers
 * are connected, keeps them until a line arrives on stdin (or stdin closes), then closes and exits.
 * Exit code 2: an error; 3: the hard timeout (60 s).
 */
'use strict';

const [redisUrl, prefix, queueName, lib] = process.argv.slice(2);
if (!redisUrl || !prefix || !queueName || !['v6', 'v5'].includes(lib)) {
  process.stderr.write('usage: node workers.js <redis-url> <prefix> <queue> <v6|v5>\n');
  process.exit(64);
}
const pkgName = lib === 'v5' ? 'bullmq5' : 'bullmq';
const { Queue, Worker } = require(pkgName);
const version = require(`${pkgName}/package.json`).version;

const hardTimer = setTimeout(() => {
  process.stderr.write('workers: hard timeout\n');
  process.exit(3);
}, 60000);

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
  return conn;
}

const sleep = ms => new Promise(r => setTimeout(r, ms));
const connection = connectionFromUrl(redisUrl);

async function main() {
  const queue = new Queue(queueName, { connection, prefix });
  await queue.waitUntilReady();
  const noop = async () => 'ok';
  const workers = [
    new Worker(queueName, noop, { connection, prefix }),
    new Worker(queueName, noop, { connection, prefix, name: 'nw' }),
  ];
  try {
    await Promise.all(workers.map(w => w.waitUntilReady()));
    let count = 0;
    for (let i = 0; i < 200 && count < 2; i++) {
      count = await queue.getWorkersCount();
      if (count < 2) await sleep(50);
    }
    process.stdout.write(JSON.stringify({ lib, version, workers: count }) + '\n');
    await new Promise(resolve => {
      process.stdin.once('data', resolve);
      process.stdin.once('end', resolve);
      process.stdin.resume();
    });
  } finally {
    await Promise.all(workers.map(w => w.close()));
    await queue.close();
    clearTimeout(hardTimer);
  }
}

main().then(() => process.exit(0), err => {
  process.stderr.write(`workers: ${err && err.stack || err}\n`);
  process.exit(2);
});
