"""BullMQ 6 on PostgreSQL: the declaration the registry loops over. Detected next to pg-boss when a
schema holds BullMQ's tables; with ``--backend bullmq-postgres``, ``--schema`` pins the BullMQ schema."""
from __future__ import annotations

from backends.declaration import BackendDeclaration, BackendOption

#: pg-boss's ``--schema`` (shared): this backend reads it only when ``--backend bullmq-postgres`` forces it
SCHEMA = BackendOption(flag="--schema", dest="schema", config_key="schema", metavar="SCHEMA", shared=True,
                       help="with --backend bullmq-postgres: the BullMQ schema")


async def open_reader(url, options):
    from backends.bullmq_postgres import discovery

    pinned = options.schema if options.backend == "bullmq-postgres" else None
    reader = await discovery.open_reader(url, options.connect_timeout, options.op_timeout, pinned)
    reader.writer.configured_store_schema = options.store_schema
    return reader


async def detect(first, url, options) -> bool:
    from backends.bullmq_postgres import discovery

    return await discovery.present(first.pool, url, None, options.op_timeout)


DECLARATION = BackendDeclaration(name="bullmq-postgres", url_kinds=("postgres",), open=open_reader, detect=detect,
                                 options=(SCHEMA,), discovery_hint="pass --backend bullmq-postgres --schema NAME",
                                 order=20)
