"""The confirmation screen of every mutation: what, how many, a sample, warnings. y or n."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from console import formatting as fmt
from console.actions import Preview, totals
from console.safe_text import inert, one_line


def preview_text(preview: Preview, utc: bool = False) -> Text:
    """The body of a retry/purge confirmation; times in local time with their offset (``utc``: UTC)."""
    t = Text()
    t.append(one_line(preview.describe(), 200) + "\n\n", style="bold")
    if preview.plan is not None:
        t.append("policy plan:\n", style="bold")
        for line in preview.plan.render(limit=12):
            t.append(f"  {one_line(line, 140)}\n")
    for job in preview.sample if preview.plan is None else []:
        reason = one_line(job.failed_reason.text if job.failed_reason else "", 70)
        t.append(f"  {one_line(job.id, 24):<24} {fmt.clock(job.finished_ms, utc)}  {reason}\n")
    for warning in preview.warnings:
        # the stores' notes name the CLI flag; here the confirmation's own toggle does it
        warning = warning.replace("use --reset-attempts", "t here resets them")
        t.append(f"\nnote: {one_line(warning, 300)}", style="yellow")
    if preview.action == "retry" and preview.reset_attempts:
        t.append("\nattempts reset: each job gets its full retry budget again (t: keep the counts)", style="bold")
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


#: what ConfirmScreen returns when its toggle key is pressed (the caller previews again)
TOGGLE = "toggle"


class ConfirmScreen(ModalScreen[bool | str]):
    """y / n; with ``toggle`` (e.g. ``"reset attempts"``), ``t`` returns ``TOGGLE`` so that the
    caller previews again with the option flipped (``toggle_on`` is its current state)."""

    BINDINGS = [("y", "answer(True)", "Yes, do it"), ("n", "answer(False)", "No"),
                ("escape", "answer(False)", "Cancel"), ("t", "toggle", "Toggle")]

    def __init__(self, title: str, body: Text, toggle: str | None = None, toggle_on: bool = False) -> None:
        super().__init__()
        self.title_text = one_line(title, 200)
        self.body = inert(body)  # whatever a caller built, nothing raw reaches the terminal
        self.toggle = toggle
        self.toggle_on = toggle_on

    def compose(self) -> ComposeResult:
        # the title and the answer line stay on screen; a long plan scrolls between them
        with Vertical(id="confirm-box"):
            yield Static(Text(self.title_text, style="bold reverse"))
            with VerticalScroll(id="confirm-body"):
                yield Static(self.body)
            keys = "y: go ahead    n / esc: cancel"
            if self.toggle:
                keys += f"    t: {self.toggle} [{'on' if self.toggle_on else 'off'}]"
            yield Static(Text(keys + "    ↑↓: scroll", style="bold"), id="confirm-keys")

    def on_mount(self) -> None:
        self.query_one("#confirm-body").focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    def action_toggle(self) -> None:
        if self.toggle:
            self.dismiss(TOGGLE)
