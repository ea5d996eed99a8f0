#!/usr/bin/env node
/*
 * BullMQ for Node's side of tests/benchmarks/bench_scale.py: the library's own calls, timed here.
 *
 *   node bench.js <redis-url> <prefix> <scenario> <rounds> [args...]
 *
 * Scenarios (queue names come one per line on stdin where a scenario takes many):
 *   counts <rounds>            Promise.all of getJobCounts over every named queue (one shared connection)
 *   status                     whole process: getJobCounts of every named queue, print JSON, exit
 *   pages <rounds> <queue>     getFailed(0, 49) and getFailed(1000, 1049)
 *   retry 1 <queue>            retryJobs({state: 'failed', count: 1000}) until done
 *   clean 1 <queue>            clean(0, 1000, 'failed') until nothing is left
 *   group <rounds>             page getFailed in windows of 1,000 over every named queue, group reasons
 * Prints one JSON line: {"ms": [...per round...], ...}.
 */
'use strict';
const path = require('path');
const { Queue } = require(path.join(__dirname, '..', '..', 'interop', 'node_modules', 'bullmq'));
const IORedis = require(path.join(__dirname, '..', '..', 'interop', 'node_modules', 'ioredis'));

const [url, prefix, scenario, roundsArg, ...rest] = process.argv.slice(2);
const rounds = Number(roundsArg || 1);
const TYPES = ['active', 'completed', 'delayed', 'failed', 'prioritized', 'waiting', 'waiting-children', 'paused'];

function readNames() {
  return require('fs').readFileSync(0, 'utf8').split('\n').filter(Boolean);
}

function signature(reason) {
  return String(reason || '').replace(/[0-9]+/g, '#').slice(0, 200);
}

async function main() {
  const connection = new IORedis(url, { maxRetriesPerRequest: null });
  const open = (name) => new Queue(name, { connection, prefix });
  const out = { ms: [] };
  const t = () => Number(process.hrtime.bigint()) / 1e6;
  if (scenario === 'counts' || scenario === 'status') {
    const queues = readNames().map(open);
    for (let r = 0; r < rounds; r++) {
      const t0 = t();
      const counts = await Promise.all(queues.map((q) => q.getJobCounts(...TYPES)));
      out.ms.push(t() - t0);
      if (scenario === 'status') {
        out.queues = queues.map((q, i) => ({ queue: q.name, native: counts[i] }));
      } else if (r === 0) {
        out.total_failed = counts.reduce((a, c) => a + c.failed, 0);
      }
    }
  } else if (scenario === 'pages') {
    const q = open(rest[0]);
    out.first = []; out.deep = [];
    for (let r = 0; r < rounds; r++) {
      let t0 = t(); const a = await q.getFailed(0, 49); out.first.push(t() - t0);
      t0 = t(); const b = await q.getFailed(1000, 1049); out.deep.push(t() - t0);
      out.first_ids = a.map((j) => j.id); out.deep_ids = b.map((j) => j.id);
    }
  } else if (scenario === 'retry') {
    const q = open(rest[0]);
    const t0 = t(); await q.retryJobs({ state: 'failed', count: 1000 }); out.ms.push(t() - t0);
  } else if (scenario === 'clean') {
    const q = open(rest[0]);
    const t0 = t(); let n = 0;
    for (;;) { const ids = await q.clean(0, 1000, 'failed'); n += ids.length; if (!ids.length) break; }
    out.ms.push(t() - t0); out.removed = n;
  } else if (scenario === 'group') {
    const queues = readNames().map(open);
    for (let r = 0; r < rounds; r++) {
      const t0 = t(); const groups = new Map(); let jobs = 0;
      for (const q of queues) {
        for (let start = 0; ; start += 1000) {
          const page = await q.getFailed(start, start + 999);
          for (const j of page) { const s = signature(j.failedReason); groups.set(s, (groups.get(s) || 0) + 1); }
          jobs += page.length;
          if (page.length < 1000) break;
        }
      }
      out.ms.push(t() - t0); out.jobs = jobs; out.groups = groups.size;
    }
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  await connection.quit();
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
