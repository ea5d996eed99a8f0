"""The ``queue-console`` command: the TUI by default, and headless verbs (status, jobs, job, demo).

Exit codes: 0 done; 2 bad usage or bad input; 3 cannot connect / backend error; 4 refused;
141 stdout closed by its reader (``| head``: quietly, as a process ended by SIGPIPE).
Errors are one line on stderr, never a traceback. Results and data go to stdout; progress, notes
and errors to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from backends.contract import json_record
from backends.errors import BackendError, BadRequest, BadUrl
from backends.declaration import URL_KINDS
from backends.registry import backend_names, backend_options
from console import formatting as fmt
from console.cli_parsers import ActionUsageError
from console.config import ConfigError, Settings, check_file, config_path, load
from console.connections import QueueNotFound, Session
from console.safe_text import InertStream, blob_text, clean, one_line

EXIT_OK, EXIT_USAGE, EXIT_BACKEND, EXIT_REFUSED = 0, 2, 3, 4
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer ended by a closed pipe
SHELLS = ("bash", "zsh", "tcsh")  # shtab's


class UsageError(Exception):
    pass


def _connection_flags(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The connection options, accepted before or after the verb (a verb's own never clobber the top's)."""
    g = p.add_argument_group("connection")
    if not top:
        g.argument_default = argparse.SUPPRESS
    g.add_argument("--url", action="append", dest="urls", metavar="URL",
                   help="redis://, rediss://, unix://, redis+sentinel://, postgresql:// (repeatable; default $QUEUE_CONSOLE_URL)")
    g.add_argument("--context", help="a named context from the config file")
    g.add_argument("--backend", choices=backend_names(),
                   help=f"force the queue system ({', '.join(backend_names())}) instead of detecting it")
    _backend_flags(g)
    g.add_argument("--write-url", metavar="URL",
                   help="PostgreSQL primary for mutations when --url is a hot standby (reads stay on --url)")
    g.add_argument("--connect-timeout", type=float, metavar="S", help="seconds to wait for a server (default 5)")
    o = p.add_argument_group("output")
    if not top:
        o.argument_default = argparse.SUPPRESS
    o.add_argument("--utc", action="store_true", default=None if top else argparse.SUPPRESS,
                   help="timestamps in UTC (default: local time; both show their offset; config key utc)")


