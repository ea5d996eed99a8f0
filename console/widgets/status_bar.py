"""The connection bar (which servers, how fresh) and the banner that says when one is down."""
from __future__ import annotations

import time

from rich.color import Color, ColorParseError
from rich.text import Text
from textual.widgets import Static

from console.poller import Snapshot
from console.safe_text import one_line


def _ago(t: float | None) -> str:
    if t is None:
        return "never"
    s = max(time.time() - t, 0)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f} min ago"


def context_badge(settings) -> Text:
    """`` prod `` in the context's colour (white on red for a production-like name without one);
    `` READ-ONLY `` when the session is read-only. Empty when neither applies."""
    text = Text()
    name = getattr(settings, "context", None)
    if name:
        ctx = settings.contexts.get(name)
        colour = getattr(ctx, "color", None) if ctx is not None else None
        style = "bold white on red" if "prod" in name.lower() else "bold black on cyan"
        if colour:
            try:
                parsed = Color.parse(colour)
                ink = "black" if sum(parsed.get_truecolor()) > 382 else "white"
                style = f"bold {ink} on {parsed.name}"
            except ColorParseError:
                pass  # config check reports it; the default badge stays
        text.append(f" {one_line(name, 24)} ", style=style)
        text.append(" ")
    if getattr(settings, "read_only", False):
        text.append(" READ-ONLY ", style="bold black on yellow")
        text.append(" ")
    return text


class ConnectionBar(Static):
    """One badge per connection: the redacted URL, queue count, refresh time; FROZEN when frozen.

    A connection whose refresh is late (nothing new for two refresh intervals: a paused or stopped
    server, a slow network) turns yellow with the age of what is shown, seconds before the call's
    timeout fires; the bar repaints itself every second for that, without waiting for the poller.
    The context and READ-ONLY badges and the breadcrumbs come first."""

    _shown: tuple[list[Snapshot], bool] = ([], False)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._paint)

    def show(self, snapshots: list[Snapshot], frozen: bool) -> None:
        self._shown = (snapshots, frozen)
        self._paint()

    def _paint(self) -> None:
        snapshots, frozen = self._shown
        text = context_badge(self.app.settings) if hasattr(self.app, "settings") else Text()
        crumbs = self.app.breadcrumbs() if hasattr(self.app, "breadcrumbs") else []
        if crumbs:
            text.append(" › ".join(one_line(c, 40) for c in crumbs), style="bold")
            text.append("  │  ", style="dim")
        now = time.time()
        for i, snap in enumerate(snapshots):
            if i:
                text.append("  │  ", style="dim")
            stale = None if frozen or not snap.connected else snap.stale_for(now)
            dot_style = "bold red" if not snap.connected else ("bold yellow" if stale is not None else "bold green")
            text.append("● ", style=dot_style)
            text.append(one_line(snap.connection, 60), style="bold")
            text.append(f"  {len(snap.statuses)} queues", style="dim")
            bad = sum(1 for s in snap.statuses if s.malformed)
            if bad:
                text.append(f" ({bad} malformed)", style="red")
            if stale is not None:
                text.append(f"  STALE: data from {_ago(snap.last_ok)}, refresh late", style="bold yellow")
            if snap.standby and snap.standby.get("standby"):
                lag = snap.standby.get("replica_lag_s")
                text.append("  standby", style="bold yellow")
                text.append(f", lag {'?' if lag is None else f'{lag:.1f} s'}", style="yellow")
        if not snapshots:
            text.append("connecting…", style="dim")
        if frozen:
            text.append("   FROZEN (z)", style="bold reverse yellow")
        self.update(text)


class ErrorBanner(Static):
    """Shown while any connection is failing; gone when it recovers."""

    def show(self, snapshots: list[Snapshot], note: str | None = None) -> None:
        lines = []
        if note:
            lines.append(Text(one_line(note, 200), style="bold"))
        for snap in snapshots:
            if snap.error:
                stale = f"; showing data from {_ago(snap.last_ok)}" if snap.last_ok else ""
                lines.append(Text(f"⚠ {one_line(snap.connection, 60)}: {one_line(snap.error, 160)} — retrying{stale}",
                                  style="bold"))
        if lines:
            self.update(Text("\n").join(lines))
            self.add_class("-shown")
        else:
            self.update("")
            self.remove_class("-shown")
