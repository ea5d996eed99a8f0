/*
 * The pg connection options of a test's PostgreSQL URL, shared by the pg-boss scripts
 * (tests/interop/pgboss/*.mjs, tests/benchmarks/pgboss_node.mjs, test_actions_pgboss.py's worker):
 *   pgConnection('postgresql://user:pass@host:port/db' | 'postgresql://user@/db?host=/dir')
 * (The BullMQ scripts' redis:// parser is node_common.js's connectionFromUrl on main.)
 */
'use strict';

function pgConnection(raw) {
  // a unix-socket URL (postgresql://user@/db?host=/dir, as pgserver gives) has no host for URL()
  const u = new URL(raw.replace(/@\//, '@localhost/'));
  const cfg = { database: decodeURIComponent(u.pathname.slice(1)) || 'postgres', user: decodeURIComponent(u.username) || 'postgres' };
  if (u.password) cfg.password = decodeURIComponent(u.password);
  cfg.host = u.searchParams.get('host') || u.hostname;
  if (u.port) cfg.port = Number(u.port);
  return cfg;
}

module.exports = { pgConnection };
