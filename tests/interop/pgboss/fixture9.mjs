// Interop fixture for pg-boss 9 (schema version 20): jobs in every v9 state, in a schema of its own,
// some of them moved to the `archive` table by pg-boss's own archive step; then one JSON line with
// the ids it made and what pg-boss's API reports about them.
//
//   node fixture9.mjs <postgres-url> <schema>
//
// pg-boss 9 has no queue table and no createQueue(): a queue is the `name` of its jobs.
// Supervision is on (so pg-boss writes its own `__pgboss__maintenance` rows), with a maintenance
// interval of an hour so that nothing runs by itself after the first pass; the fixture calls
// boss.expire() and boss.archive() itself (both are public in v9) at known moments.
//
// exp: one job, expired and then archived (its queue has no row left in `job`).
// main: archived (completed, cancelled and failed rows moved to `archive`), completed (with
// onComplete, so a `__state__completed__main` job appears), expired (expireInSeconds 1, then
// expire()), failed after one retry, retry later (retryDelay 3600), active (fetched, never
// settled), retry now (retryDelay 0), waiting (one with priority 5, one with quotes/unicode),
// delayed (startAfter 3600), cancelled. other: one waiting job.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const [, , url, schema] = process.argv
const lib = 'pgboss9'
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const pkg = require(path.join(here, 'node_modules', lib, 'package.json'))
const PgBoss = require(path.join(here, 'node_modules', lib))

const { pgConnection: connection } = require('../pg_conn.js')

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
process.on('warning', () => {}) // the "archive < 60 s disables cron" warning is expected
const boss = new PgBoss({
  ...connection(url),
  schema,
  max: 3,
  noScheduling: true,
  maintenanceIntervalSeconds: 3600,
  archiveCompletedAfterSeconds: 1
})
boss.on('error', err => console.error('pg-boss error', err))
const firstMaintenance = new Promise((resolve, reject) => {
  boss.once('maintenance', resolve)
  setTimeout(() => reject(new Error('no maintenance pass within 20 s')), 20000).unref()
})
await boss.start()
await firstMaintenance // its archive pass is over before any job of ours exists

async function fetchOne (name, expected) {
  for (let i = 0; i < 50; i++) {
    const job = await boss.fetch(name)
    if (job) {
      if (expected && job.id !== expected) throw new Error(`fetched ${job.id}, wanted ${expected}`)
      return job
    }
    await sleep(100)
  }
  throw new Error(`nothing to fetch from ${name}`)
}

const out = { lib, version: pkg.version, schema, ids: {}, api: {}, jobs: {} }
const ids = out.ids

// archived: completed, cancelled and failed, then pg-boss's own archive step (older than 1 s)
const arch = []
let id = await boss.send('main', { kind: 'archived-done' })
await fetchOne('main', id)
await boss.complete(id, { archived: true })
arch.push(id)
id = await boss.send('main', { kind: 'archived-cancel' })
await boss.cancel(id)
arch.push(id)
id = await boss.send('main', { kind: 'archived-fail' })
await fetchOne('main', id)
await boss.fail(id, new Error('archived failure'))
arch.push(id)
// exp: a queue whose only job expired and was archived, so no row of it is left in `job`
const expOnly = await boss.send('exp', { kind: 'archived-expired' }, { expireInSeconds: 1 })
await fetchOne('exp', expOnly)
await sleep(1200)
await boss.expire()
await sleep(1100)
await boss.archive()
ids.archived = arch
out.archivedQueue = { name: 'exp', id: expOnly, job: await boss.getJobById(expOnly) }

// completed, with a completion job (__state__completed__main)
id = await boss.send('main', { kind: 'done' }, { onComplete: true })
await fetchOne('main', id)
await boss.complete(id, { result: 42 })
ids.completed = [id]
// expired: fetched with expireInSeconds 1; expire() runs after the failed job's wait below
const expiring = await boss.send('main', { kind: 'expire' }, { expireInSeconds: 1 })
await fetchOne('main', expiring)
// failed after one retry
const failed = await boss.send('main', { kind: 'fail' }, { retryLimit: 1, retryDelay: 0, singletonKey: 'fail-key' })
await fetchOne('main', failed)
await boss.fail(failed, new Error('first failure'))
await sleep(1100) // the fetch wants startAfter < now()
await fetchOne('main', failed)
await boss.fail(failed, new Error('final failure'))
ids.failed = [failed]
await boss.expire()
ids.expired = [expiring]
// retry later: failed once, next attempt in an hour
id = await boss.send('main', { kind: 'retry-later' }, { retryLimit: 2, retryDelay: 3600 })
await fetchOne('main', id)
await boss.fail(id, new Error('try again later'))
ids.retry_later = [id]
// active: fetched and never settled
id = await boss.send('main', { kind: 'active' })
await fetchOne('main', id)
ids.active = [id]
// retry now: failed once, runnable again at once
id = await boss.send('main', { kind: 'retry-now' }, { retryLimit: 2, retryDelay: 0 })
await fetchOne('main', id)
await boss.fail(id, new Error('try again now'))
ids.retry_now = [id]
// waiting (one with priority), delayed, cancelled
ids.waiting = []
ids.waiting.push(await boss.send('main', { kind: 'wait', i: 1 }))
ids.waiting.push(await boss.send('main', { kind: 'wait', i: 2, quote: "it's \"quoted\"", uni: 'ünï 🚀' }))
ids.waiting.push(await boss.send('main', { kind: 'wait', i: 3 }, { priority: 5 }))
ids.delayed = [await boss.send('main', { kind: 'later' }, { startAfter: 3600 })]
id = await boss.send('main', { kind: 'cancel' })
await boss.cancel(id)
ids.cancelled = [id]
ids.other = [await boss.send('other', { n: 1 })]

// what pg-boss reports
for (const name of ['main', 'other', '__state__completed__main', '__pgboss__maintenance']) {
  out.api[name] = {
    getQueueSize: await boss.getQueueSize(name),
    getQueueSizeBeforeCompleted: await boss.getQueueSize(name, { before: 'completed' })
  }
}
for (const list of Object.values(ids)) {
  for (const jobId of list) out.jobs[jobId] = await boss.getJobById(jobId)
}
process.stdout.write(JSON.stringify(out) + '\n')
await boss.stop({ graceful: false, destroy: true })
process.exit(0)
