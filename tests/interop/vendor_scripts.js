#!/usr/bin/env node
/*
 * Writes (or, with --check, compares) the resolved Lua of the BullMQ 4.x and 5.x scripts that move
 * jobs between wait/paused, as vendored in backends/bullmq/lua/bullmq-<version>/<name>-<n>.lua.
 * The text is each package's own dist/cjs/scripts/<name>-<n>.js `content` (includes resolved).
 *
 *   node vendor_scripts.js <out-dir> [--check]
 * Prints one JSON line: {written|checked: [...], mismatched: [...]}.
 */
'use strict';
const fs = require('fs');
const path = require('path');

const SCRIPTS = {
  bullmq4: ['reprocessJob-6', 'moveJobsToWait-6', 'promote-7', 'pause-5'],
  bullmq5: ['reprocessJob-8', 'moveJobsToWait-8', 'promote-9', 'pause-7'],
};
const [outDir, flag] = process.argv.slice(2);
const check = flag === '--check';
const done = [];
const mismatched = [];
for (const [pkg, names] of Object.entries(SCRIPTS)) {
  const version = require(`${pkg}/package.json`).version;
  const dir = path.join(outDir, `bullmq-${version}`);
  if (!check) fs.mkdirSync(dir, { recursive: true });
  for (const name of names) {
    const mod = require(`${pkg}/dist/cjs/scripts/${name}.js`);
    const script = Object.values(mod).find(v => v && typeof v.content === 'string');
    const file = path.join(dir, `${name}.lua`);
    if (check) {
      if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== script.content) mismatched.push(file);
    } else {
      fs.writeFileSync(file, script.content);
    }
    done.push(`bullmq-${version}/${name}.lua`);
  }
}
process.stdout.write(JSON.stringify({ [check ? 'checked' : 'written']: done, mismatched }) + '\n');
