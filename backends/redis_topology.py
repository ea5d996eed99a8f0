"""Redis behind Sentinel: ``redis+sentinel://[:password@]host:port[,host:port...]/MASTER_NAME[/db]``
(``rediss+sentinel://`` for TLS to the master; the TLS query options of ``rediss://`` apply).

The client caches the master's address and asks the sentinels again whenever it opens a connection
and whenever a sentinel announces a failover (``+switch-master``, FencedSentinelPool), so after a
failover the next command reaches the new master. A connection still open to a demoted master that
answers a write with READONLY is dropped, and the command fails with a connection error (redis-py's
SentinelManagedConnection): the console's writes are single Lua scripts or pipelines per batch, so a
batch is either applied on the master or not at all; the action reports how far it got ("run again
to finish the rest"), never half a batch.

Query options: ``sentinel_password`` (when the sentinels have ``requirepass``), ``sentinel_username``.
The URL's own user/password authenticate to the master (and replicas).
"""
from __future__ import annotations

import time
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
    for n, item in enumerate(hostlist.split(","), 1):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), "26379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            # the address itself is not quoted: a port that is not a number may be a password
            raise BadUrl(f"bad sentinel address (number {n}) in {shown} (expected host:port)")
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


#: the cached master's address is asked for again after this long even without an announcement (seconds)
MASTER_MAX_AGE_S = 5.0
#: the channel on which every sentinel announces a failover: ``<master> <old ip> <old port> <new ip> <new port>``
SWITCH_CHANNEL = "+switch-master"


@lru_cache(maxsize=1)
def _fenced_pool_class():
    import asyncio

    from redis.asyncio.sentinel import SentinelConnectionPool
    from redis.exceptions import RedisError

    class FencedSentinelPool(SentinelConnectionPool):
        """Knows the master before every command (or pipeline, or script call) without asking a
        sentinel each time: the master's address is cached, and asked for again only when

        - a sentinel announced a failover of this master (``+switch-master``, on a subscription to
          one sentinel, read without waiting before every command: what arrived is in the socket
          buffer already, so this costs no round trip);
        - that subscription is not known to be working (just opened, broken, a sentinel gone);
        - a connection is opened (redis-py asks then: after a connection error, and after a
          READONLY reply, which drops the connection to the demoted master);
        - the last answer is older than MASTER_MAX_AGE_S (a subscription that died silently, a
          sentinel cut off from the others, cannot hide a failover for longer than that).

        redis-py alone asks only when it opens a connection, so after a failover its pooled
        connections kept writing to the old master for as long as that still believed it was
        master: measured in tests/test_topology_sentinel.py, 250 of 300 retried jobs went to the
        demoted master and were lost when it became a replica. A changed answer drops the idle
        connections to the old master first (get_master_address). Before the cache, the pool asked
        a sentinel before every command: one extra round trip each."""

        _watch = None  # a PubSub on one sentinel's SWITCH_CHANNEL, subscription confirmed
        _watch_from = 0  # which sentinel to subscribe to next (the next one after a failure)
        _watch_lock: asyncio.Lock | None = None

        _asked_at = 0.0  # time.monotonic() of the last answer

        async def get_connection(self, *args, **kwargs):
            if await self._master_may_have_changed() or time.monotonic() - self._asked_at > MASTER_MAX_AGE_S:
                await self.get_master_address()
            return await super().get_connection(*args, **kwargs)

        async def get_master_address(self):
            address = await super().get_master_address()
            self._asked_at = time.monotonic()
            return address

        async def _master_may_have_changed(self) -> bool:
            if self._watch_lock is None:
                self._watch_lock = asyncio.Lock()
            async with self._watch_lock:
                if self._watch is None:
                    await self._subscribe()
                    return True  # subscribed (or not): ask now, a later switch is then announced
                try:
                    changed = self.master_address is None
                    while True:
                        if self._watch.connection is None or not self._watch.connection.is_connected:
                            raise ConnectionError("the sentinel subscription was dropped")
                        message = await self._watch.get_message(timeout=0)
                        if message is None:
                            return changed
                        data = message.get("data")
                        if message.get("type") == "message" and isinstance(data, bytes) and \
                                data.split(b" ", 1)[0] == self.service_name.encode():
                            changed = True
                except (RedisError, OSError):
                    await self._drop_watch()
                    return True

        async def _subscribe(self) -> None:
            """Subscribe to one sentinel (each in turn after a failure) and wait for the
            confirmation; on failure no subscription, and every command asks until one works."""
            sentinels = self.sentinel_manager.sentinels
            sentinel = sentinels[self._watch_from % len(sentinels)]
            self._watch_from += 1
            watch = sentinel.pubsub()
            try:
                await watch.subscribe(SWITCH_CHANNEL)
                timeout = sentinel.connection_pool.connection_kwargs.get("socket_timeout") or 5
                confirmed = await watch.get_message(timeout=timeout)
                if not confirmed or confirmed.get("type") != "subscribe":
                    raise ConnectionError("no confirmation of the sentinel subscription")
            except (RedisError, OSError):
                await watch.aclose()
                return
            self._watch = watch

        async def _drop_watch(self) -> None:
            watch, self._watch = self._watch, None
            if watch is not None:
                try:
                    await watch.aclose()
                except (RedisError, OSError):
                    pass

        async def disconnect(self, inuse_connections: bool = True):
            if inuse_connections:  # the client is closing (a failover drops only idle ones)
                await self._drop_watch()
            await super().disconnect(inuse_connections)

    return FencedSentinelPool
