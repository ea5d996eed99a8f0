// Writes pgboss-12.38.0.sql: the SQL that pg-boss 12.38.0 itself generates for the statements the
// `queue-console demo --backend postgres` workload runs, taken from pg-boss's published
// dist/plans.js (npm pg-boss@12.38.0, pinned as `pgboss12` in tests/interop/pgboss/package-lock.json).
// Nothing here writes SQL of its own: every text is the return value of a pg-boss plans function,
// called with the arguments pg-boss's manager passes to it (see the `from:` line of each section).
//
//   (cd tests/interop/pgboss && npm ci)
//   node console/pgboss_ddl/generate.mjs            # rewrites console/pgboss_ddl/pgboss-12.38.0.sql
//   node console/pgboss_ddl/generate.mjs --check    # exit 1 when the shipped file differs
//
// The schema name is generated as the placeholder below and replaced at run time by a lower-case
// bare identifier (pg-boss pastes the schema name into its SQL unquoted, the same way). For the
// default schema `pgboss`, the replacement gives byte for byte what pg-boss generates for `pgboss`;
// this script checks that before writing.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
// the demo's queues (createQueue options, in creation order) and work() batch sizes, shared with console/demo_pgboss.py
const { queues: QUEUES, fetch: FETCH } = JSON.parse(fs.readFileSync(path.join(here, 'queues.json'), 'utf8'))
const root = path.resolve(here, '..', '..')
const dist = path.join(root, 'tests', 'interop', 'pgboss', 'node_modules', 'pgboss12', 'dist')
const pkg = JSON.parse(fs.readFileSync(path.join(dist, '..', 'package.json'), 'utf8'))
if (pkg.version !== '12.38.0') throw new Error(`expected pg-boss 12.38.0 in ${dist}, found ${pkg.version}`)
const plans = await import(pathToFileURL(path.join(dist, 'plans.js')).href)
const { default: Contractor } = await import(pathToFileURL(path.join(dist, 'contractor.js')).href)
const { assertQueueName, validateQueueArgs, assertPostgresObjectName } = await import(pathToFileURL(path.join(dist, 'attorney.js')).href)

export const PLACEHOLDER = 'qc_pgboss_schema_tpl'
// The table a queue's jobs live in: getQueueCache(name).table, which is queue.table_name, i.e.
// plans.COMMON_JOB_TABLE for every queue created without `partition: true` (all of the demo's).
const TABLE = plans.COMMON_JOB_TABLE

function sections (schema) {
  assertPostgresObjectName(schema)
  const out = []
  const add = (key, from, text) => out.push({ key, from, text })
  add('create',
    'index.getConstructionPlans(schema) = Contractor.constructionPlans() -> plans.create(schema, 46, defaults); ' +
    'what boss.start() runs on a database without pg-boss (Contractor.create)',
    Contractor.constructionPlans(schema))
  for (const [name, options] of Object.entries(QUEUES)) {
    assertQueueName(name)
    validateQueueArgs(options)
    const policy = options.policy || plans.QUEUE_POLICIES.standard
    // manager.createQueue(name, options): plans.createQueue(schema, name, { ...options, policy }, noAdvisoryLocks=false)
    add(`createQueue ${name}`,
      `plans.createQueue(schema, '${name}', ${JSON.stringify({ ...options, policy })}, false), as manager.createQueue runs it`,
      plans.createQueue(schema, name, { ...options, policy }, false))
    // manager.send -> createJob: plans.insertJobs(schema, { table, name, returnId: true, notify: false })
    // (notify is false: the demo's queues leave queue.notify at its default)
    add(`insertJobs ${name}`,
      `plans.insertJobs(schema, { table: '${TABLE}', name: '${name}', returnId: true, notify: false }), as manager.send/#createJob runs it; $1 = JSON.stringify([job])`,
      plans.insertJobs(schema, { table: TABLE, name, returnId: true, notify: false }))
    const batchSize = FETCH[name]
    if (batchSize) {
      // manager.work(name, { batchSize }) -> #fetch(name, { batchSize, includeMetadata: false, ... })
      const fetchOptions = {
        batchSize, includeMetadata: false, priority: true, orderByCreatedOn: true,
        schema, table: TABLE, name, policy, limit: batchSize, includeTraceContext: false
      }
      const query = plans.fetchNextJob(fetchOptions, false)
      if (query.values.length) throw new Error('unexpected fetch parameters')
      add(`fetchNextJob ${name}`,
        `plans.fetchNextJob({ schema, table: '${TABLE}', name: '${name}', policy: '${policy}', limit: ${batchSize}, includeMetadata: false, includeTraceContext: false }, noSkipLocked=false), as work()/fetch() runs it`,
        query.text)
    }
  }
  // work()'s settles pass the fetched jobs ({ id, retryCount }), so they are fenced (attemptFence):
  // $1 name, $2 ids, $3 output, $4 plans.attemptPairs(ids, retryCounts)
  add('completeJobs', `plans.completeJobs(schema, '${TABLE}', includeQueued=undefined, fenced=true), as manager.complete(name, jobs, output) runs it`,
    plans.completeJobs(schema, TABLE, undefined, true))
  add('failJobsById', `plans.failJobsById(schema, '${TABLE}', fenced=true) (the failJobs/failJobsBody CTE: retry with retry_delay/backoff, else failed + dead-letter copy), as manager.fail(name, jobs, error) runs it`,
    plans.failJobsById(schema, TABLE, true))
  // boss.cancel(name, id) with plain ids: unfenced; $1 name, $2 ids
  add('cancelJobs', `plans.cancelJobs(schema, '${TABLE}', fenced=false), as manager.cancel(name, ids) runs it`,
    plans.cancelJobs(schema, TABLE, false))
  return out
}

export function render () {
  const tpl = sections(PLACEHOLDER)
  // the placeholder must stand only for the schema: rendering for `pgboss` and substituting must agree
  const real = sections(plans.DEFAULT_SCHEMA)
  tpl.forEach((s, i) => {
    if (s.text.replaceAll(PLACEHOLDER, plans.DEFAULT_SCHEMA) !== real[i].text) throw new Error(`placeholder is not clean in ${s.key}`)
    if (s.text.includes('-- @end')) throw new Error(`marker inside ${s.key}`)
  })
  const head = [
    `-- pg-boss ${pkg.version} (schema version ${pkg.pgboss.schema}): the statements queue-console's demo workload runs.`,
    '-- GENERATED by console/pgboss_ddl/generate.mjs from pg-boss\'s own dist/plans.js (npm pg-boss@12.38.0); do not edit.',
    `-- The schema name is written as ${PLACEHOLDER} and replaced at run time (pg-boss pastes it unquoted too).`,
    '-- Each section: "-- @statement <key>", "-- from: <the pg-boss function and arguments>", the text verbatim, "-- @end".',
    ''
  ].join('\n')
  return head + tpl.map(s => `\n-- @statement ${s.key}\n-- from: ${s.from}\n${s.text}\n-- @end\n`).join('')
}

const target = path.join(here, `pgboss-${pkg.version}.sql`)
const text = render()
if (process.argv.includes('--check')) {
  const shipped = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : ''
  if (shipped !== text) {
    console.error(`${target} differs from what pg-boss ${pkg.version} generates`)
    process.exit(1)
  }
  console.log(`${target} matches pg-boss ${pkg.version}`)
} else {
  fs.writeFileSync(target, text)
  console.log(`wrote ${target}`)
}
