"""Redis behind Sentinel: ``redis+sentinel://[:password@]host:port[,host:port...]/MASTER_NAME[/db]``
(``rediss+sentinel://`` for TLS to the master; the TLS query options of ``rediss://`` apply).

The client asks the sentinels for the current master whenever it opens a connection, so after a
failover the next command reaches the new master. A connection still open to a demoted master that
answers a write with READONLY is dropped, and the command fails with a connection error (redis-py's
SentinelManagedConnection): the console's writes are single Lua scripts or pipelines per batch, so a
batch is either applied on the master or not at all; the action reports how far it got ("run again
to finish the rest"), never half a batch.

Query options: ``sentinel_password`` (when the sentinels have ``requirepass``), ``sentinel_username``.
The URL's own user/password authenticate to the master (and replicas).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl, unquote

from backends.errors import BadUrl

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_OWN_OPTIONS = ("sentinel_password", "sentinel_username")


@dataclass(frozen=True)
class SentinelSpec:
    sentinels: list[tuple[str, int]]
    master: str
    db: int
    options: dict[str, str]  # the query string, our own options included

    @property
    def label(self) -> str:
        """Where it points, for messages: the master's name and the sentinels."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"{self.master} via sentinel {hosts}"


def parse_sentinel(bare: str, shown: str) -> SentinelSpec:
    """``bare``: the URL without credentials; ``shown``: the redacted URL for messages."""
    _scheme, _, rest = bare.partition("://")
    rest, _, query = rest.partition("?")
    hostlist, _, path = rest.partition("/")
    if not hostlist:
        raise BadUrl(f"no sentinel host in {shown}")
    sentinels = []
    for item in hostlist.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), "26379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadUrl(f"bad sentinel address {item!r} in {shown} (expected host:port)")
        sentinels.append((host, int(port)))
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts:
        raise BadUrl(f"no master name in {shown} (expected redis+sentinel://host:port/MASTER_NAME[/db])")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise BadUrl(f"expected /MASTER_NAME[/db] after the sentinels in {shown}")
    options = dict(parse_qsl(query, keep_blank_values=True))
    if "db" in options and not options["db"].isdigit():
        raise BadUrl(f"Redis database must be a number (db= in the query) in {shown}")
    db = int(parts[1]) if len(parts) == 2 else int(options.pop("db", 0) or 0)
    return SentinelSpec(sentinels=sentinels, master=parts[0], db=db, options=options)


def sentinel_client(url, connect_timeout: float, op_timeout: float, client_kwargs: dict):
    """A redis.asyncio client for the master that the sentinels of ``url`` name now."""
    from redis.asyncio.sentinel import Sentinel
    from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

    spec = parse_sentinel(url.bare, url.redacted)
    extra: dict = {}
    for name, value in spec.options.items():
        if name in _OWN_OPTIONS:
            continue
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
        extra[name] = parser(value) if parser else value
    if url.scheme.startswith("rediss"):
        extra["ssl"] = True
    sentinel_kwargs = {"socket_connect_timeout": connect_timeout, "socket_timeout": op_timeout}
    if spec.options.get("sentinel_password"):
        sentinel_kwargs["password"] = spec.options["sentinel_password"]
    if spec.options.get("sentinel_username"):
        sentinel_kwargs["username"] = spec.options["sentinel_username"]
    sentinel = Sentinel(spec.sentinels, sentinel_kwargs=sentinel_kwargs)
    auth = {}
    if url.password is not None:
        auth["password"] = url.password
    if url.username:
        auth["username"] = url.username
    return sentinel.master_for(spec.master, db=spec.db, connection_pool_class=_fenced_pool_class(),
                               **client_kwargs, **auth, **extra)


@lru_cache(maxsize=1)
def _fenced_pool_class():
    from redis.asyncio.sentinel import SentinelConnectionPool

    class FencedSentinelPool(SentinelConnectionPool):
        """Asks a sentinel for the master before every command (or pipeline, or script call).

        redis-py asks only when it opens a connection, so after a failover its pooled connections
        kept writing to the old master for as long as that still believed it was master: measured
        in tests/test_topology_sentinel.py, 250 of 300 retried jobs went to the demoted master and
        were lost when it became a replica. Now a changed answer drops the idle connections to the
        old master first; the cost is one round trip to a sentinel per command."""

        async def get_connection(self, *args, **kwargs):
            await self.get_master_address()
            return await super().get_connection(*args, **kwargs)

    return FencedSentinelPool


