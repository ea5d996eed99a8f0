"""Completed and failed jobs per second over the last minutes, drawn with plotext."""
from __future__ import annotations

from textual_plotext import PlotextPlot

from console.poller import RateHistory


class ThroughputChart(PlotextPlot):
    """The plot is built again only when its data, size or theme changed: plotext draws the whole
    chart in Python on every ``render()``, and a key that moved the layout (a new page of jobs,
    the detail pane filling) had Textual ask for it again, redrawing the same picture (11% of the
    UI thread while paging through 1,000,000 failed jobs)."""

    _plotted: tuple | None = None  # what the plot now shows
    _built: tuple | None = None  # (size, themes, plotted) of the last build
    _picture = None

    def on_mount(self) -> None:
        self.plt.title("jobs/s (completed, failed)")
        self.show(None)

    def show(self, history: RateHistory | None) -> None:
        times, done, fail = history.series() if history is not None else ([], [], [])
        capped = history.any_capped() if history is not None else False
        source = history.source if history is not None else None
        plotted = (times[-1] if times else None, len(times), tuple(done), tuple(fail), capped, source)
        if plotted == self._plotted:
            return  # the same picture: no new plot, no redraw
        self._plotted = plotted
        plt = self.plt
        plt.clear_data()
        if history is not None and times:
            t0 = times[-1]
            xs = [(t - t0) / 1000.0 for t in times]
            plt.plot(xs, done, label="completed", color="green", marker="braille")
            plt.plot(xs, fail, label="failed", color="red", marker="braille")
            label = {"events": "events stream", "metrics": "library metrics", "finished": "finish times"}.get(source, source)
            plt.title(f"jobs/s over the last {abs(xs[0]):.0f} s (source: {label}{', some samples capped' if capped else ''})")
        else:
            plt.title("jobs/s: waiting for the first samples…")
        plt.xlabel("seconds ago")
        self.refresh()

    def render(self):
        key = (self.size, self.app.theme, self.theme, self._plotted)
        if key != self._built or self._picture is None:
            self._picture, self._built = super().render(), key
        return self._picture
