"""The mutating and triage verbs of the CLI: dlq list/retry/purge, pause, resume, audit.

Thin: parsing and printing only; everything that changes a queue goes through console.actions.
Results (dry runs, reports) go to stdout; progress, previews before a prompt and notes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from backends.contract import QueueRef, call_with_timeout
from console import formatting as fmt
from console.actions import Actions, Preview, Refused, Report, Selection, parse_duration, store_key
from console.actions import totals as plan_totals  # the name `totals` is a local below
from console.connections import Session
from console.cli_parsers import ActionUsageError
from console.safe_text import one_line
from console.triage import group_jobs


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=True)
    sys.stdout.write("\n")


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused("not confirmed: pass --yes to run without a prompt")
    print(question + " Type 'yes' to go on: ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() != "yes":
        raise Refused("not confirmed")


def _queues(session: Session, spec: str | None) -> list[QueueRef]:
    return [session.find(spec)] if spec else session.queues


async def run(args: argparse.Namespace, session: Session, read_only: bool) -> int:
    from console.config import load_policy_for

    actions = Actions(session.reader_for, read_only=read_only, timeout=max(session.options.op_timeout, 30),
                      policy=load_policy_for(session.settings), force=getattr(args, "force", None))
    if args.command == "dlq":
        if args.dlq_command == "list":
            return await _dlq_list(args, session)
        return await _dlq_mutate(args, session, actions)
    if args.command in ("pause", "resume"):
        return await _pause(args, session, actions)
    if args.command == "audit":
        return await _audit(args, session)
    if args.command in ("promote", "cancel"):
        return await _promote_cancel(args, session, actions)
    raise ActionUsageError(f"unknown command {args.command}")


async def _dlq_list(args, session: Session) -> int:
    if not 1 <= args.limit <= 1000:
        raise ActionUsageError(f"--limit must be between 1 and 1000, got {args.limit}")
    queues = _queues(session, args.queue)
    timeout = session.options.op_timeout
    if args.filter or args.group:
        return await _dlq_list_filtered(args, session, queues)
    out = []
    for q in queues:
        reader = session.reader_for(q)
        page = await call_with_timeout(reader.page(q, "failed", None, args.limit), timeout, f"reading {q.name}")
        out.append((q, page))
    if args.json:
        _print_json({"queues": [{"connection": q.connection, "backend": q.backend, "queue": q.name,
                                 "total": p.total, "next_cursor": p.next_cursor,
                                 "jobs": [j.model_dump() for j in p.jobs]} for q, p in out]})
        return 0
    for q, p in out:
        if not p.total:
            continue
        print(f"{one_line(q.qualified, 60)}: {fmt.count(p.total)} failed (newest first)")
        for j in p.jobs:
            reason = one_line(j.failed_reason.text if j.failed_reason else "", 90)
            print(f"  {one_line(j.id, 24):<24} {fmt.clock(j.finished_ms, args.utc)}  {reason}")
    return 0


#: failed jobs read per queue for ``dlq list --group`` (complete up to this; memory ~1 KiB per job)
GROUP_ROW_CAP = 1_000_000


async def _scan(session: Session, queues: list[QueueRef], query: str, row_cap: int | None = None,
                light: bool = False):
    from console.dlq_scan import scan_failed
    from console.filters import FilterError, parse_filter

    try:
        flt = parse_filter(query)
    except FilterError as exc:
        raise ActionUsageError(str(exc)) from None
    targets = [(q, session.reader_for(q)) for q in queues]
    result = await scan_failed(targets, flt, timeout=session.options.op_timeout, light=light,
                               **({"row_cap": row_cap} if row_cap else {}))
    for err in result.errors:
        print(f"warning: {err}", file=sys.stderr)
    if result.capped:
        counted = ", ".join(f"{q} ({fmt.count(result.totals[q])} failed by the server's count)" if q in result.totals
                            else q for q in result.capped)
        print(f"stopped at the scan cap in: {counted} (matches are among the jobs read; "
              "narrow the filter with queue: or age:)", file=sys.stderr)
    return result


async def _dlq_list_filtered(args, session: Session, queues: list[QueueRef]) -> int:
    """``--filter`` and/or ``--group``: read failed jobs in bounded, capped batches (dlq_scan)."""
    # grouping needs only id, time and reason per job: read those (FailedRow), not full rows
    result = await _scan(session, queues, args.filter or "", GROUP_ROW_CAP if args.group else None, light=args.group)
    if args.group:
        groups = group_jobs(result.items)
        if args.json:
            _print_json({"groups": [{"signature": g.signature, "count": g.count, "queues": sorted(g.queues),
                                     "first_ms": g.first_ms, "last_ms": g.last_ms, "sample_job": _sample_job(g),
                                     "sample_reason": g.sample_reason} for g in groups],
                         "scanned": result.scanned, "capped_queues": result.capped,
                         "failed_totals": {q: result.totals[q] for q in result.capped if q in result.totals}})
            return 0
        total = sum(result.totals.get(q.qualified, 0) for q in queues)
        print(f"{fmt.plural(len(result.items), 'failed job')} (of {result.scanned:,} read; {total:,} failed by the "
              f"server's counts) in {fmt.plural(len(groups), 'group')}")
        for g in groups:
            print(f"{g.count:>8}  {one_line(g.signature, 90)}")
            print(f"          queues {', '.join(one_line(x, 40) for x in sorted(g.queues))}; "
                  f"first {fmt.clock(g.first_ms, args.utc)}, last {fmt.clock(g.last_ms, args.utc)}; "
                  f"e.g. {_sample_text(g)}")
        return 0
    if args.json:
        _print_json({"jobs": [{"connection": q.connection, "backend": q.backend, "queue": q.name, **j.model_dump()}
                              for q, j in result.items], "scanned": result.scanned, "capped_queues": result.capped})
        return 0
    print(f"{fmt.plural(len(result.items), 'matching failed job')} (of {result.scanned:,} read)")
    for q, j in result.items[: args.limit]:
        reason = one_line(j.failed_reason.text if j.failed_reason else "", 80)
        print(f"  {one_line(q.qualified, 30):<30} {one_line(j.id, 24):<24} {fmt.clock(j.finished_ms, args.utc)}  {reason}")
    if len(result.items) > args.limit:
        print(f"  … {len(result.items) - args.limit} more (--limit)")
    return 0


def _sample_job(g) -> dict[str, str] | None:
    """The group's sample as {queue, id} (a bare id is ambiguous when two queues both have it)."""
    if g.sample_id is None or g.sample_queue is None:
        return None
    q = g.sample_queue
    return {"connection": q.connection, "backend": q.backend, "queue": q.name, "id": g.sample_id}


