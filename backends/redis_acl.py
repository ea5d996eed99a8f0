"""Asking Redis beforehand whether this connection's ACL user may run the commands a change needs.

``ACL DRYRUN <user> <command> <args...>`` (Redis 7+) answers ``OK`` or the reason it would refuse
("This user has no permissions to run the 'evalsha' command", "... to access the 'bull:q:meta'
key"), without running anything. The user must itself be allowed ``ACL DRYRUN`` (it is in
``@admin``): where it is not, or on Redis 6, the server cannot say, and a refused command is
reported when it runs (``PermissionDenied``, one line naming the user and the command).
"""
from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from backends.urls import ConnectionUrl


def acl_user(url: ConnectionUrl) -> str:
    """The ACL user the connection authenticates as (Redis's ``default`` when the URL names none)."""
    return url.username or "default"


async def dryrun(client: aioredis.Redis, user: str, commands: list[list[str]]) -> list[str | None] | None:
    """For each command (name and arguments): None when ``user`` may run it, else Redis's reason.
    None overall when the server cannot say (Redis < 7, or ACL DRYRUN not allowed to this user).
    One pipelined round trip; O(1) per command on the server."""
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command("ACL", "DRYRUN", user, *command)
    try:
        replies = await pipe.execute(raise_on_error=False)
    except RedisError:
        return None
    out: list[str | None] = []
    for reply in replies:
        if isinstance(reply, Exception):
            return None  # unknown subcommand (Redis 6), NOPERM for ACL DRYRUN itself, unknown user
        text = reply.decode("utf-8", "backslashreplace") if isinstance(reply, bytes) else str(reply)
        out.append(None if text == "OK" else text)
    return out
