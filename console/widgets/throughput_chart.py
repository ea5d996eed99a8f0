"""Completed and failed jobs per second: the hour before the console started where the store keeps
it (console.poller.RateHistory.prefill), then the live samples; drawn with plotext in the theme's
success and error colours. Where the store keeps no throughput (Gello), the waiting and failed
counts as the console sampled them, said so in the title."""
from __future__ import annotations

from textual_plotext import PlotextPlot

from backends.contract import Latency
from console import formatting as fmt
from console.poller import RateHistory
from console.widgets.signal_colors import plotext_colors

SOURCE_LABELS = {"events": "events stream", "metrics": "library metrics", "finished": "finish times"}


def chart_title(history: RateHistory | None, span_s: float) -> str:
    """What the chart says above its lines (or instead of them)."""
    if history is None or not len(history):
        if history is not None and history.unavailable:
            return f"jobs/s: {history.unavailable}; live samples follow…"
        return "jobs/s: waiting for the first samples…"
    if history.source == "counts":
        return (f"waiting and failed jobs over the last {_span(span_s)}, sampled by the console "
                "(this store keeps no throughput data)")
    parts = []
    if history.history_source:
        parts.append(f"history: {SOURCE_LABELS.get(history.history_source, history.history_source)}")
    elif history.unavailable:
        parts.append(history.unavailable)
    if history.history_note:
        parts.append(history.history_note)
    if history.live_count():
        parts.append(f"live: {SOURCE_LABELS.get(history.source, history.source)}")
    if history.any_capped():
        parts.append("some samples capped")
    return f"jobs/s over the last {_span(span_s)} ({'; '.join(parts)})"


def latency_line(latency: Latency | None) -> str:
    """Wait and run percentiles with the sample they come from (empty when not read yet)."""
    if latency is None:
        return ""
    if not latency.sample_size:
        return "latency: no completed job to measure"
    return (f"wait p50 {fmt.duration_ms(latency.wait_p50_ms)} p95 {fmt.duration_ms(latency.wait_p95_ms)}, "
            f"run p50 {fmt.duration_ms(latency.run_p50_ms)} p95 {fmt.duration_ms(latency.run_p95_ms)} "
            f"(sample of {latency.sample_size})")


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


class ThroughputChart(PlotextPlot):
    """The plot is built again only when its data, size or theme changed: plotext draws the whole
    chart in Python on every ``render()``, and a key that moved the layout (a new page of jobs,
    the detail pane filling) had Textual ask for it again, redrawing the same picture (11% of the
    UI thread while paging through 1,000,000 failed jobs)."""

    _history: RateHistory | None = None
    _latency: Latency | None = None
    title_text = ""  # what the title says now
    _plotted: tuple | None = None  # what the plot now shows
    _built: tuple | None = None  # (size, themes, plotted) of the last build
    _picture = None

    def on_mount(self) -> None:  # (PlotextPlot's own on_mount runs too: Textual calls each class's)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.show(self._history, self._latency))
        self.show(None)

    def show(self, history: RateHistory | None, latency: Latency | None = None) -> None:
        self._history, self._latency = history, latency
        times, done, fail = history.series() if history is not None else ([], [], [])
        lat = latency_line(latency)
        plotted = (times[-1] if times else None, len(times), tuple(done), tuple(fail), lat, self.app.theme,
                   chart_title(history, abs((times[0] - times[-1]) / 1000.0) if times else 0.0))
        if plotted == self._plotted:
            return  # the same picture: no new plot, no redraw
        self._plotted = plotted
        plt = self.plt
        plt.clear_data()
        span_s = 0.0
        if times:
            t0 = times[-1]
            xs = [(t - t0) / 1000.0 for t in times]
            span_s = abs(xs[0])
            in_minutes = span_s >= 120
            if in_minutes:
                xs = [x / 60.0 for x in xs]
            ok, bad = plotext_colors(self.app.current_theme)
            counts = history is not None and history.source == "counts"
            plt.plot(xs, done, label="waiting" if counts else "completed", color=ok, marker="braille")
            plt.plot(xs, fail, label="failed", color=bad, marker="braille")
            xlabel = "minutes ago" if in_minutes else "seconds ago"
        else:
            xlabel = "seconds ago"
        plt.xlabel(f"{xlabel} · {lat}" if lat else xlabel)
        self.title_text = plotted[-1]
        plt.title(self.title_text)
        self.refresh()

    def render(self):
        key = (self.size, self.app.theme, self.theme, self._plotted)
        if key != self._built or self._picture is None:
            self._picture, self._built = super().render(), key
        return self._picture
