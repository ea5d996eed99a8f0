"""Gello on PostgreSQL: the declaration the registry loops over. Detected next to pg-boss when the
Gello schema has a ``failed_jobs`` table or a ``jobs`` table with ``job_type``. The schema of
Gello's tables: ``--gello-schema`` (config key ``gello_schema``), else, with ``--backend gello``,
``--schema`` (shared with pg-boss, which declares it too), else ``public``."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

SCHEMA = BackendOption(flag="--schema", dest="schema", config_key="schema", metavar="SCHEMA", shared=True,
                       help="with --backend gello: the schema of Gello's tables (default public)")
GELLO_SCHEMA = BackendOption(flag="--gello-schema", dest="gello_schema", config_key="gello_schema", metavar="SCHEMA",
                             help="the schema of Gello's tables in PostgreSQL, with or without --backend gello "
                                  "(default: --schema with --backend gello, else public)")


def gello_schema(options) -> str:
    """The schema Gello's tables are looked for in (see the module's docstring)."""
    return options.gello_schema or (options.schema if options.backend == "gello" and options.schema else None) \
        or "public"


async def open_reader(url, options):
    from backends.gello_postgres import discovery

    return await discovery.open_reader(url, options)


async def detect(first, url, options) -> bool:
    from backends.contract import call_with_timeout
    from backends.gello_postgres import discovery
    from backends.postgres import pg_errors

    async with pg_errors(url):
        return await call_with_timeout(discovery.detect(first.pool, gello_schema(options)),
                                       options.op_timeout, "looking for Gello tables")


DECLARATION = BackendDeclaration(name="gello", url_kinds=("postgres",), open=open_reader, detect=detect,
                                 options=(SCHEMA, GELLO_SCHEMA), discovery_hint="pass --backend gello --schema NAME", order=10)
