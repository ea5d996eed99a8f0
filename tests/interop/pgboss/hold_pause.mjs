// The pause acceptance run with a real pg-boss for Node (tests/test_interop_pgboss_pause.py):
// workers on four queues, a producer, and a worker that fails a job while the queue is paused.
//
//   node hold_pause.mjs <postgres-url> <lib> <schema> <jobs per second> <seconds>
//
// Driven by lines on stdin; answers one JSON line on stdout per step:
//   (start)   creates queues plain (priorities), single (policy singleton, keys), stately (policy
//             stately, keys; every 4th send repeats the last key, which pg-boss itself refuses),
//             flaky (retryLimit 2, retryDelay 0); starts one worker per queue (batches of 20, flaky
//             1; polling 0.5 s); sends one flaky job and prints {step:'ready', flaky} once its
//             handler holds it
//   paused    the flaky handler throws (pg-boss fails the job into 'retry'); the producer sends
//             <rate> jobs/s for <seconds> s round robin to plain/single/stately; then 2 s of grace;
//             prints {step:'paused', sent, refused, taken} (taken: handler starts during this step)
//   resumed   waits until every sent job and the flaky job were handled (then 2 s more, to catch a
//             duplicate); prints {step:'resumed', handled: {queue: [[ids of one fetch], ...]}}; exits
import { createRequire } from 'node:module'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const [, , url, lib, schema, rateArg, secondsArg] = process.argv
const rate = Number(rateArg)
const seconds = Number(secondsArg)
const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const pkg = require(path.join(here, 'node_modules', lib, 'package.json'))
const mod = await import(path.join(here, 'node_modules', lib, pkg.main || 'index.js'))
const PgBoss = mod.PgBoss || mod.default || mod

const hard = setTimeout(() => { console.error('hold_pause: hard timeout'); process.exit(3) }, (seconds + 150) * 1000)

const { pgConnection: connection } = require('../pg_conn.js')

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const say = doc => process.stdout.write(JSON.stringify({ lib, version: pkg.version, ...doc }) + '\n')
const boss = new PgBoss({ ...connection(url), schema, supervise: false, schedule: false, max: 8 })
boss.on('error', err => console.error('pg-boss error', err))
await boss.start()

const QUEUES = { plain: {}, single: { policy: 'singleton' }, stately: { policy: 'stately' }, flaky: { retryLimit: 2, retryDelay: 0 } }
for (const [q, opts] of Object.entries(QUEUES)) await boss.createQueue(q, opts)

let step = 'start'
const handled = { plain: [], single: [], stately: [], flaky: [] }
const taken = []
let releaseFlaky
const flakyFail = new Promise(resolve => { releaseFlaky = resolve })
let flakyHeld
const flakyActive = new Promise(resolve => { flakyHeld = resolve })

for (const q of Object.keys(QUEUES)) {
  await boss.work(q, { pollingIntervalSeconds: 0.5, batchSize: q === 'flaky' ? 1 : 20 }, async jobs => {
    if (step === 'paused') for (const job of jobs) taken.push({ queue: q, id: job.id })
    handled[q].push(jobs.map(job => job.id))
    const [job] = jobs
    if (q === 'flaky' && step === 'start') {
      flakyHeld(job.id)
      await flakyFail
      throw new Error('flaky worker fails its job while the queue is paused')
    }
    return { ok: true }
  })
}
const flaky = await boss.send('flaky', { first: true })
await flakyActive
say({ step: 'ready', flaky })

let expected = null
const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  const cmd = line.trim()
  if (cmd === 'paused') {
    step = 'paused'
    releaseFlaky()
    const sent = { plain: [], single: [], stately: [] }
    const refused = { plain: 0, single: 0, stately: 0 }
    const names = Object.keys(sent)
    const total = Math.round(rate * seconds)
    const t0 = Date.now()
    let lastKey = null
    for (let i = 0; i < total; i++) {
      const wait = t0 + (i * 1000) / rate - Date.now()
      if (wait > 0) await sleep(wait)
      const q = names[i % names.length]
      let opts = {}
      if (q === 'plain') opts = { priority: i % 3 }
      if (q === 'single') opts = { singletonKey: 'k' + (i % 7) }
      if (q === 'stately') {
        opts = { singletonKey: (i % 4 === 3 && lastKey) ? lastKey : 's' + i }
        lastKey = opts.singletonKey
      }
      const id = await boss.send(q, { i }, opts)
      if (id) sent[q].push(id)
      else refused[q]++
    }
    const producedSeconds = (Date.now() - t0) / 1000
    await sleep(2000)
    expected = { plain: sent.plain.length, single: sent.single.length, stately: sent.stately.length, flaky: 2 }
    say({ step: 'paused', sent, refused, taken, producedSeconds })
  } else if (cmd === 'resumed') {
    step = 'resumed'
    break
  }
}
for (let t = 0; t < 1200; t++) {
  if (Object.entries(expected).every(([q, n]) => handled[q].flat().length >= n)) break
  await sleep(100)
}
await sleep(2000)
say({ step: 'resumed', handled })
clearTimeout(hard)
await boss.stop({ graceful: false, wait: true, close: true })
process.exit(0)
