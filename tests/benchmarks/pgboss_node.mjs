// pg-boss for Node's side of tests/benchmarks/bench_pgboss.py: one child process per pg-boss
// instance, driven by JSON lines on stdin, one JSON line back per command. Every timing is taken
// here (performance.now() around pg-boss's own call), so the Node side pays no Python overhead.
//
//   node pgboss_node.mjs <postgres-url> <pgboss10|pgboss12> <schema>
//
// Commands: {"op": "queues", "names": [...]}                 createQueue each (default options)
//           {"op": "insert", "name": q, "n": N, "chunk": C}  boss.insert in chunks (pg-boss's own insert)
//           {"op": "supervise"}                               one monitor pass (v12: fills the cached counts)
//           {"op": "stats", "names": [...]}                  getQueueStats (v12) / getQueueSize (v10) on each, in turn
//           {"op": "retry" | "delete", "name": q, "ids": [...], "chunk": C}   retry / deleteJob in chunks
//           {"op": "stop"}
import readline from 'node:readline'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'

const [, , url, lib, schema] = process.argv
const here = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'interop', 'pgboss')
const require = createRequire(import.meta.url)
const pkg = require(path.join(here, 'node_modules', lib, 'package.json'))
const mod = await import(path.join(here, 'node_modules', lib, pkg.main || 'index.js'))
const PgBoss = mod.PgBoss || mod.default || mod
const v10 = pkg.version.startsWith('10.')

const { pgConnection: connection } = require('../interop/pg_conn.js')

const boss = new PgBoss({ ...connection(url), schema, supervise: false, schedule: false, max: 4, migrate: true })
boss.on('error', err => console.error('pg-boss error', err.message))
await boss.start()

async function timed (fn) {
  const t = performance.now()
  const out = await fn()
  return [performance.now() - t, out]
}

const ops = {
  async queues ({ names }) {
    for (const name of names) await boss.createQueue(name)
    return { created: names.length }
  },
  async insert ({ name, n, chunk = 5000, data = {} }) {
    let done = 0
    const t = performance.now()
    while (done < n) {
      const size = Math.min(chunk, n - done)
      const jobs = []
      for (let i = 0; i < size; i++) {
        const job = { data: { ...data, i: done + i } }
        if (v10) job.name = name
        jobs.push(job)
      }
      if (v10) await boss.insert(jobs)
      else await boss.insert(name, jobs)
      done += size
    }
    return { inserted: done, ms: performance.now() - t }
  },
  async supervise () {
    const [ms] = await timed(() => boss.supervise())
    return { ms }
  },
  async stats ({ names }) {
    const calls = []
    const out = {}
    const t = performance.now()
    for (const name of names) {
      const [ms, res] = await timed(() => v10 ? boss.getQueueSize(name) : boss.getQueueStats(name))
      calls.push(ms)
      out[name] = v10 ? { queuedCount: res } : res[0]
    }
    return { ms: performance.now() - t, calls, stats: out }
  },
  async retry (cmd) { return chunked(cmd, (name, ids) => boss.retry(name, ids)) },
  async delete (cmd) { return chunked(cmd, (name, ids) => boss.deleteJob(name, ids)) }
}

async function chunked ({ name, ids, chunk = 1000 }, call) {
  const calls = []
  let affected = 0
  const t = performance.now()
  for (let i = 0; i < ids.length; i += chunk) {
    const [ms, res] = await timed(() => call(name, ids.slice(i, i + chunk)))
    calls.push(ms)
    affected += res?.affected ?? 0
  }
  return { ms: performance.now() - t, calls, affected }
}

const rl = readline.createInterface({ input: process.stdin })
process.stdout.write(JSON.stringify({ ready: true, version: pkg.version }) + '\n')
for await (const line of rl) {
  const cmd = JSON.parse(line)
  if (cmd.op === 'stop') break
  try {
    process.stdout.write(JSON.stringify({ ok: true, ...(await ops[cmd.op](cmd)) }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(err && err.stack || err) }) + '\n')
  }
}
await boss.stop({ graceful: false, wait: true })
process.exit(0)
