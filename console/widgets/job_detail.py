"""The job detail pane: timestamps, attempts, the latest error first, payload, traces, logs.

All queue data is rendered as plain ``Text`` after ``clean`` (no markup, no escape codes) and cut
to a display limit with the true size shown.
"""
from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from backends.contract import Blob, JobDetail
from console import formatting as fmt
from console.safe_text import blob_text, clean, one_line

#: characters of one value rendered in the pane (the reader already cut it at 256 KiB)
PANE_LIMIT = 32 * 1024


def _block(blob: Blob | None, pretty: bool = True) -> Text:
    text = blob_text(blob, pretty=pretty)
    if len(text) > PANE_LIMIT:
        size = fmt.count(blob.size) if blob else "?"
        text = text[:PANE_LIMIT] + f"\n[display cut at {PANE_LIMIT // 1024} KiB of {size} bytes; use `queue-console job --json` for the rest]"
    return Text(text)


def attempts_text(made: int | None, allowed: int | None, started: int | None) -> str:
    """One form for every store: ``2 of 3 used``; past the limit (a job retried by hand)
    ``5 used, limit 3 (retried by hand)``; ``started`` only where it differs (a run in progress
    or one that stalled before it counted)."""
    if made is None:
        return "-" if allowed is None else f"limit {allowed}"
    if allowed is None:
        text = f"{made} used"
    elif made <= allowed:
        text = f"{made} of {allowed} used"
    else:
        text = f"{made} used, limit {allowed} (retried by hand)"
    if started is not None and started != made:
        text += f"; {started} started"
    return text


class JobDetailView(Static):
    def show_empty(self, message: str) -> None:
        self.update(Text(message, style="dim"))

    def show_loading(self, job_id: str) -> None:
        self.update(Text(f"loading job {one_line(job_id, 60)}…", style="dim"))

    def show_error(self, job_id: str, error: str) -> None:
        self.update(Text(f"⚠ job {one_line(job_id, 60)}: {one_line(error, 200)}", style="bold red"))

    def show(self, job_id: str, detail: JobDetail | None) -> None:
        if detail is None:
            self.update(Text(f"job {one_line(job_id, 60)} no longer exists (removed or cleaned)", style="yellow"))
            return
        s = detail.summary
        utc = bool(getattr(getattr(self.app, "settings", None), "utc", False))  # local time unless utc
        head = Text()
        head.append(f"job {one_line(s.id, 60)}", style="bold")
        head.append(f"  {one_line(s.name or '-', 40)}\n")
        if s.malformed:
            head.append("MALFORMED ", style="bold reverse red")
            head.append(one_line(s.malformed, 200) + "\n", style="red")
        rows = [
            ("state", f"{s.state} ({s.native_state})"),
            ("attempts", attempts_text(s.attempts_made, detail.max_attempts, detail.attempts_started)),
            ("created", fmt.clock(s.created_ms, utc)),
            ("processed", fmt.clock(s.processed_ms, utc)),
            ("finished", fmt.clock(s.finished_ms, utc)),
        ]
        if s.priority:
            rows.append(("priority", str(s.priority)))
        if s.delay_ms:
            rows.append(("delay", fmt.duration_ms(s.delay_ms)))
        if detail.progress:
            rows.append(("progress", one_line(detail.progress, 80)))
        for key, value in detail.extra.items():
            rows.append((key, one_line(value, 80)))
        for key, value in rows:
            head.append(f"{one_line(key, 30):>10} ", style="dim")
            head.append(clean(value) + "\n")
        parts: list = [head]

        def heading(title: str) -> Text:
            return Text(f"\n{title}", style="bold")

        if s.failed_reason:
            parts += [heading("error (latest)"), Text(clean(s.failed_reason.text), style="red")]
        if detail.stacktrace:
            parts.append(heading(f"stack traces, newest first ({len(detail.stacktrace)})"))
            for i, trace in enumerate(detail.stacktrace):
                parts += [Text(f"#{i + 1}", style="dim"), _block(trace, pretty=False)]
        parts += [heading(f"data ({fmt.count(detail.data.size) if detail.data else 0} bytes)"), _block(detail.data)]
        if detail.return_value is not None:
            parts += [heading("return value"), _block(detail.return_value)]
        if detail.logs is not None and detail.logs.total:
            parts.append(heading(f"logs (last {len(detail.logs.lines)} of {detail.logs.total})"))
            parts.append(Text("\n".join(one_line(line, 400) for line in detail.logs.lines)))
        if detail.options is not None:
            parts += [heading("options"), _block(detail.options)]
        self.update(Group(*parts))
