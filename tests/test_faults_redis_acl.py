"""A Redis ACL user without write permission, on a private redis-server (never the machine's).

Before: a mutation ended in "internal error: NoPermissionError ... (please report this)", exit 1.
Now: one line naming the user and what Redis refused, exit 3; and where the user may ask ACL
DRYRUN (Redis 7+), the queue is read-only beforehand with the reason, so the TUI never offers the
key and the CLI refuses before any preview.
"""
from __future__ import annotations


import pytest

from backends.errors import PermissionDenied
from backends.registry import ConnectOptions, open_readers
from tests.cli_harness import run_async as _run_cli
from tests.fixed_data import write_fixed_queue
from tests.private_redis import FAULT_PORTS, PrivateRedis, running

PREFIX = "bull"


@pytest.fixture(scope="module")
def server():
    with running(FAULT_PORTS) as srv:
        with srv.client() as c:
            write_fixed_queue(c, PREFIX, "orders", failed=3, completed=0, waiting=0, delayed=0)
            # may read everything, write nothing (and may not ask ACL DRYRUN: Redis cannot say beforehand)
            c.execute_command("ACL", "SETUSER", "viewer", "on", ">viewer-pw", "~*", "&*", "-@all", "+@read",
                              "+@connection", "+time", "+scan", "+type", "+info")
            # the same, plus ACL DRYRUN: Redis can tell the console beforehand
            c.execute_command("ACL", "SETUSER", "auditor", "on", ">auditor-pw", "~*", "&*", "-@all", "+@read",
                              "+@connection", "+time", "+scan", "+type", "+info", "+acl|dryrun")
        yield srv


def _url(server: PrivateRedis, user: str) -> str:
    return f"redis://{user}:{user}-pw@127.0.0.1:{server.port}/0"


@pytest.mark.parametrize("argv", [
    ["dlq", "retry", "orders", "--job", "1", "--yes"],
    ["dlq", "purge", "orders", "--job", "1", "--yes"],
    ["pause", "orders", "--yes"],
])
async def test_write_refused_by_acl_is_one_line_naming_the_permission_exit_3(server, capsys, argv):
    code, out, err = await _run_cli(capsys, *argv, "--url", _url(server, "viewer"))
    assert code == 3, (out, err)
    text = out + err
    assert "internal error" not in text and "please report" not in text
    assert "refused user 'viewer'" in text and "no permissions to run the '" in text
    assert "viewer-pw" not in text  # never the password
    with server.client() as c:  # nothing moved
        assert c.zcard(f"{PREFIX}:orders:failed") == 3 and not c.hexists(f"{PREFIX}:orders:meta", "paused")


async def test_reader_maps_noperm_to_permission_denied(server):
    [reader] = await open_readers(_url(server, "viewer"), ConnectOptions(prefixes=[PREFIX]))
    try:
        [q] = (await reader.discover()).queues
        assert reader.queue_capabilities(q).retry  # Redis could not say beforehand (no ACL DRYRUN)
        with pytest.raises(PermissionDenied, match=r"refused user 'viewer': .*'evalsha'"):
            await reader.set_paused(q, True)
    finally:
        await reader.close()


async def test_acl_dryrun_makes_the_queue_read_only_beforehand(server, capsys):
    if server.version() < (7,):
        pytest.skip("ACL DRYRUN needs Redis 7 (this redis-server is older)")
    [reader] = await open_readers(_url(server, "auditor"), ConnectOptions(prefixes=[PREFIX]))
    try:
        [q] = (await reader.discover()).queues
        caps = reader.queue_capabilities(q)
        assert not caps.retry and not caps.pause and not caps.purge
        assert caps.read_only_reason.startswith("ACL: user 'auditor' cannot run ")
        assert "no permissions" in caps.read_only_reason
    finally:
        await reader.close()
    code, out, err = await _run_cli(capsys, "dlq", "retry", "orders", "--job", "1", "--yes",
                                    "--url", _url(server, "auditor"))
    assert code == 4 and "ACL: user 'auditor' cannot run" in err and err.count("\n") == 1
    assert "retry the selected" not in out  # refused before any preview

    # the default user (all permissions) may: nothing is taken away
    [admin] = await open_readers(server.url, ConnectOptions(prefixes=[PREFIX]))
    try:
        [q] = (await admin.discover()).queues
        assert admin.queue_capabilities(q).retry and admin.queue_capabilities(q).read_only_reason is None
    finally:
        await admin.close()


async def test_tui_does_not_offer_what_the_acl_user_may_not_do(server):
    """Pilot: the queue view of a user Redis says (ACL DRYRUN) may not change the queue names the
    reason in its title and offers no mutating key; the default user gets them."""
    if server.version() < (7,):
        pytest.skip("ACL DRYRUN needs Redis 7 (this redis-server is older)")
    from textual.widgets import DataTable

    from console.app import QueueConsoleApp
    from console.config import Settings
    from console.screens.queue import QueueScreen
    from tests.tui_harness import SIZE, plain, wait_for

    for user, offered in (("auditor", False), (None, True)):
        url = _url(server, user) if user else server.url
        app = QueueConsoleApp(Settings(urls=[url], prefixes=[PREFIX], refresh=0.5))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, what="the queue")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, QueueScreen), what="queue view")
            title = app.screen.query_one("#queue-title")
            await wait_for(pilot, lambda: "orders" in plain(title.content), what="title")
            assert ("read-only: ACL: user 'auditor' cannot run" in plain(title.content)) is not offered
            for action in ("retry", "purge", "toggle_pause"):
                assert bool(app.screen.check_action(action, ())) is offered, action