def _sample_text(g) -> str:
    if g.sample_queue is None:
        return "-"
    return f"{one_line(g.sample_queue.qualified, 40)} job {one_line(g.sample_id or '', 30)}"


def _print_preview(p: Preview, utc: bool, out: TextIO) -> None:
    """A preview: on stdout as a dry run's result, on stderr before a confirmation prompt."""
    print(p.describe(), file=out)
    if p.plan is not None:
        for line in p.plan.render(limit=20):
            print(f"  {line}", file=out)
    else:
        for j in p.sample:
            reason = one_line(j.failed_reason.text if j.failed_reason else "", 80)
            print(f"  e.g. {one_line(j.id, 24)}  {fmt.clock(j.finished_ms, utc)}  {reason}", file=out)
        if p.action == "retry":
            print("  policy: no rule applies to this queue: every job is retried now, in bulk", file=out)
    for w in p.warnings:
        print(f"  note: {w}", file=out)


def _totals_text(action: str, t: dict[str, int]) -> str:
    verb = {"retry": "retried", "purge": "purged"}.get(action, action)
    text = f"{action} of {fmt.plural(t['selected'], 'selected job')}: {t['now']} would be {verb} now"
    if t["later"] or action == "retry":
        text += f", {t['later']} later (paced or scheduled by the policy)"
    if t["refused"] or action == "retry":
        text += f", {t['refused']} refused by the policy"
    return text


