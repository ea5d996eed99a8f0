'use strict';
// BullMQ for Node 6.7.0 on PostgreSQL (createPostgresBackend), for tests/test_interop_bullmq_postgres.py.
//   node bullmq_pg.js produce <url> <schema> <queue>  -> jobs that complete, fail, wait, are delayed, and a flow
//   node bullmq_pg.js work <url> <schema> <queue> <completed>  -> a worker that completes every job until
//                                                              getJobCounts().completed reaches <completed>
//   node bullmq_pg.js counts <url> <schema> <queue>
// Each mode prints one JSON line: {"counts": getJobCounts(), ...}.
const { Queue, Worker, FlowProducer, createPostgresBackend } = require('bullmq');

const [mode, url, schema, name, target] = process.argv.slice(2);
const connection = { connectionString: url, schema, migrate: true, max: 3 };
const opts = { connection };
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function until(pred, what, ms = 30000) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function main() {
  const queue = new Queue(name, opts, createPostgresBackend);
  await queue.waitUntilReady();
  if (mode === 'produce') {
    for (let i = 0; i < 6; i++) {
      await queue.add('job', { i, fail: i % 2 === 1 }, { attempts: 1 });
    }
    const worker = new Worker(name, async job => {
      await job.log(`processing ${job.id}`);
      if (job.data.fail) throw new Error(`boom ${job.data.i}`);
      return { doubled: job.data.i * 2 };
    }, opts, createPostgresBackend);
    await until(async () => {
      const c = await queue.getJobCounts('completed', 'failed');
      return c.completed === 3 && c.failed === 3;
    }, 'the first 6 jobs');
    await worker.close();
    await queue.add('later', { x: 1 }, { delay: 3600000 });
    await queue.add('waiting', { x: 2 });
    await queue.add('urgent', { x: 3 }, { priority: 5 });
    const flow = new FlowProducer(opts, createPostgresBackend);
    const tree = await flow.add({
      name: 'parent', queueName: name, data: { p: 1 },
      children: [{ name: 'child', queueName: name, data: { c: 1 } }, { name: 'child', queueName: name, data: { c: 2 } }],
    });
    const dependencies = await tree.job.getDependenciesCount();  // before close: the job uses the flow's backend
    await flow.close();
    const failed = (await queue.getJobs(['failed'])).map(j => j.id);
    console.log(JSON.stringify({ counts: await queue.getJobCounts(), failed, parent: tree.job.id,
                                 dependencies,
                                 children: tree.children.map(c => c.job.id) }));
  } else if (mode === 'work') {
    const seen = [];
    const worker = new Worker(name, async job => { seen.push(job.id); return 'ok'; }, opts, createPostgresBackend);
    await until(async () => (await queue.getJobCounts('completed')).completed >= Number(target), 'the worker');
    await worker.close();
    console.log(JSON.stringify({ counts: await queue.getJobCounts(), processed: seen }));
  } else if (mode === 'counts') {
    console.log(JSON.stringify({ counts: await queue.getJobCounts(), paused: await queue.isPaused() }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await queue.close();
}

main().then(() => process.exit(0), err => { console.error(err && err.stack || err); process.exit(1); });
