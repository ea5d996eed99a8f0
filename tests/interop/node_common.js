'use strict';
/*
 * What the interop scripts share: the ioredis connection options of a redis:// URL, the BullMQ
 * package of a "v6" / "v5" argument, and a hard timeout that ends the process.
 */

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
  if (u.protocol === 'rediss:') conn.tls = {};
  return conn;
}

function bullmqOf(lib) {
  const pkgName = lib === 'v5' ? 'bullmq5' : 'bullmq';
  return { bullmq: require(pkgName), version: require(`${pkgName}/package.json`).version, pkgName };
}

function hardTimeout(ms, who) {
  return setTimeout(() => {
    process.stderr.write(`${who}: hard timeout\n`);
    process.exit(3);
  }, ms);
}

module.exports = { connectionFromUrl, bullmqOf, hardTimeout };