def _preview_json(p: Preview) -> dict[str, Any]:
    return {"connection": p.selection.queue.connection, "backend": p.selection.queue.backend,
            "queue": p.selection.queue.name, "count": p.count, "snapshot_ms": p.snapshot_ms,
            "sample": [j.id for j in p.sample], "warnings": p.warnings,
            "plan": p.plan.to_dict() if p.plan is not None else None,
            "plan_fingerprint": p.plan.fingerprint() if p.plan is not None else None}


async def _dlq_mutate(args, session: Session, actions: Actions) -> int:
    action = args.dlq_command
    if args.jobs and not args.queue:
        raise ActionUsageError("--job needs QUEUE")
    older = None
    if args.older_than:
        try:
            older = parse_duration(args.older_than)
        except ValueError as exc:
            raise ActionUsageError(str(exc)) from None
        if args.jobs:
            raise ActionUsageError("--older-than goes with --all")
    if args.filter and not args.all:
        raise ActionUsageError("--filter goes with --all")
    queues = _queues(session, args.queue)
    if not args.dry_run:
        for q in queues:
            actions.check_allowed(action, q)
    matched: dict[tuple, list[str]] | None = None
    if args.filter:
        query = args.filter + (f" age:>{older}ms" if older else "")
        result = await _scan(session, queues, query)
        matched = {}
        for q, j in result.items:
            matched.setdefault(q.key, []).append(j.id)
        queues = [q for q in queues if q.key in matched]
        older = None
    previews = []
    for q in queues:
        ids = matched[q.key] if matched is not None else (list(args.jobs) if args.jobs else None)
        sel = Selection(queue=q, state="failed", job_ids=ids, older_than_ms=older)
        previews.append(await actions.preview(action, sel, reset_attempts=getattr(args, "reset_attempts", False)))
    previews = [p for p in previews if p.count or not (p.selection.is_all or p.from_all)]
    totals = plan_totals(previews)
    total = totals["now"] + totals["later"]
    if args.dry_run:
        if args.json:
            _print_json({"dry_run": True, "action": action, "total": total, "totals": totals,
                         "previews": [_preview_json(p) for p in previews]})
        else:
            for p in previews:
                _print_preview(p, args.utc, sys.stdout)
            print(f"dry run: {_totals_text(action, totals)}; nothing changed")
        return 0
    if not previews:
        print(f"nothing to {action}", file=sys.stderr)
        if args.json:
            _print_json({"action": action, "reports": []})
        return 0
    for p in previews:
        _print_preview(p, args.utc, sys.stderr)
    if totals["refused"]:
        print(f"  {_totals_text(action, totals)}", file=sys.stderr)
    _confirm(f"{action} {fmt.plural(total, 'job')}?", args.yes)
    progress = None if args.json else Progress(action)
    # planned (paced) retries of several queues run side by side: their starts interleave as planned
    try:
        results = await actions.execute_many(previews, progress=progress)
    finally:
        if progress is not None:
            progress.end()
    if len(results) == 1 and isinstance(results[0], BaseException):
        raise results[0]  # one queue: the one-line error and its exit code
    if not args.json:
        for p, r in zip(previews, results):
            text = r.summary() if isinstance(r, Report) else f"{action}: not run: {r}"
            print(f"{one_line(p.selection.queue.qualified, 60)}: {text}")
    reports = [r for r in results if isinstance(r, Report)]
    failed = [r for r in results if not isinstance(r, Report)]
    done = {"selected": sum(p.count for p in previews), "done": sum(r.done for r in reports),
            "refused": sum(r.refused for r in reports)}
    if args.json:
        _print_json({"action": action, "totals": done,
                     "reports": [(r.to_json() if isinstance(r, Report) else
                                  {"queue": p.selection.queue.name, "backend": p.selection.queue.backend,
                                   "connection": p.selection.queue.connection, "not_run": str(r)})
                                 | {"plan_fingerprint": p.plan.fingerprint() if p.plan is not None else None}
                                 for r, p in zip(results, previews)]})
    elif len(results) > 1:
        print(f"{action}: {done['done']:,} done of {done['selected']:,} selected"
              + (f", {done['refused']:,} refused by the policy" if done["refused"] else ""))
    if not all(r.complete for r in reports) or any(not isinstance(e, Refused) for e in failed):
        return 3
    if failed:
        return 4
    if any(r.refused for r in reports):
        print(f"the policy refused {fmt.plural(sum(r.refused for r in reports), 'job')} (see the plan above; --force "
              "overrides permanent/too-old, --force fatal also fatal)", file=sys.stderr)
        return 4
    return 0


