"""Completed and failed jobs per second over the last minutes, drawn with plotext."""
from __future__ import annotations

from textual_plotext import PlotextPlot

from backends.contract import Throughput


class ThroughputChart(PlotextPlot):
    def on_mount(self) -> None:
        self.plt.title("jobs/s (completed, failed)")
        self.show([])

    def show(self, history: list[Throughput]) -> None:
        plt = self.plt
        plt.clear_data()
        if history:
            t0 = history[-1].at_ms
            xs = [(h.at_ms - t0) / 1000.0 for h in history]
            plt.plot(xs, [h.completed_per_s for h in history], label="completed", color="green", marker="braille")
            plt.plot(xs, [h.failed_per_s for h in history], label="failed", color="red", marker="braille")
            capped = any(h.capped for h in history)
            source = history[-1].source
            label = {"events": "events stream", "metrics": "library metrics", "finished": "finish times"}.get(source, source)
            plt.title(f"jobs/s over the last {abs(xs[0]):.0f} s (source: {label}{', some samples capped' if capped else ''})")
        else:
            plt.title("jobs/s: waiting for the first samples…")
        plt.xlabel("seconds ago")
        self.refresh()
