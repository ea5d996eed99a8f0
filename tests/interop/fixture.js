#!/usr/bin/env node
/*
 * Interop fixture: BullMQ for Node writes queues in every state, then reports what the library
 * itself says about them, as one JSON document on one line of stdout.
 *
 *   node fixture.js <redis-url> <key-prefix> <queue-name-base> <v6|v5>
 *
 * "v6" uses the `bullmq` dependency (6.7.0), "v5" the `bullmq5` npm alias (5.81.5).
 *
 * Queues made (names are <base>-<suffix>; BullMQ forbids ':' in queue names):
 *   main    completed jobs (return values + job.log lines), failed jobs (attempts: 2, backoff 0,
 *           messages with variable numbers; one single-attempt), ONE active job held by a worker,
 *           waiting jobs (custom string id, a lifo job, a job with 205 log lines), prioritized
 *           jobs (ties are FIFO), delayed jobs (ties on the same delay), two job schedulers whose
 *           jobs have ids `repeat:<schedulerId>:<millis>` (colons in job ids), custom 3-segment ids
 *           with colons (`order:2024:7`, `inv:7:x`), and a flow whose parent waits for children.
 *   paused  jobs added before and after `pause()`, plus a prioritized and a delayed job. With v5
 *           this is the LEGACY layout: pause RENAMEs `wait` -> `paused` and later jobs are pushed
 *           to the `paused` list. With v6 the jobs stay in `wait` and only `meta.paused` is set.
 *   empty   a queue with no jobs at all (the Queue constructor writes `meta`).
 *
 * After printing the JSON line the script keeps the worker holding the active job until a line
 * arrives on stdin (or stdin closes); then it releases the job, closes everything and exits.
 * Diagnostics go to stderr. Exit code 2 means the fixture could not be built, 3 that building it
 * took longer than 45 s, 4 that nobody released the held job within 10 minutes.
 */
'use strict';

const [redisUrl, prefix, base, lib] = process.argv.slice(2);
if (!redisUrl || !prefix || !base || !['v6', 'v5'].includes(lib)) {
  process.stderr.write('usage: node fixture.js <redis-url> <key-prefix> <queue-name-base> <v6|v5>\n');
  process.exit(64);
}

const pkgName = lib === 'v5' ? 'bullmq5' : 'bullmq';
const { Queue, Worker, Job, FlowProducer } = require(pkgName);
const pkgVersion = require(`${pkgName}/package.json`).version;

const HARD_TIMEOUT_MS = 45000;
const hardTimer = setTimeout(() => {
  process.stderr.write(`fixture: hard timeout after ${HARD_TIMEOUT_MS} ms\n`);
  process.exit(3);
}, HARD_TIMEOUT_MS);

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

const connection = connectionFromUrl(redisUrl);
const names = { main: `${base}-main`, paused: `${base}-paused`, empty: `${base}-empty` };

// The job types asked of getJobs(types, 0, -1, asc), with the order the library's own getters use:
// getFailed/getCompleted newest first (asc=false); getWaiting/getDelayed/getPrioritized/getActive
// (and the paused list, waiting-children) oldest / soonest first (asc=true).
// 'waiting' is the library's own idea of waiting: v5 turns ['waiting'] into ['waiting', 'paused']
// (sanitizeJobTypes), i.e. the `wait` list followed by the legacy `paused` list; v6 reads `wait`
// only. 'wait' (a JobType in both) is the `wait` list alone, so each key is reported once.
const STATES = {
  wait: true,
  waiting: true,
  prioritized: true,
  paused: true,
  delayed: true,
  active: true,
  'waiting-children': true,
  completed: false,
  failed: false,
};
const COUNT_TYPES = ['active', 'completed', 'delayed', 'failed', 'prioritized', 'waiting', 'waiting-children', 'paused'];

// The raw ioredis client: `queue.client` up to v5; v6 moved it to the Redis backend
// (`queue.getBackend().client`, "Redis-specific escape hatch").
async function rawClient(queue) {
  if (typeof queue.getBackend === 'function' && queue.getBackend() && queue.getBackend().client) {
    return queue.getBackend().client;
  }
  return queue.client;
}

function deferred() {
  let resolve;
  const promise = new Promise(r => { resolve = r; });
  return { promise, resolve };
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`fixture: timed out waiting for ${what}`);
    await sleep(20);
  }
}

const holdStarted = deferred();
const holdRelease = deferred();