class Progress:
    """``retry: 12/36`` on stderr as a run goes. On a terminal one line redrawn in place (``\r``);
    anywhere else (a file, a pipe, a CI log) whole lines, at most one per ``interval`` seconds, and
    the last state always (``end``)."""

    def __init__(self, action: str, stream: TextIO | None = None, interval: float = 2.0) -> None:
        self.action = action
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = interval
        self._shown_at: float | None = None
        self._last: str | None = None  # the newest text
        self._printed: str | None = None  # the newest text printed

    def __call__(self, done: int, total: int) -> None:
        self._last = f"{self.action}: {done:,}/{total:,}"
        if self.tty:
            self._write(f"\r{self._last}", end="")
            return
        now = time.monotonic()
        if self._shown_at is None or now - self._shown_at >= self.interval:
            self._shown_at = now
            self._write(self._last)

    def _write(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.stream, flush=True)
        self._printed = self._last

    def end(self) -> None:
        """Close the progress line: a newline on a terminal, the last state if it was not printed."""
        if self._last is None:
            return
        if self.tty:
            print("", file=self.stream, flush=True)
        elif self._printed != self._last:
            self._write(self._last)


def _ref(q: QueueRef, **extra: Any) -> dict[str, Any]:
    return {"queue": q.name, "backend": q.backend, "connection": q.connection, **extra}


