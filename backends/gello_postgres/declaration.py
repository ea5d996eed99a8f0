"""Gello on PostgreSQL: the declaration the registry loops over. Detected next to pg-boss when the
Gello schema has a ``failed_jobs`` table or a ``jobs`` table with ``job_type``; with ``--backend
gello``, ``--schema`` names the schema of Gello's tables (the same flag pg-boss declares)."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

SCHEMA = BackendOption(flag="--schema", dest="schema", config_key="schema",
                       help="with --backend gello: the schema of Gello's tables (default public)")


async def open_reader(url, options):
    from backends.gello_postgres import discovery

    return await discovery.open_reader(url, options)


async def detect(first, url, options) -> bool:
    from backends.contract import call_with_timeout
    from backends.gello_postgres import discovery
    from backends.postgres import pg_errors

    async with pg_errors(url):
        return await call_with_timeout(discovery.detect(first.pool, options.gello_schema_name()),
                                       options.op_timeout, "looking for Gello tables")


DECLARATION = BackendDeclaration(name="gello", url_kinds=("postgres",), open=open_reader, detect=detect,
                                 options=(SCHEMA,), discovery_hint="pass --backend gello --schema NAME", order=10)
