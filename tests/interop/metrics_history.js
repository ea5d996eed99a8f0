#!/usr/bin/env node
/*
 * BullMQ for Node finishes jobs at chosen times in the last hour with worker metrics enabled, for
 * tests/test_history.py: the library itself writes `metrics:completed` / `metrics:failed` and their
 * `:data` lists of per-minute points, and reports what its own `Queue.getMetrics` reads back.
 *
 *   node metrics_history.js <redis-url> <key-prefix> <queue> <v6|v5> <schedule-json>
 *
 * schedule-json: [[offset_ms, "ok"|"fail"], ...], offsets from the script's start (negative: the
 * past), in the order the jobs finish. Time is moved by replacing Date.now inside this process
 * only: the worker's processor sets the clock to the job's finish time, so BullMQ's own
 * collectMetrics script sees the timestamps it would have seen then.
 *
 * Prints {lib, version, start_ms, completed: getMetrics('completed'), failed: getMetrics('failed')}
 * on one line, waits for a line on stdin (or its close), closes and exits. Exit 2: an error;
 * 3: the hard timeout (60 s).
 */
'use strict';

const [redisUrl, prefix, queueName, lib, scheduleJson] = process.argv.slice(2);
if (!redisUrl || !prefix || !queueName || !['v6', 'v5'].includes(lib) || !scheduleJson) {
  process.stderr.write('usage: node metrics_history.js <redis-url> <prefix> <queue> <v6|v5> <schedule-json>\n');
  process.exit(64);
}
const { connectionFromUrl, bullmqOf, hardTimeout } = require('./node_common');

const { bullmq: { Queue, Worker }, version } = bullmqOf(lib);
const hardTimer = hardTimeout(60000, 'metrics_history');

const realNow = Date.now.bind(Date);
let fake = null;
Date.now = () => (fake === null ? realNow() : fake);

async function main() {
  const connection = connectionFromUrl(redisUrl);
  const schedule = JSON.parse(scheduleJson);
  const start = realNow();
  const queue = new Queue(queueName, { connection, prefix });
  for (const [offset, outcome] of schedule) {
    await queue.add('timed', { at: start + offset, fail: outcome === 'fail' }, { attempts: 1 });
  }
  let finished = 0;
  let done;
  const allDone = new Promise((resolve) => { done = resolve; });
  const worker = new Worker(queueName, async (job) => {
    fake = job.data.at;
    if (job.data.fail) throw new Error('failed on purpose');
    return 1;
  }, { connection, prefix, concurrency: 1, metrics: { maxDataPoints: 120 } });
  const count = () => { finished += 1; if (finished === schedule.length) done(); };
  worker.on('completed', count);
  worker.on('failed', count);
  await allDone;
  await worker.close();
  fake = null;
  const completed = await queue.getMetrics('completed', 0, -1);
  const failed = await queue.getMetrics('failed', 0, -1);
  process.stdout.write(JSON.stringify({ lib, version, start_ms: start, completed, failed }) + '\n');
  await new Promise((resolve) => {
    process.stdin.once('data', resolve);
    process.stdin.once('end', resolve);
    process.stdin.resume();
  });
  await queue.close();
  clearTimeout(hardTimer);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`metrics_history: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
