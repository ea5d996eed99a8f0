"""Completed and failed jobs per second over the last minutes, drawn with plotext."""
from __future__ import annotations

from textual_plotext import PlotextPlot

from console.poller import RateHistory


class ThroughputChart(PlotextPlot):
    def on_mount(self) -> None:
        self.plt.title("jobs/s (completed, failed)")
        self.show(None)

    def show(self, history: RateHistory | None) -> None:
        plt = self.plt
        plt.clear_data()
        times, done, fail = history.series() if history is not None else ([], [], [])
        if history is not None and times:
            t0 = times[-1]
            xs = [(t - t0) / 1000.0 for t in times]
            plt.plot(xs, done, label="completed", color="green", marker="braille")
            plt.plot(xs, fail, label="failed", color="red", marker="braille")
            capped = history.any_capped()
            source = history.source
            label = {"events": "events stream", "metrics": "library metrics", "finished": "finish times"}.get(source, source)
            plt.title(f"jobs/s over the last {abs(xs[0]):.0f} s (source: {label}{', some samples capped' if capped else ''})")
        else:
            plt.title("jobs/s: waiting for the first samples…")
        plt.xlabel("seconds ago")
        self.refresh()
