"""pg-boss in PostgreSQL: the declaration the registry loops over."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

#: shared with Gello on PostgreSQL and BullMQ on PostgreSQL, which read it when ``--backend`` names them
SCHEMA = BackendOption(flag="--schema", dest="schema", config_key="schema", metavar="SCHEMA", shared=True,
                       help="pg-boss schema (default pgboss)")
HINT = "if pg-boss uses another schema, pass --schema NAME"


async def open_reader(url, options):
    from backends.pgboss.reader import PgBossReader
    from backends.postgres import open_pool

    pool = await open_pool(url, options.connect_timeout, options.op_timeout)
    reader = PgBossReader(pool, url, schema=options.schema)
    reader.store_schema = options.store_schema
    # the re-park sweep of a console-paused queue writes to pg-boss's tables: never in read-only mode
    reader.sweep_parked = not options.read_only
    if options.write_url:
        from backends.urls import parse

        reader.write_url = parse(options.write_url)
    return reader


DECLARATION = BackendDeclaration(name="pgboss", url_kinds=("postgres",), open=open_reader, options=(SCHEMA,),
                                 discovery_hint=HINT, order=0)