def _backend_flags(g) -> None:
    """The flags the backends declare (``BackendDeclaration.options``), each added once (a shared
    one with the helps of all its declarations), converted to the declared type: a bad value is
    argparse's usage error naming the flag and the value (exit 2); a bool is ``--x`` / ``--no-x``."""
    for flag, opts in backend_options().items():
        first = opts[0]
        kwargs: dict[str, Any] = {"dest": first.dest, "help": "; ".join(dict.fromkeys(o.help for o in opts))}
        if first.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = first.type
            if first.metavar:
                kwargs["metavar"] = first.metavar
            if first.repeatable:
                kwargs["action"] = "append"
        g.add_argument(flag, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("queue-console")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _description() -> str:
    """What the registry knows, so that --help never lags behind the backends."""
    where = "; ".join(f"{', '.join(backend_names(kind))} on {label}" for kind, label in URL_KINDS.items())
    return f"A keyboard-first console for live job queues: {where}."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queue-console",
        description=_description(),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _connection_flags(parser, top=True)
    parser.add_argument("--read-only", action="store_true", default=None, help="refuse every mutation")
    parser.add_argument("--theme", help="TUI theme name")
    parser.add_argument("--refresh", type=float, metavar="S", help="refresh interval in seconds (default 2)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="start an embedded server with a live workload and open the console")
    demo.add_argument("--backend", choices=["redis", "postgres"], default="redis", dest="demo_backend")
    # global flags given before the verb stay in force (a verb's own default must not reset them)
    demo.add_argument("--refresh", type=float, metavar="S", default=argparse.SUPPRESS)
    demo.add_argument("--theme", default=argparse.SUPPRESS)
    demo.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help="refuse every mutation")
    demo.add_argument("--no-ui", action="store_true", help="run the server and workload only; print its URL")

    status = sub.add_parser("status", help="counts of every queue")
    _connection_flags(status)
    status.add_argument("queues", nargs="*", metavar="QUEUE",
                        help="only these queues (name or backend:name), looked up directly: no scan of the keyspace")
    status.add_argument("--json", action="store_true")
    status.add_argument("--rescan", action="store_true",
                        help="walk the keyspace for BullMQ queues now instead of listing those of the last "
                             "complete scan (kept for 10 minutes)")

    jobs = sub.add_parser("jobs", help="one page of jobs of a queue in a state")
    _connection_flags(jobs)
    jobs.add_argument("queue", metavar="QUEUE", help="queue name, or backend:name")
    jobs.add_argument("--state", default="waiting",
                      help="waiting, delayed, active, completed, failed (or a backend state such as waiting_children)")
    jobs.add_argument("--limit", type=int, default=50, help="page size, 1..1000 (default 50)")
    jobs.add_argument("--cursor", help="continue from the next_cursor of a previous page")
    jobs.add_argument("--json", action="store_true")

    job = sub.add_parser("job", help="one job in full")
    _connection_flags(job)
    job.add_argument("queue", metavar="QUEUE")
    job.add_argument("id", metavar="ID")
    job.add_argument("--json", action="store_true")

    from console.cli_parsers import add_parsers

    add_parsers(sub, _connection_flags)
    from console.metrics_exporter import add_parser as add_metrics_parser

    add_metrics_parser(sub, _connection_flags)

    comp = sub.add_parser("completion", help="print a shell completion script (bash, zsh, tcsh)",
                          description='e.g. eval "$(queue-console completion bash)" in ~/.bashrc')
    comp.add_argument("shell", choices=SHELLS)
    config = sub.add_parser("config", help="the config file: where it is, is it valid")
    csub = config.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND", required=True)
    csub.add_parser("path", help="print the config file's path ($QUEUE_CONSOLE_CONFIG or the user config dir)")
    check = csub.add_parser("check", help="validate a config file (default: the one in force); exit 0 ok, 2 errors")
    check.add_argument("file", nargs="?", metavar="FILE")
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    names = ("urls", "context", "backend", "connect_timeout", "read_only", "theme", "refresh",
             "policy_file", "utc", "write_url")
    flags = {name: getattr(args, name, None) for name in names}
    # a declared flag lands on its config key (the settings' name for it: "schema", "prefixes", ...)
    flags.update({opts[0].config_key: getattr(args, opts[0].dest, None) for opts in backend_options().values()})
    return flags


def _fail(code: int, message: str) -> NoReturn:
    print(f"queue-console: {clean(message)}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """The entry point: ``_main`` with stdout and stderr made inert (the TUI's driver writes
    elsewhere), and a quiet exit when the reader of stdout went away (``| head``)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = InertStream(out), InertStream(err)
    try:
        try:
            try:
                _main(argv)
            finally:
                sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe cannot be caught
        except BrokenPipeError:
            _closed_pipe()
    finally:
        sys.stdout, sys.stderr = out, err


def _closed_pipe() -> NoReturn:
    try:  # whatever is still buffered goes nowhere instead of failing again at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a wrapped or captured stream)
        pass
    raise SystemExit(EXIT_CLOSED_PIPE)


def _config_command(args: argparse.Namespace) -> int:
    if args.config_command == "path":
        print(config_path())
        return EXIT_OK
    path = config_path() if args.file is None else Path(args.file).expanduser()
    if args.file is None and "QUEUE_CONSOLE_CONFIG" not in os.environ and not path.exists():
        print(f"{path}: ok (no such file: the defaults apply)")  # as load() reads it
        return EXIT_OK
    check_file(path)  # ConfigError: exit 2 naming the file, key and value
    print(f"{path}: ok")
    return EXIT_OK


def _main(argv: list[str] | None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "completion":
            import shtab

            print(shtab.complete(parser, shell=args.shell), end="")
            return
        if args.command == "config":
            raise SystemExit(_config_command(args))
        if args.command == "demo":
            from console.demo import run_demo

            # the global flags and layers (--read-only, QUEUE_CONSOLE_READ_ONLY, config) apply here too
            base = load(_flags(args))
            run_demo(backend=args.demo_backend, refresh=args.refresh, theme=args.theme, no_ui=args.no_ui,
                     read_only=base.read_only)
            return
        settings = load(_flags(args))
        args.utc = settings.utc  # flag, env or config file: the CLI's timestamps follow it
        if args.command is None:
            from console.app import run_app

            run_app(settings)
            return
        if args.command == "metrics":
            from console.metrics_exporter import run_cli as run_metrics

            run_metrics(args, settings)
            return
        if args.command == "jobs" and not 1 <= args.limit <= 1000:
            raise UsageError(f"--limit must be between 1 and 1000, got {args.limit}")
        code = asyncio.run(_run(args, settings))
        raise SystemExit(code)
    except (BadUrl, BadRequest, ConfigError, UsageError, QueueNotFound, ActionUsageError) as exc:
        _fail(EXIT_USAGE, str(exc))
    except BackendError as exc:
        _fail(EXIT_BACKEND, str(exc))
    except KeyboardInterrupt:
        _fail(130, "interrupted")
    except (SystemExit, BrokenPipeError):
        raise
    except Exception as exc:  # never a traceback on an operator's terminal
        # console.actions is imported only by the verbs that act (Refused cannot come from elsewhere)
        actions = sys.modules.get("console.actions")
        if actions is not None and isinstance(exc, actions.Refused):
            _fail(EXIT_REFUSED, str(exc))
        _fail(1, f"internal error: {type(exc).__name__}: {exc} (please report this)")


#: verbs whose QUEUE argument, when given, is looked up directly instead of discovering every queue
NAMED_QUEUE_VERBS = ("jobs", "job", "dlq", "pause", "resume", "promote", "cancel")


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    session = Session(settings)
    if args.command == "status" and not args.rescan:
        session.options.discovery_cache = True  # said on output when used
    named = getattr(args, "queue", None) if args.command in NAMED_QUEUE_VERBS else None
    if args.command == "status" and args.queues:
        named = args.queues
    await session.open(named=named)
    try:
        if args.command == "status":
            return await _status(session, args)
        if args.command == "jobs":
            return await _jobs(session, args)
        if args.command == "job":
            return await _job(session, args)
        if args.command in ("dlq", "pause", "resume", "audit", "promote", "cancel"):
            from console import cli_actions

            return await cli_actions.run(args, session, settings.read_only)
        raise UsageError(f"unknown command {args.command}")
    finally:
        await session.close()


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=True)
    sys.stdout.write("\n")


def _print_json_rows(data: dict[str, list]) -> None:
    """An object of lists with one list item per line: as readable as ``indent=2`` for a list of
    records, and written by json's C encoder (``indent`` makes json fall back to its Python encoder,
    0.26 s of the 1,000-queue ``status --json``)."""
    out = ["{"]
    for n, (key, items) in enumerate(data.items()):
        rows = [f"    {json.dumps(item, ensure_ascii=True)}" for item in items]
        body = ("[\n" + ",\n".join(rows) + "\n  ]") if rows else "[]"
        out.append(f"  {json.dumps(key)}: {body}" + ("," if n < len(data) - 1 else ""))
    out.append("}")
    sys.stdout.write("\n".join(out) + "\n")


async def _status(session: Session, args: argparse.Namespace) -> int:
    statuses = await session.statuses([session.find(spec) for spec in args.queues] if args.queues else None)
    notes = []
    for conn in session.connections:
        for backend, disc in conn.discoveries.items():
            if not disc.queues:
                notes.append(f"no {backend} queues at {conn.url} (looked for {', '.join(disc.looked_for)})"
                             + (f"; {disc.hint}" if disc.hint else ""))
            if disc.note:
                notes.append(f"{conn.url}: {disc.note}")
            if disc.cached_age_s is not None:
                notes.append(f"{conn.url}: queues as of the scan {fmt.duration(disc.cached_age_s)} ago (a kept list: "
                             "queues created since are not listed; --rescan walks the keyspace now)")
    if args.json:
        _print_json_rows({"queues": [json_record(s) for s in statuses], "notes": notes,
                          "connections": await session.topologies()})
        return EXIT_OK
    columns = fmt.state_columns([s for s in statuses if s.malformed is None])
    header = ["QUEUE", "BACKEND", "PAUSED"] + [c.upper() for c in columns]
    rows = [[one_line(s.queue.name, 40), s.queue.backend, "yes" if s.paused else "no"]
            + [fmt.count(s.counts.get(c)) for c in columns] for s in statuses if s.malformed is None]
    if rows:
        widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
        for row in [header] + rows:
            print("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    bad = [s for s in statuses if s.malformed is not None]
    if bad:
        print(f"{len(bad)} of {len(statuses)} queues could not be read (malformed):")
        for s in bad:
            print(f"  {one_line(s.queue.name, 40)} ({s.queue.backend}): {one_line(s.malformed, 200)}")
    for note in notes:
        print(one_line(note, 400), file=sys.stderr)
    for topo in await session.topologies():
        if topo.get("standby"):
            print(f"{topo['url']}: hot standby, {fmt_lag(topo.get('replica_lag_s'))}", file=sys.stderr)
    return EXIT_OK


def fmt_lag(lag: float | None) -> str:
    return "replica lag unknown" if lag is None else f"replica lag {lag:.1f} s"


async def _jobs(session: Session, args: argparse.Namespace) -> int:
    queue = session.find(args.queue)
    reader = session.reader_for(queue)
    if args.state not in reader.capabilities.states:
        raise UsageError(f"{queue.backend} has no state {args.state!r} (states: {', '.join(reader.capabilities.states)})")
    from backends.contract import call_with_timeout

    page = await call_with_timeout(reader.page(queue, args.state, args.cursor, args.limit),
                                   session.options.op_timeout, f"listing {args.state} jobs of {queue.name}")
    if args.json:
        _print_json({
            "connection": queue.connection, "backend": queue.backend, "queue": queue.name,
            "state": page.state, "total": page.total, "next_cursor": page.next_cursor,
            "jobs": [j.model_dump() for j in page.jobs],
        })
        return EXIT_OK
    bad = sum(1 for j in page.jobs if j.malformed)
    unreadable = f" ({bad} could not be read: marked MALFORMED)" if bad else ""
    print(f"{page.state} jobs of {one_line(queue.name, 60)} ({queue.backend}): {fmt.count(len(page.jobs))} of "
          f"{fmt.count(page.total)}{unreadable}")
    for j in page.jobs:
        if j.malformed:
            print(f"{one_line(j.id, 40):<24} MALFORMED: {one_line(j.malformed, 160)}")
            continue
        when = j.finished_ms or j.processed_ms or j.created_ms
        reason = f"  {one_line(j.failed_reason.text, 80)}" if j.failed_reason else ""
        print(f"{one_line(j.id, 40):<24} {one_line(j.name or '-', 30):<20} {fmt.clock(when, args.utc)}  "
              f"attempts={j.attempts_made if j.attempts_made is not None else '-'}{reason}")
    if page.next_cursor:
        print(f"more: --cursor {clean(page.next_cursor)}")
    return EXIT_OK


async def _job(session: Session, args: argparse.Namespace) -> int:
    from backends.contract import call_with_timeout

    try:
        queue = session.find(args.queue)
        reader = session.reader_for(queue)
    except QueueNotFound:  # a queue only its archive still holds (pg-boss v9): ask the readers
        for conn in session.connections:
            for reader in conn.readers:
                ref = await call_with_timeout(reader.queue_of_job(args.queue, args.id), session.options.op_timeout,
                                              f"looking for job {args.id} at {conn.url}")
                if ref is not None:
                    queue = ref
                    break
            else:
                continue
            break
        else:
            raise

    detail = await call_with_timeout(reader.job(queue, args.id), session.options.op_timeout,
                                     f"reading job {args.id} of {queue.name}")
    if detail is None:
        raise QueueNotFound(f"no job {args.id!r} in queue {queue.qualified}")
    if args.json:
        _print_json({"connection": queue.connection, "backend": queue.backend, "queue": queue.name,
                     **detail.model_dump()})
        return EXIT_OK
    s = detail.summary
    print(f"job {one_line(s.id, 60)} of {one_line(queue.name, 60)} ({queue.backend})")
    if s.malformed:
        print(f"  MALFORMED {one_line(s.malformed, 200)}")
    print(f"  name      {one_line(s.name or '-', 80)}")
    print(f"  state     {s.state} ({s.native_state})")
    print(f"  attempts  {s.attempts_made if s.attempts_made is not None else '-'}"
          f" of {detail.max_attempts if detail.max_attempts is not None else '-'}")
    print(f"  created   {fmt.clock(s.created_ms, args.utc)}")
    print(f"  processed {fmt.clock(s.processed_ms, args.utc)}")
    print(f"  finished  {fmt.clock(s.finished_ms, args.utc)}")
    if s.failed_reason:
        print(f"  error     {one_line(s.failed_reason.text, 200)}")
    print("data:")
    print(_indent(blob_text(detail.data)))
    if detail.return_value:
        print("return value:")
        print(_indent(blob_text(detail.return_value)))
    if detail.stacktrace:
        print("stack traces (newest first):")
        for i, st in enumerate(detail.stacktrace):
            print(_indent(f"#{i + 1}\n" + blob_text(st, pretty=False)))
    if detail.logs and detail.logs.total:
        print(f"logs ({len(detail.logs.lines)} of {detail.logs.total}, newest last):")
        for line in detail.logs.lines:
            print("  " + one_line(line, 500))
    return EXIT_OK


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines()) or "  -"


if __name__ == "__main__":  # pragma: no cover
    main()