async function processor(job) {
  const d = job.data || {};
  if (d.kind === 'ok') {
    await job.log(`start ${job.id} n=${d.n}`);
    await job.log(`half-way ${d.n * 50}%`);
    return d.ret;
  }
  if (d.kind === 'bad') {
    const attempt = job.attemptsMade + 1;
    await job.log(`attempt ${attempt} of ${job.opts.attempts || 1}`);
    throw new Error(`boom: job ${job.id} attempt ${attempt} code ${1000 + d.n * 7 + attempt}`);
  }
  if (d.kind === 'hold') {
    await job.log('holding until the test has read');
    holdStarted.resolve();
    await holdRelease.promise;
    return 'released';
  }
  throw new Error(`unexpected job ${job.id} (${job.name}) reached the worker`);
}

function pick(job) {
  // Fields the library reports for a row of getJobs (NaN -> null through JSON).
  return {
    id: job.id,
    name: job.name,
    timestamp: job.timestamp,
    processedOn: job.processedOn === undefined ? null : job.processedOn,
    finishedOn: job.finishedOn === undefined ? null : job.finishedOn,
    attemptsMade: job.attemptsMade,
    priority: job.priority,
    delay: job.delay,
    failedReason: job.failedReason === undefined ? null : job.failedReason,
  };
}

async function snapshotQueue(queue) {
  const client = await rawClient(queue);
  // getJobCounts with EVERY type plus 'paused'. v6 dropped 'paused' from its JobType union and
  // from the default list, but its getCounts-1.lua still takes any suffix and LLENs `paused`
  // (checked: `ARGV[i] == "wait" or ARGV[i] == "paused"`), so the library call answers it.
  // rawPausedLlen is a cross-check with a raw LLEN of <prefix>:<queue>:paused.
  const counts = await queue.getJobCounts(...COUNT_TYPES);
  const rawPausedLlen = await client.llen(`${prefix}:${queue.name}:paused`);
  const isPaused = await queue.isPaused();
  const jobs = {};
  const rows = {};
  for (const [state, asc] of Object.entries(STATES)) {
    const list = await queue.getJobs([state], 0, -1, asc);
    jobs[state] = list.map(j => j.id);
    rows[state] = list.map(pick);
  }
  // The wrappers, to show they agree with getJobs(state, asc) above.
  const wrappers = {
    waiting: (await queue.getWaiting(0, -1)).map(j => j.id),
    prioritized: (await queue.getPrioritized(0, -1)).map(j => j.id),
    delayed: (await queue.getDelayed(0, -1)).map(j => j.id),
    active: (await queue.getActive(0, -1)).map(j => j.id),
    completed: (await queue.getCompleted(0, -1)).map(j => j.id),
    failed: (await queue.getFailed(0, -1)).map(j => j.id),
    'waiting-children': (await queue.getWaitingChildren(0, -1)).map(j => j.id),
  };
  return { name: queue.name, counts, rawPausedLlen, isPaused, jobs, rows, wrappers };
}

async function describeJob(queue, id) {
  const job = await Job.fromId(queue, id);
  if (!job) return null;
  const logs = await queue.getJobLogs(id);
  return {
    id: job.id,
    name: job.name,
    data: job.data,
    attemptsMade: job.attemptsMade,
    failedReason: job.failedReason === undefined ? null : job.failedReason,
    stacktrace: job.stacktrace,
    returnvalue: job.returnvalue === undefined ? null : job.returnvalue,
    state: await job.getState(),
    logs: logs.logs,
    logCount: logs.count,
  };
}

