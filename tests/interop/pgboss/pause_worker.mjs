// A real pg-boss for Node (12.38 via the pgboss12 alias) for tests/test_interop_actions_node.py:
// makes queues, or works them, and prints one JSON line on stdout.
//
//   node pause_worker.mjs <postgres-url> <lib> <schema> setup <queue,queue,...> <jobs per queue>
//       boss.start() (installs the schema), createQueue each, sends the jobs; prints {version, ids}
//   node pause_worker.mjs <postgres-url> <lib> <schema> probe <queue,...> <seconds>
//       boss.work() on each queue for <seconds> (polling every 0.5 s) plus a direct boss.fetch()
//       of each at the end; completes whatever it got; prints {version, handled, fetched}
//   node pause_worker.mjs <postgres-url> <lib> <schema> work <queue,...> <json ids that must complete>
//       boss.work() on each queue until every given id is completed, then a grace period;
//       prints {version, handled, states}
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const [, , url, lib, schema, phase, queueArg, extra] = process.argv
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const pkg = require(path.join(here, 'node_modules', lib, 'package.json'))
const mod = await import(path.join(here, 'node_modules', lib, pkg.main || 'index.js'))
const PgBoss = mod.PgBoss || mod.default || mod

const hard = setTimeout(() => { console.error('pause_worker: hard timeout'); process.exit(3) }, 40000)

const { pgConnection: connection } = require('../pg_conn.js')

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const queues = queueArg.split(',')
const boss = new PgBoss({ ...connection(url), schema, supervise: false, schedule: false, max: 4 })
boss.on('error', err => console.error('pg-boss error', err))
await boss.start()
const out = { lib, version: pkg.version, phase, handled: {}, fetched: {} }
for (const q of queues) { out.handled[q] = []; out.fetched[q] = [] }

async function workAll () {
  for (const q of queues) {
    await boss.work(q, { pollingIntervalSeconds: 0.5 }, async jobs => {
      for (const job of jobs) out.handled[q].push(job.id)
      return { ok: true }
    })
  }
}

if (phase === 'setup') {
  out.ids = {}
  for (const q of queues) {
    await boss.createQueue(q)
    out.ids[q] = []
    for (let i = 0; i < Number(extra); i++) out.ids[q].push(await boss.send(q, { q, i }))
  }
} else if (phase === 'probe') {
  await workAll()
  await sleep(Number(extra) * 1000)
  for (const q of queues) {
    const got = await boss.fetch(q)
    const jobs = Array.isArray(got) ? got : (got ? [got] : [])
    for (const job of jobs) {
      out.fetched[q].push(job.id)
      await boss.complete(q, job.id)
    }
  }
} else if (phase === 'work') {
  const want = JSON.parse(extra)
  await workAll()
  for (let t = 0; ; t++) {
    let all = true
    for (const [q, ids] of Object.entries(want)) {
      for (const id of ids) {
        const job = await boss.getJobById(q, id)
        if (!job || job.state !== 'completed') { all = false; break }
      }
      if (!all) break
    }
    if (all) break
    if (t > 300) { console.error('pause_worker: jobs not completed in time'); break }
    await sleep(100)
  }
  await sleep(1200) // a worker would fetch anything else it could now
  out.states = {}
  for (const q of queues) {
    out.states[q] = {}
    for (const id of (want[q] || [])) out.states[q][id] = (await boss.getJobById(q, id))?.state ?? null
  }
}
await boss.stop({ graceful: false, wait: true, close: true })
clearTimeout(hard)
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
