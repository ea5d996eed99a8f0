"""End to end: the real program in a real terminal (tmux) against the embedded demo, driven by keys
only, read back from the screen (capture-pane): find the failures, read why, retry them, pause
everything, resume. With CI set a missing tmux fails (``.ci/run`` installs it); without, it skips.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.timeout(300)


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing (CI is set: .ci/run installs it)")
        pytest.skip("tmux is missing")
    return path


class Pane:
    """One tmux session on a tmux server of its own (``-L``): never anyone else's sessions."""

    def __init__(self, tmux: str, session: str) -> None:
        self.tmux, self.session = tmux, session

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.tmux, "-L", self.session, *args], capture_output=True, text=True, check=False)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session).stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", self.session, key)
            time.sleep(0.15)  # pacing, as a person types; no assertion depends on it

    def wait_for(self, cond, timeout: float = 60.0, what: str = "") -> str:
        """The screen once ``cond`` (a text on it, or a predicate of it) holds."""
        check = (lambda s: cond in s) if isinstance(cond, str) else cond
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if check(shown):
                return shown
            time.sleep(0.3)
        raise AssertionError(f"{what or cond!r} never appeared; the screen:\n{shown}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session).returncode == 0


@pytest.fixture
def pane(tmp_path):
    tmux = _tmux()
    p = Pane(tmux, f"qc-e2e-{uuid.uuid4().hex[:8]}")
    (tmp_path / "config.toml").write_text("")
    env = {**os.environ, "QUEUE_CONSOLE_CONFIG": str(tmp_path / "config.toml"), "XDG_CONFIG_HOME": str(tmp_path),
           "TERM": "xterm-256color"}
    result = subprocess.run([tmux, "-L", p.session, "new-session", "-d", "-s", p.session, "-x", "120", "-y", "36",
                             f"{sys.executable} -m console demo --refresh 1"],
                            env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    yield p
    if p.alive():  # a failed run: quit the program so that the demo stops its embedded Redis
        p.run("send-keys", "-t", p.session, "Escape", "Escape", "Escape", "q")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and p.alive():
            time.sleep(0.2)
    p.run("kill-server")


def test_the_incident_from_the_keyboard(pane):
    shown = pane.wait_for("emails", timeout=120)
    assert "? Help" in shown  # the overview, with ? on screen
    pane.wait_for("PAUSED")  # the demo's payments queue starts paused

    # find the failures and read why
    pane.keys("f")
    shown = pane.wait_for("failed jobs in", timeout=90)
    assert "queues › failures" in shown
    pane.keys("Enter")  # into the first group's jobs: the detail pane shows the error
    pane.wait_for("error (latest)", timeout=30)

    # retry them: mark every job of the (empty) filter, R, read the preview, y
    pane.keys("a", "R")
    shown = pane.wait_for("y: go ahead", timeout=60)
    assert "retry" in shown and "t: reset attempts [off]" in shown
    pane.keys("y")
    # the report ("<queue>: retry: N of N; 1 batch"), once the progress screen ("retry: 0 of N" over
    # "x: cancel (after the current batch) ...") is gone: an esc sent while it is up only hides it
    pane.wait_for(lambda s: "x: cancel" not in s and "retry: " in s and "batch" in s, timeout=90,
                  what="the retry's report, the progress screen closed")

    # pause everything, read the plan, resume
    pane.keys("Escape", "Escape")  # one level each: the group's jobs, then the failures view
    pane.wait_for("Pause all", timeout=30)
    pane.keys("P")
    shown = pane.wait_for("y: go ahead", timeout=60)
    assert "will pause" in shown and "already paused, stays paused" in shown and "cannot be paused" in shown
    pane.keys("y")
    # + emails, thumbnails, reports, webhooks (every BullMQ queue is on the first frame: issue 12 item 16)
    pane.wait_for(lambda s: s.count("PAUSED") >= 5, what="5 paused queues")
    pane.keys("U")
    shown = pane.wait_for("y: go ahead", timeout=60)
    assert "will resume (4)" in shown and "paused, but not by pause all" in shown  # payments stays paused
    pane.keys("y")
    pane.wait_for(lambda s: s.count("PAUSED") == 1, what="only payments paused")

    pane.keys(":", *"quit", "Enter")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pane.alive():
        time.sleep(0.3)
    assert not pane.alive()  # the program ended, and its session with it
