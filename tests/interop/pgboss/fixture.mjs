// Interop fixture: pg-boss for Node builds queues with jobs in every state, in a schema of its own,
// then prints one JSON line with the ids it made and what pg-boss's API reports about them.
//
//   node fixture.mjs <postgres-url> <pgboss10|pgboss11|pgboss12> <schema>
//
// main (retryLimit 1, deadLetter main_dlq): completed, failed after a retry (its DLQ copy lands in
// main_dlq), active (fetched, never settled), waiting (one with priority), delayed, cancelled.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const [, , url, lib, schema] = process.argv
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const pkg = require(path.join(here, 'node_modules', lib, 'package.json'))
const mod = await import(path.join(here, 'node_modules', lib, pkg.main || 'index.js'))
const PgBoss = mod.PgBoss || mod.default || mod

const { pgConnection: connection } = require('../pg_conn.js')

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const boss = new PgBoss({ ...connection(url), schema, supervise: false, schedule: false, max: 3 })
boss.on('error', err => console.error('pg-boss error', err))
await boss.start()

async function fetchOne (name) {
  for (let i = 0; i < 50; i++) {
    const got = await boss.fetch(name)
    const job = Array.isArray(got) ? got[0] : got
    if (job) return job
    await sleep(100)
  }
  throw new Error(`nothing to fetch from ${name}`)
}

const out = { lib, version: pkg.version, schema, ids: {}, api: {}, jobs: {} }
await boss.createQueue('main_dlq')
await boss.createQueue('main', { retryLimit: 1, retryDelay: 0, deadLetter: 'main_dlq' })
await boss.createQueue('other')

// completed
const done = await boss.send('main', { kind: 'done' })
let job = await fetchOne('main')
if (job.id !== done) throw new Error('fetched the wrong job')
await boss.complete('main', done, { result: 42 })
out.ids.completed = [done]
// failed after one retry -> its copy goes to main_dlq
const failed = await boss.send('main', { kind: 'fail' }, { singletonKey: 'fail-key' })
job = await fetchOne('main')
await boss.fail('main', failed, new Error('first failure'))
await sleep(1100) // retry_delay 0: start_after = now(); v10/v11 fetch wants start_after < now()
job = await fetchOne('main')
await boss.fail('main', failed, new Error('final failure'))
out.ids.failed = [failed]
// active: fetched and never settled
const active = await boss.send('main', { kind: 'active' })
job = await fetchOne('main')
out.ids.active = [active]
// waiting (one with priority), delayed, cancelled
out.ids.waiting = []
out.ids.waiting.push(await boss.send('main', { kind: 'wait', i: 1 }))
out.ids.waiting.push(await boss.send('main', { kind: 'wait', i: 2, quote: "it's \"quoted\"", uni: 'ünï 🚀' }))
out.ids.waiting.push(await boss.send('main', { kind: 'wait', i: 3 }, { priority: 5 }))
out.ids.delayed = [await boss.send('main', { kind: 'later' }, { startAfter: 3600 })]
const cancelled = await boss.send('main', { kind: 'cancel' })
await boss.cancel('main', cancelled)
out.ids.cancelled = [cancelled]
out.ids.other = [await boss.send('other', { n: 1 })]

// what pg-boss reports
out.api.getQueues = typeof boss.getQueues === 'function' ? await boss.getQueues() : null
for (const name of ['main', 'main_dlq', 'other']) {
  out.api[name] = {}
  if (typeof boss.getQueueSize === 'function') out.api[name].getQueueSize = await boss.getQueueSize(name)
  if (typeof boss.getQueueStats === 'function') out.api[name].getQueueStats = await boss.getQueueStats(name)
  if (typeof boss.getQueue === 'function') out.api[name].getQueue = await boss.getQueue(name)
}
for (const [role, ids] of Object.entries(out.ids)) {
  for (const id of ids) out.jobs[id] = await boss.getJobById(role === 'other' ? 'other' : 'main', id)
}
process.stdout.write(JSON.stringify(out) + '\n')
await boss.stop({ graceful: false, wait: true, close: true })
process.exit(0)
