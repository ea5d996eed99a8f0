"""Pause or resume every queue from the overview (``P`` / ``U``, ``:pause all`` / ``:resume all``).

The same plan as the CLI's ``pause --all`` / ``resume --all`` (console/cli_actions.py): pause takes
every queue whose system can pause it and that is not paused yet, and records it in the console
store; resume takes exactly the recorded queues, so a queue someone paused by hand stays paused.
The confirmation lists what will change, what stays as it is, and what cannot be paused and why.
The plan is read and run on the backend thread through the action layer (``Actions.set_paused``).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

from backends.contract import QueueRef, Reader, call_with_timeout
from backends.errors import BackendError
from console import formatting as fmt
from console.actions import Actions, Refused, store_key
from console.cli_actions import _no_pause, _vanished
from console.safe_text import one_line


@dataclass
class PausePlan:
    verb: str  # "pause" | "resume"
    targets: list[QueueRef] = field(default_factory=list)
    #: pause: already paused (stays paused, and is not resumed by resume all);
    #: resume: paused, but not by pause all (stays paused)
    unchanged: list[QueueRef] = field(default_factory=list)
    cannot: list[tuple[QueueRef, str]] = field(default_factory=list)
    notes: dict[tuple, list[str]] = field(default_factory=dict)
    #: resume: records of queues that pause all paused and that no longer exist (forgotten on yes)
    forget: list[tuple[Reader, list[str]]] = field(default_factory=list)
    #: pause all / resume all record the queues in the console store; one named queue does not
    remember: bool = True


async def plan(app: Any, verb: str, statuses: dict[tuple, Any], only: set[tuple] | None = None) -> PausePlan:
    """Runs on the backend thread: the pollers' readers and discoveries; ``statuses`` (queue key ->
    QueueStatus) are the ones on screen, taken on the UI thread. ``only`` (queue keys: ``:pause
    NAME``) limits the plan to those queues, with the same lists; resume then takes them when paused,
    whoever paused them, and nothing is remembered."""
    paused = verb == "pause"
    acts: Actions = app.actions()
    timeout = app.settings.op_timeout
    out = PausePlan(verb, remember=only is None)
    for poller in app.pollers:
        for reader, disc in zip(list(poller.readers), list(poller.snapshot.discoveries)):
            queues = [q for q in disc.queues if only is None or q.key in only]
            if only is not None and not paused:
                for q in queues:
                    is_paused = statuses.get(q.key) is not None and statuses[q.key].paused
                    caps = reader.queue_capabilities(q)
                    if not caps.pause:
                        out.cannot.append((q, caps.read_only_reason or _no_pause(q.backend)))
                    else:
                        (out.targets if is_paused else out.unchanged).append(q)
                continue
            if paused:
                for q in queues:
                    caps = reader.queue_capabilities(q)
                    if not caps.pause:
                        out.cannot.append((q, caps.read_only_reason or _no_pause(q.backend)))
                    elif statuses.get(q.key) is not None and statuses[q.key].paused:
                        out.unchanged.append(q)
                    else:
                        out.targets.append(q)
                continue
            store = reader.console_store()
            remembered = {} if store is None else await call_with_timeout(
                store.paused_list(), timeout, f"reading the paused-queue records at {poller.url}")
            found = [q for q in disc.queues if store_key(q) in remembered]
            out.targets += found
            out.unchanged += [q for q in disc.queues if q not in found
                              and statuses.get(q.key) is not None and statuses[q.key].paused]
            keys = _vanished(remembered, found, disc, reader.backend, app.settings.prefixes)
            if keys:
                out.forget.append((reader, keys))
    allowed = []
    for q in out.targets:
        try:
            acts.check_allowed(verb, q)
            allowed.append(q)
        except Refused as exc:
            out.cannot.append((q, str(exc)))
    out.targets = allowed
    for q in out.targets:
        poller = app.poller_for(q)
        reader = poller.reader_for(q) if poller else None
        if reader is None:
            continue
        try:
            out.notes[q.key] = await call_with_timeout(reader.pause_notes(q, paused), timeout,
                                                       f"checking how to {verb} {q.qualified}")
        except BackendError as exc:
            out.notes[q.key] = [f"could not check how to {verb}: {exc}"]
    return out


def title(p: PausePlan) -> str:
    return f" {p.verb} {fmt.plural(len(p.targets), 'queue')}? " if p.targets else f" nothing to {p.verb} "


def body(p: PausePlan) -> Text:
    t = Text()

    def queue_line(q: QueueRef) -> None:
        t.append(f"  {one_line(q.qualified, 50)}", style="bold")
        t.append(f"  {q.backend} at {one_line(q.connection, 60)}\n", style="dim")
        for note in p.notes.get(q.key, []):
            t.append(f"    note: {one_line(note, 200)}\n", style="yellow")

    if p.targets:
        t.append(f"will {p.verb} ({len(p.targets)}):\n", style="bold")
        for q in p.targets:
            queue_line(q)
        t.append("Workers finish their active jobs and take no new ones until resumed.\n" if p.verb == "pause"
                 else "Workers start taking jobs again.\n", style="dim")
    else:
        t.append(f"nothing to {p.verb}\n", style="bold")
    if p.unchanged:
        if p.verb == "pause":
            what = "already paused, stays paused" + (" (resume all leaves it paused)" if p.remember else "")
        else:
            what = ("paused, but not by pause all: stays paused (:resume NAME resumes it)" if p.remember
                    else "not paused, nothing to resume")
        t.append(f"\n{what} ({len(p.unchanged)}):\n", style="bold")
        for q in p.unchanged:
            queue_line(q)
    if p.cannot:
        t.append(f"\ncannot be {p.verb}d ({len(p.cannot)}):\n", style="bold")
        for q, reason in p.cannot:
            t.append(f"  {one_line(q.qualified, 50)}", style="bold")
            t.append(f"  {q.backend}: {one_line(reason, 200)}\n", style="dim")
    for _reader, keys in p.forget:
        t.append(f"\nforgets {fmt.plural(len(keys), 'record')} of queues no longer found: "
                 f"{', '.join(one_line(k.replace(chr(31), ':'), 60) for k in keys[:5])}\n", style="dim")
    return t


async def execute(app: Any, p: PausePlan) -> list[dict[str, Any]]:
    """Runs on the backend thread, after the confirmation."""
    acts: Actions = app.actions()
    results = await acts.set_paused(p.targets, p.verb == "pause", remember=p.remember) if p.targets else []
    for reader, keys in p.forget:
        await acts.forget_paused(reader, keys)
    return results


def summary(p: PausePlan, results: list[dict[str, Any]]) -> tuple[str, str]:
    """The notice after the run and its severity."""
    ok = [r for r in results if r["ok"]]
    failed = [r for r in results if not r["ok"]]
    text = f"{p.verb}d {fmt.plural(len(ok), 'queue')}"
    if p.unchanged:
        text += f"; {len(p.unchanged)} left as they were"
    if failed:
        text += "; FAILED: " + "; ".join(f"{one_line(r['queue'], 40)}: {one_line(str(r.get('error')), 120)}"
                                         for r in failed[:3])
    warnings = [r["warning"] for r in ok if r.get("warning")]
    if warnings:
        text += f"; warning: {one_line(warnings[0], 200)}"
    return text, "error" if failed else ("warning" if warnings else "information")


async def flow(host: Any, run: Any, verb: str, statuses: dict[tuple, Any], only: set[tuple] | None = None) -> None:
    """Plan, confirm, run, report: ``host`` is the screen that claimed the mutation slot ``run``."""
    from console.screens.confirm import ConfirmScreen

    app = host.app
    what = verb if only is not None else f"{verb} all"
    try:
        try:
            p = await app.on_backend(plan(app, verb, statuses, only))
        except Exception as exc:
            host.notify(one_line(f"{what}: {exc}", 200), severity="error")
            return
        if not await app.push_screen_wait(ConfirmScreen(title(p), body(p))):
            host.notify(f"{what} cancelled: nothing changed")
            return
        if not p.targets and not p.forget:
            return
        run.started, run.total = True, len(p.targets)
        try:
            results = await asyncio.shield(app.on_backend(execute(app, p)))
        except Exception as exc:
            host.notify(one_line(f"{what}: {exc}", 200), severity="error")
            return
        text, severity = summary(p, results)
        host.notify(text, severity=severity, timeout=8)
    finally:
        host.release_mutation(run)
    app.action_refresh()
