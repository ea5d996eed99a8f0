"""Sparklines and the throughput chart follow the theme (issue 12): SVG snapshots of a queue whose
BullMQ metrics hold an hour of per-minute points (drawn from the first frame), in the dark and the
light theme, plus a check that every shipped theme and a user theme give their own success/error
colours to the overview's sparklines and the chart.

The metrics keys are written relative to the server's clock (minute numbers), away from a minute
boundary, so the points drawn are the same on every run. Update with ``--snapshot-update``.
"""
from __future__ import annotations

import time

import pytest
import redis
from textual.widgets import DataTable

from console.app import QueueConsoleApp
from console.config import Settings
from console.screens.queue import QueueScreen
from console.widgets.signal_colors import plotext_colors, rich_styles
from tests.fixed_data import write_fixed_queue
from tests.servers import SocketRedis
from tests.test_tui_snapshots import _wait

SIZE = (150, 40)
DONE = [(i * 7) % 13 * 6 + 30 for i in range(59)]  # per minute, newest first (BullMQ's data list)
FAIL = [(i * 5) % 7 * 3 for i in range(59)]


def write_metrics(client: redis.Redis, prefix: str, names: tuple[str, ...]) -> None:
    """metrics:completed / metrics:failed as collectMetrics leaves them: the newest pushed point is
    the minute before prevTS's, which is two minutes before the server's current minute."""
    secs, _ = client.time()
    if secs % 60 > 45:  # the minute must not turn between writing and the first frame
        time.sleep(61 - secs % 60)
        secs, _ = client.time()
    prev_ts = (secs // 60 - 2) * 60_000 + 1_000
    for name in names:
        write_points(client, f"{prefix}:{name}", prev_ts)


def write_points(client: redis.Redis, base: str, prev_ts: int) -> None:
    for kind, data, in_p in (("completed", DONE, 40), ("failed", FAIL, 4)):
        key = f"{base}:metrics:{kind}"
        total = sum(data) + in_p
        client.delete(key, f"{key}:data")
        client.hset(key, mapping={"count": total, "prevTS": prev_ts, "prevCount": total - in_p})
        client.rpush(f"{key}:data", *data)


@pytest.fixture(scope="module")
def charts_redis():
    server = SocketRedis()
    client = redis.Redis(unix_socket_path=server.path)
    # two queues: the cursor row takes the cursor's colours, the other shows the theme's
    write_fixed_queue(client, "snap", "charts", failed=3, completed=5, waiting=2, delayed=0)
    write_fixed_queue(client, "snap", "reports", failed=1, completed=9, waiting=0, delayed=0)
    client.close()
    yield server
    server.stop()


@pytest.fixture
def charts_url(charts_redis):
    """The metrics written again for each test, relative to the clock then (a module's tests take
    longer than the 15 s margin before a minute turns)."""
    client = redis.Redis(unix_socket_path=charts_redis.path)
    try:
        write_metrics(client, "snap", ("charts", "reports"))
    finally:
        client.close()
    return charts_redis.url


def _sparks_drawn(app) -> bool:
    table = app.screen.query_one(DataTable)
    return table.row_count == 2 and all(any("█" in str(c) for c in table.get_row_at(i)) for i in (0, 1))


@pytest.mark.parametrize("theme", ["queue-console", "queue-console-light"], ids=["dark", "light"])
@pytest.mark.parametrize("view", ["overview", "chart"])
def test_sparklines_and_chart_in_two_themes(snap_compare, charts_url, theme, view):
    app = QueueConsoleApp(Settings(urls=[charts_url], prefixes=["snap"], refresh=3600, theme=theme, utc=True))

    async def run_before(pilot):
        await _wait(pilot, lambda: _sparks_drawn(app))
        if view == "chart":
            await pilot.press("enter")
            await _wait(pilot, lambda: isinstance(app.screen, QueueScreen)
                        and "library metrics" in app.screen.query_one("#chart").title_text)
            screen = app.screen
            # the rest of the view complete too: its two waiting jobs, the first one's detail (read
            # once the cursor rests), and the worker gauge in the title
            await _wait(pilot, lambda: screen.query_one("#job-table", DataTable).row_count == 2
                        and str(screen.query_one("#job-detail").content.renderables[0]).startswith("job ")
                        and "no worker connected" in str(screen.query_one("#queue-title").content))
        await _wait(pilot, lambda: any(k.action == "help" for k in app.screen.query("FooterKey")))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_every_theme_colours_the_sparklines_its_own_way(tmp_path):
    """The four shipped themes and a user theme: the sparkline styles are the theme's success and
    error (the 16-colour theme's as terminal palette numbers), and so are the chart's colours."""
    from textual.color import Color

    from themes import THEMES, user_themes

    (tmp_path / "mine.toml").write_text('primary = "#123456"\nsuccess = "#00AA11"\nerror = "#BB0022"\ndark = true\n')
    mine, errors = user_themes(tmp_path)
    assert not errors
    seen = set()
    for theme in (*THEMES, *mine):
        ok, bad = rich_styles(theme)
        pok, pbad = plotext_colors(theme)
        c_ok, c_bad = Color.parse(theme.success), Color.parse(theme.error)
        if c_ok.ansi is not None and c_ok.ansi >= 0:
            assert (ok, bad) == (f"color({c_ok.ansi})", f"color({c_bad.ansi})") and (pok, pbad) == (c_ok.ansi, c_bad.ansi)
        else:
            assert (ok, bad) == (c_ok.hex, c_bad.hex) and (pok, pbad) == (c_ok.rgb, c_bad.rgb)
        seen.add((ok, bad))
    assert ("#00AA11", "#BB0022") in seen
    assert len(seen) == len(THEMES) + 1  # no two themes draw them alike
