"""The confirmation screen of every mutation: what, how many, a sample, warnings. y or n."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from console import formatting as fmt
from console.actions import Preview, totals
from console.safe_text import inert, one_line


def preview_text(preview: Preview) -> Text:
    t = Text()
    t.append(one_line(preview.describe(), 200) + "\n\n", style="bold")
    if preview.plan is not None:
        t.append("policy plan:\n", style="bold")
        for line in preview.plan.render(limit=12):
            t.append(f"  {one_line(line, 140)}\n")
    for job in preview.sample if preview.plan is None else []:
        reason = one_line(job.failed_reason.text if job.failed_reason else "", 70)
        t.append(f"  {one_line(job.id, 24):<24} {fmt.timestamp(job.finished_ms)}  {reason}\n")
    for warning in preview.warnings:
        t.append(f"\nnote: {one_line(warning, 300)}", style="yellow")
    return t


def confirm_title(action: str, previews: list[Preview]) -> str:
    """`` retry 23 jobs (13 more refused by the policy) in 2 queues? ``: the jobs that would change,
    never the refused ones counted among them."""
    t = totals(previews)
    now, later, refused = t["now"], t["later"], t["refused"]
    text = f" {action} {now + later} jobs"
    if later:
        text += f" ({later} of them later)"
    if refused:
        text += f", {refused} refused by the policy"
    if len(previews) > 1:
        text += f", in {len(previews)} queues"
    return text + "? "


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [("y", "answer(True)", "Yes, do it"), ("n", "answer(False)", "No"),
                ("escape", "answer(False)", "Cancel")]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__()
        self.title_text = one_line(title, 200)
        self.body = inert(body)  # whatever a caller built, nothing raw reaches the terminal

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(Text(self.title_text, style="bold reverse"))
            yield Static(self.body)
            yield Static(Text("\ny: go ahead    n / esc: cancel", style="bold"))

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
