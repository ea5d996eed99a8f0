#!/usr/bin/env node
/*
 * BullMQ for Node 4.x, 5.x and 6.x in one long-lived process, driven by
 * tests/test_interop_bullmq_versions.py: one JSON request per stdin line, one JSON reply per stdout
 * line ({seq, ok, result} or {seq, ok: false, error}). Diagnostics go to stderr.
 *
 * Request: {seq, op, lib: "v4"|"v5"|"v6", url, prefix, queue, ...}
 *   seed    {failed, waiting, delayed}  jobs failed by a real worker (the first with priority 5),
 *                                       then waiting jobs, then delayed jobs (delay 1 h)
 *   add     {n}                         queue.add n jobs
 *   pause / resume                      queue.pause() / queue.resume()
 *   states  {ids}                       queue.getJobState(id) for each id
 *   ratelimit {ms, max?}                (setGlobalRateLimit(max, ms) and) queue.rateLimit(ms)
 *   ttl                                 queue.getRateLimitTtl()
 *   work    {ids}                       a real Worker completes jobs until every id is completed
 *   close                               close this queue
 * "v4" is the `bullmq4` alias (4.18.3), "v5" `bullmq5` (5.81.5), "v6" `bullmq` (6.7.0).
 * The process ends when stdin closes, or after 600 s.
 */
'use strict';

const readline = require('readline');

const PACKAGES = { v4: 'bullmq4', v5: 'bullmq5', v6: 'bullmq' };
const libs = {};
function lib(name) {
  if (!PACKAGES[name]) throw new Error(`unknown lib ${name}`);
  if (!libs[name]) {
    libs[name] = require(PACKAGES[name]);
    libs[name].version = require(`${PACKAGES[name]}/package.json`).version;
  }
  return libs[name];
}

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
const queues = new Map();

async function queueFor(req) {
  const key = JSON.stringify([req.lib, req.url, req.prefix, req.queue]);
  if (!queues.has(key)) {
    const { Queue } = lib(req.lib);
    const q = new Queue(req.queue, { connection: connectionFromUrl(req.url), prefix: req.prefix });
    await q.waitUntilReady();
    queues.set(key, q);
  }
  return queues.get(key);
}

async function until(what, check, limitMs = 20000) {
  const end = Date.now() + limitMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function worker(req, processor) {
  const { Worker } = lib(req.lib);
  const w = new Worker(req.queue, processor, {
    connection: connectionFromUrl(req.url), prefix: req.prefix, concurrency: 4, drainDelay: 1,
  });
  w.on('error', err => process.stderr.write(`worker error: ${err && err.stack}\n`));
  return w;
}

const OPS = {
  async seed(req, q) {
    const failed = [];
    for (let i = 0; i < req.failed; i++) {
      const opts = { attempts: 1 };
      if (i === 0) opts.priority = 5;
      failed.push((await q.add('fail', { i }, opts)).id);
    }
    const w = worker(req, async job => { throw new Error(`boom ${job.id}`); });
    try {
      await until('jobs to fail', async () => (await q.getJobCounts('failed')).failed >= req.failed);
    } finally {
      await w.close();
    }
    const waiting = [];
    for (let i = 0; i < req.waiting; i++) waiting.push((await q.add('wait', { i })).id);
    const delayed = [];
    for (let i = 0; i < req.delayed; i++) delayed.push((await q.add('later', { i }, { delay: 3600000 })).id);
    return { version: lib(req.lib).version, failed, waiting, delayed };
  },
  async add(req, q) {
    const ids = [];
    for (let i = 0; i < req.n; i++) ids.push((await q.add('added', { i })).id);
    return { ids };
  },
  async pause(req, q) { await q.pause(); return {}; },
  async resume(req, q) { await q.resume(); return {}; },
  async states(req, q) {
    const out = {};
    for (const id of req.ids) out[id] = await q.getJobState(id);
    return { states: out };
  },
  async work(req, q) {
    const handled = [];
    const w = worker(req, async job => { handled.push(job.id); return { ok: job.id }; });
    try {
      await until(`jobs ${req.ids} to complete`, async () => {
        const states = await Promise.all(req.ids.map(id => q.getJobState(id)));
        return states.every(s => s === 'completed');
      });
      await sleep(300); // a duplicate delivery would show up in `handled` now
    } finally {
      await w.close();
    }
    return { handled };
  },
  async ratelimit(req, q) {
    if (req.max) await q.setGlobalRateLimit(req.max, req.ms);
    await q.rateLimit(req.ms);
    return {};
  },
  async ttl(req, q) { return { ttl: await q.getRateLimitTtl() }; },
  async close(req, q) {
    await q.close();
    queues.delete(JSON.stringify([req.lib, req.url, req.prefix, req.queue]));
    return {};
  },
};

const hard = setTimeout(() => { process.stderr.write('versions_driver: hard timeout\n'); process.exit(3); }, 600000);
const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', line => {
  chain = chain.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
      const op = OPS[req.op];
      if (!op) throw new Error(`unknown op ${req.op}`);
      const result = await op(req, await queueFor(req));
      process.stdout.write(JSON.stringify({ seq: req.seq, ok: true, result }) + '\n');
    } catch (err) {
      process.stdout.write(JSON.stringify({ seq: req && req.seq, ok: false, error: String(err && err.stack) }) + '\n');
    }
  });
});
rl.on('close', () => {
  chain.then(async () => {
    for (const q of queues.values()) await Promise.race([q.close(), sleep(3000)]);
    clearTimeout(hard);
    process.exit(0);
  });
});