async def _pause(args, session: Session, actions: Actions) -> int:
    """pause/resume QUEUE or --all; with --dry-run only what would happen (reads only)."""
    paused = args.command == "pause"
    verb, dry = args.command, args.dry_run
    if bool(args.queue) == bool(args.all):
        raise ActionUsageError(f"{verb} takes QUEUE or --all")
    cannot: list[dict[str, str]] = []
    unchanged: list[QueueRef] = []  # pause: already paused (stays paused); resume: not paused
    gone: list[tuple[Any, list[str]]] = []  # resume --all: remembered queues that no longer exist
    if args.queue:
        targets = [session.find(args.queue)]
        if dry:
            targets = _pausable(session, targets, cannot)
            state = await _paused_states(session, targets)
            unchanged = [q for q in targets if state.get(q.key) == paused]
            targets = [q for q in targets if q not in unchanged]
    elif paused:
        targets = _pausable(session, session.queues, cannot)
        if cannot and not dry:
            print(f"cannot be paused, left running ({len(cannot)}): "
                  + "; ".join(f"{one_line(c['backend'] + ':' + c['queue'], 60)} ({one_line(c['reason'], 120)})"
                              for c in cannot), file=sys.stderr)
        statuses = {s.queue.key: s for s in await session.statuses()}
        unchanged = [q for q in targets if statuses.get(q.key) and statuses[q.key].paused]
        targets = [q for q in targets if q not in unchanged]
        if unchanged and not dry:
            print(f"already paused, left alone (and not resumed by resume --all): "
                  f"{', '.join(q.qualified for q in unchanged)}", file=sys.stderr)
    else:
        targets = []
        for conn in session.connections:
            for reader in conn.readers:
                store = reader.console_store()
                if store is None:
                    continue
                remembered = await call_with_timeout(store.paused_list(), session.options.op_timeout,
                                                     f"reading the paused-queue records at {conn.url}")
                found = [q for q in conn.discoveries[reader.backend].queues if store_key(q) in remembered]
                targets += found
                keys = _vanished(remembered, found, conn.discoveries[reader.backend], reader.backend,
                                 session.settings.prefixes)
                if keys and not dry and not actions.read_only:
                    await actions.forget_paused(reader, keys)
                    print(f"forgot {fmt.plural(len(keys), 'remembered paused queue')} no longer found at "
                          f"{conn.url}: {', '.join(one_line(k.replace(chr(31), ':'), 60) for k in keys[:5])}",
                          file=sys.stderr)
                elif keys:
                    gone.append((conn.url, keys))
    if dry:
        allowed = []
        for q in targets:
            try:
                actions.check_allowed(verb, q)
                allowed.append(q)
            except Refused as exc:
                cannot.append(_ref(q, reason=str(exc)))
        targets = allowed
    else:
        for q in targets:
            actions.check_allowed(verb, q)
    notes: dict[tuple, list[str]] = {}
    for q in targets:
        notes[q.key] = await call_with_timeout(session.reader_for(q).pause_notes(q, paused),
                                               session.options.op_timeout, f"checking how to {verb} {q.qualified}")
    if dry:
        return _pause_dry_run(args, targets, unchanged, cannot, gone, notes)
    if not targets:
        print(f"nothing to {verb}", file=sys.stderr)
        if args.json:
            _print_json({"action": verb, "results": [], "cannot_pause": cannot})
        return 0
    for q in targets:
        for note in notes[q.key]:
            print(f"note: {one_line(note, 300)}", file=sys.stderr)
    _confirm(f"{verb} {fmt.plural(len(targets), 'queue')} ({', '.join(q.qualified for q in targets[:10])})?", args.yes)
    results = await actions.set_paused(targets, paused, remember=bool(args.all))
    if args.json:
        _print_json({"action": verb, "results": results, "cannot_pause": cannot})
    else:
        for r in results:
            state = "ok" if r["ok"] else f"FAILED: {r.get('error')}"
            if r.get("warning"):
                state += f" (warning: {r['warning']})"
            if r.get("note"):
                state += f" ({one_line(r['note'], 300)})"
            print(f"{verb} {one_line(r['queue'], 60)} ({r['backend']}): {state}")
    return 0 if all(r["ok"] for r in results) else 3


def _pausable(session: Session, queues: list[QueueRef], cannot: list[dict[str, str]]) -> list[QueueRef]:
    """The queues whose backend can pause them; the others go to ``cannot`` with the reason."""
    out = []
    for q in queues:
        caps = session.reader_for(q).queue_capabilities(q)
        if caps.pause:
            out.append(q)
        else:
            cannot.append(_ref(q, reason=caps.read_only_reason or _no_pause(q.backend)))
    return out


async def _paused_states(session: Session, queues: list[QueueRef]) -> dict[tuple, bool]:
    out = {}
    for q in queues:
        for st in await call_with_timeout(session.reader_for(q).statuses([q]), session.options.op_timeout,
                                          f"reading the state of {q.qualified}"):
            out[st.queue.key] = bool(st.paused)
    return out


