/*
 * Connection options from a test's URL, shared by every Node fixture and worker (tests/interop,
 * tests/interop/pgboss, tests/soak, tests/benchmarks):
 *   redisConnection('redis://user:pass@host:port/db' | 'rediss://...') -> ioredis options for BullMQ
 *   pgConnection('postgresql://user:pass@host:port/db' | 'postgresql://user@/db?host=/dir') -> pg options
 */
'use strict';

function redisConnection(raw) {
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

function pgConnection(raw) {
  // a unix-socket URL (postgresql://user@/db?host=/dir, as pgserver gives) has no host for URL()
  const u = new URL(raw.replace(/@\//, '@localhost/'));
  const cfg = { database: decodeURIComponent(u.pathname.slice(1)) || 'postgres', user: decodeURIComponent(u.username) || 'postgres' };
  if (u.password) cfg.password = decodeURIComponent(u.password);
  cfg.host = u.searchParams.get('host') || u.hostname;
  if (u.port) cfg.port = Number(u.port);
  return cfg;
}

module.exports = { redisConnection, pgConnection };