async function main() {
  const queues = {};
  const workers = [];
  const producers = [];
  const out = { lib, package: pkgName, version: pkgVersion, prefix, queues: {}, jobDetails: {}, missing: {} };
  let worker;

  const openQueue = name => {
    const q = new Queue(name, { connection, prefix });
    producers.push(q);
    return q;
  };

  try {
    // ------------------------------------------------------------------ main
    const main = openQueue(names.main);
    queues.main = main;
    await main.waitUntilReady();

    const returns = [{ ok: true, n: 1, nested: { a: [1, 2, 3], s: 'héllo ✓' } }, 'a plain string', 42, null];
    for (let n = 0; n < returns.length; n++) {
      const opts = n === 1 ? { jobId: 'order:2024:7' } : {};
      await main.add('ok-job', { kind: 'ok', n, ret: returns[n] }, opts);
    }
    await main.add('bad-job', { kind: 'bad', n: 1 }, { attempts: 2, backoff: 0 });
    await main.add('bad-job', { kind: 'bad', n: 2 }, { attempts: 2, backoff: 0 });
    await main.add('bad-once', { kind: 'bad', n: 3 }, { jobId: 'inv:7:x' });

    worker = new Worker(names.main, processor, { connection, prefix, concurrency: 1 });
    workers.push(worker);
    worker.on('error', err => process.stderr.write(`worker error: ${err && err.stack}\n`));
    await waitFor('4 completed and 3 failed jobs', async () => {
      const c = await main.getJobCounts('completed', 'failed');
      return c.completed === 4 && c.failed === 3;
    });

    // One job goes active and stays there: concurrency 1 means the worker fetches nothing else.
    await main.add('hold-job', { kind: 'hold' }, { jobId: 'held-1' });
    await holdStarted.promise;
    await waitFor('the held job to be active', async () => (await main.getJobCounts('active')).active === 1);

    const w1 = await main.add('wait-job', { kind: 'never', n: 1, tags: ['x', 'y'] }, { jobId: 'custom-id-abc' });
    await w1.log('producer log line 1');
    await w1.log('producer log line 2');
    await main.add('wait-job', { kind: 'never', n: 2 });
    const many = await main.add('wait-job', { kind: 'never', n: 3 });
    for (let i = 0; i < 205; i++) await many.log(`line ${i}`);
    await main.add('lifo-job', { kind: 'never', n: 4 }, { lifo: true });

    for (const [n, priority] of [[1, 5], [2, 1], [3, 3], [4, 1]]) {
      await main.add('prio-job', { kind: 'never', n, priority }, { priority });
    }
    for (const [n, delay] of [[1, 90000], [2, 30000], [3, 60000], [4, 30000]]) {
      await main.add('delayed-job', { kind: 'never', n, delay }, { delay });
    }
    await main.upsertJobScheduler('every-hour', { every: 3600000 }, { name: 'tick', data: { kind: 'never', tick: true } });
    await main.upsertJobScheduler('new-year', { pattern: '0 0 1 1 *' }, { name: 'yearly', data: { kind: 'never', yearly: true } });

    const flow = new FlowProducer({ connection, prefix });
    try {
      await flow.add({
        name: 'flow-parent',
        queueName: names.main,
        data: { kind: 'never', parent: true },
        opts: { jobId: 'flow-parent' },
        children: [
          { name: 'flow-child', queueName: names.main, data: { kind: 'never', child: 1 } },
          { name: 'flow-child', queueName: names.main, data: { kind: 'never', child: 2 } },
        ],
      });
    } finally {
      await flow.close();
    }

    // ------------------------------------------------------------------ paused
    const paused = openQueue(names.paused);
    queues.paused = paused;
    await paused.waitUntilReady();
    await paused.add('before-pause', { n: 1 });
    await paused.add('before-pause', { n: 2 });
    await paused.pause();
    for (const n of [3, 4, 5]) await paused.add('after-pause', { n });
    await paused.add('after-pause-prio', { n: 6 }, { priority: 2 });
    await paused.add('after-pause-delayed', { n: 7 }, { delay: 120000 });

    // ------------------------------------------------------------------ empty
    const empty = openQueue(names.empty);
    queues.empty = empty;
    await empty.waitUntilReady();
    const emptyClient = await rawClient(empty);
    await waitFor('the empty queue meta', async () => (await emptyClient.exists(`${prefix}:${names.empty}:meta`)) === 1);

    // ------------------------------------------------------------------ snapshot
    for (const [key, queue] of Object.entries(queues)) {
      const snap = await snapshotQueue(queue);
      out.queues[key] = snap;
      out.jobDetails[snap.name] = {};
      const ids = new Set();
      for (const list of Object.values(snap.jobs)) for (const id of list) ids.add(id);
      for (const id of ids) out.jobDetails[snap.name][id] = await describeJob(queue, id);
      out.missing[snap.name] = (await Job.fromId(queue, 'no-such-job')) === undefined;
    }
  } catch (err) {
    process.stderr.write(`fixture failed: ${err && err.stack}\n`);
    holdRelease.resolve();
    await Promise.allSettled(workers.map(w => w.close(true)));
    await Promise.allSettled(producers.map(q => q.close()));
    process.exit(2);
  }

  process.stdout.write(JSON.stringify(out) + '\n');
  clearTimeout(hardTimer);
  // stdin closes when the parent dies; this is only a last resort against a leaked process.
  const idleTimer = setTimeout(() => process.exit(4), 600000);

  // Hold the active job until the Python side says it has read (a line, or stdin closing).
  await new Promise(resolve => {
    process.stdin.on('data', resolve);
    process.stdin.on('end', resolve);
    process.stdin.on('error', resolve);
    process.stdin.resume();
  });
  // Close first so that the worker fetches nothing after the released job completes.
  const closing = Promise.allSettled(workers.map(w => w.close()));
  holdRelease.resolve();
  await Promise.race([closing, sleep(5000)]);
  await Promise.race([Promise.allSettled(producers.map(q => q.close())), sleep(5000)]);
  clearTimeout(idleTimer);
  process.exit(0);
}

main();