def _pause_dry_run(args, targets: list[QueueRef], unchanged: list[QueueRef], cannot: list[dict[str, str]],
                   gone: list[tuple[Any, list[str]]], notes: dict[tuple, list[str]]) -> int:
    """What pause/resume would do, on stdout; nothing was changed (and nothing forgotten)."""
    verb = args.command
    if args.json:
        _print_json({"dry_run": True, "action": verb,
                     "would": [_ref(q, notes=notes.get(q.key, [])) for q in targets],
                     "unchanged": [_ref(q) for q in unchanged], "cannot": cannot,
                     "forget": [{"connection": url, "records": keys} for url, keys in gone]})
        return 0
    print(f"would {verb} ({len(targets)}):" + ("" if targets else " nothing"))
    for q in targets:
        print(f"  {one_line(q.qualified, 60)} at {q.connection}")
        for note in notes.get(q.key, []):
            print(f"    note: {one_line(note, 300)}")
    if unchanged:
        what = "already paused, stays paused" if verb == "pause" else "not paused, nothing to resume"
        print(f"{what} ({len(unchanged)}):")
        for q in unchanged:
            print(f"  {one_line(q.qualified, 60)} at {q.connection}")
    if cannot:
        print(f"cannot be {verb}d ({len(cannot)}):")
        for c in cannot:
            print(f"  {one_line(c['backend'] + ':' + c['queue'], 60)} at {c['connection']}: {one_line(c['reason'], 200)}")
    for url, keys in gone:
        print(f"would forget {fmt.plural(len(keys), 'remembered paused queue')} no longer found at {url}: "
              f"{', '.join(one_line(k.replace(chr(31), ':'), 60) for k in keys[:5])}")
    print(f"dry run: {verb} of {fmt.plural(len(targets), 'queue')}; nothing changed")
    return 0


async def _promote_cancel(args, session: Session, actions: Actions) -> int:
    queue = session.find(args.queue)
    actions.check_allowed(args.command, queue)
    _confirm(f"{args.command} {fmt.plural(len(args.jobs), 'job')} of {queue.qualified}?", args.yes)
    report = await actions.apply_to_ids(args.command, queue, list(args.jobs))
    if args.json:
        _print_json({"action": args.command, "reports": [report.to_json()]})
    else:
        print(f"{one_line(queue.qualified, 60)}: {report.summary()}")
    return 0 if report.complete else 3


def _no_pause(backend: str) -> str:
    if backend == "gello":
        return "Gello has no pause: its storage format has no paused flag that its workers read"
    return f"{backend} queues cannot be paused by queue-console"


def _vanished(remembered: dict[str, str], found: list[QueueRef], discovery, backend: str,
              pinned: list[str]) -> list[str]:
    """Remembered paused queues of this backend that a complete discovery did not find, limited to
    the key prefixes it looked in (never forget another prefix's or another system's record)."""
    if not discovery.complete:
        return []
    found_keys = {store_key(q) for q in found}
    namespaces = set(pinned) if pinned else None
    out = []
    for key in remembered:
        parts = key.split("\x1f")
        if len(parts) != 3 or key in found_keys:
            continue
        kb, ns, _name = parts
        if kb != backend:
            continue
        if namespaces is not None and ns not in namespaces:
            continue
        out.append(key)
    return sorted(out)


async def _audit(args, session: Session) -> int:
    records = []
    for conn in session.connections:
        seen: set[str] = set()
        for reader in conn.readers:
            store = reader.console_store()
            # several queue systems on one server (BullMQ and Gello in one Redis) share one store
            if store is None or store.location in seen:
                continue
            seen.add(store.location)
            records += await call_with_timeout(store.audit_read(args.limit), session.options.op_timeout,
                                               f"reading the audit records at {conn.url}")
    records.sort(key=lambda r: r.get("_id", ""), reverse=True)
    records = records[: args.limit]
    if args.json:
        _print_json({"records": records})
        return 0
    for r in records:
        print(f"{fmt.clock(r.get('at'), args.utc)}  {one_line(str(r.get('who')), 30)}  {one_line(str(r.get('action')), 20)}  "
              f"{one_line(str(r.get('queue')), 40)}  {_audit_counts(r)}  {one_line(str(r.get('result')), 80)}")
    if not records:
        print("no audit records", file=sys.stderr)
    return 0


def _audit_counts(r: dict[str, Any]) -> str:
    """requested, done and refused (records of pause/resume have a count only)."""
    done = r.get("done", r.get("count"))
    if r.get("requested") is None:
        return f"count={done}"
    return f"requested={r.get('requested')} done={done} refused={r.get('refused') or 0}"
