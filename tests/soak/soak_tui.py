"""A soak of the TUI against a real BullMQ workload: RSS of the console process over time.

    python -m tests.soak.soak_tui [--minutes 60] [--rate 1000] [--queues 20] [--port 6501]

Starts a private redis-server on ``--port``, the BullMQ-for-Node workload (tests/soak/workload.js,
needs ``npm ci`` in tests/interop), and ``queue-console`` itself in a tmux session (160x45), then
samples the console's RSS (/proc/PID/status VmRSS) every 30 s, and the jobs the workload added.
Writes a CSV and a summary to ``--out`` (default docs/soak/). Not a test: run it by hand; the
shortened soak that CI runs bounds object counts instead (see docs/performance.md).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def console_pid(session: str) -> int | None:
    out = subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_pid}"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    shell = int(out.stdout.split()[0])
    # the pane runs the console directly (no shell), or a shell whose child is the console
    children = subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout.split()
    return int(children[0]) if children else shell


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--queues", type=int, default=20)
    ap.add_argument("--port", type=int, default=6501)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--out", default=str(ROOT / "docs" / "soak"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="qc-soak-")
    url = f"redis://127.0.0.1:{a.port}/0"
    redis = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(a.port),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    seconds = int(a.minutes * 60) + 60
    work = subprocess.Popen(["node", str(ROOT / "tests" / "soak" / "workload.js"), url, str(a.rate), str(a.queues),
                             str(seconds)], stdout=subprocess.PIPE, text=True)
    time.sleep(5)
    session = f"qcsoak{a.port}"
    exe = str(Path(sys.executable).with_name("queue-console"))
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "45",
                    exe, "--url", url, "--refresh", "2"], check=True)
    rows = []
    started = time.monotonic()
    try:
        time.sleep(3)
        pid = console_pid(session)
        while time.monotonic() - started < a.minutes * 60:
            kib = rss_kib(pid) if pid else None
            added = None
            rows.append({"minute": round((time.monotonic() - started) / 60, 2), "rss_mib": round(kib / 1024, 1) if kib else "",
                         "load1": os.getloadavg()[0]})
            with open(out / "tui-rss.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            time.sleep(a.every)
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        (out / "tui-last-screen.txt").write_text(screen)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        work.terminate()
        lines = (work.communicate(timeout=30)[0] or "").strip().splitlines()
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    added = json.loads(lines[-1])["added"] if lines else None
    rss = [r["rss_mib"] for r in rows if r["rss_mib"] != ""]
    summary = {"minutes": a.minutes, "rate": a.rate, "queues": a.queues, "jobs_added": added,
               "rss_first_mib": rss[0] if rss else None, "rss_at_10min_mib": next((r["rss_mib"] for r in rows if r["minute"] >= 10 and r["rss_mib"] != ""), None),
               "rss_last_mib": rss[-1] if rss else None, "rss_max_mib": max(rss) if rss else None, "samples": len(rows)}
    (out / "tui-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
