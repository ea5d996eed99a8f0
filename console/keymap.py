"""One binding table for the whole console: it drives the screens' bindings, the footer, the help
screen, the command palette and the generated docs/keys.md. No Textual import (the TUI turns these
into Bindings, each with its id, so that a user keymap applies to them).

A user keymap (the config file's ``[keys]`` table: binding id = keys) is checked by
``with_user_keys`` (an unknown id, a key name that is no key, or a key another binding of the same
screen already answers are errors naming the id and the value) and made the active table by
``use``: help, hints and the palette read ``active()``, and the app hands the same mapping to
Textual's keymap so that the footer and the keys themselves follow.

Risk lives in the keys: lowercase is safe; destructive actions (later issues) use Shift/Ctrl and a
confirmation, and are absent in read-only mode.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Key:
    id: str  # the action name on the screen
    keys: str  # comma-separated Textual key names
    description: str
    screens: tuple[str, ...]  # "app", "overview", "queue", "help"
    show: bool = True  # shown in the footer
    tier: str = "safe"  # "safe" | "danger"
    priority: bool = False  # wins over the focused widget's own binding for the same key
    #: the queue capability the action needs (``QueueCapabilities`` field); None: always works
    capability: str | None = None


KEYS: tuple[Key, ...] = (
    Key("quit", "q", "Quit", ("app",)),
    Key("help", "question_mark", "Help", ("app",)),
    Key("command", "colon", "Command", ("app",)),
    Key("freeze", "z", "Freeze", ("app",)),
    Key("refresh", "r", "Refresh now", ("app",), show=False),
    Key("previous_view", "minus", "Previous view", ("app",), show=False),
    Key("open_queue", "enter", "Open queue", ("overview",), priority=True),
    Key("dead_letters", "f", "Failures", ("overview", "queue")),
    Key("pause_all", "P", "Pause all", ("overview",), tier="danger", capability="pause"),
    Key("resume_all", "U", "Resume all", ("overview",), tier="danger", capability="pause"),
    Key("filter", "slash", "Filter", ("overview", "queue")),
    Key("cursor_down", "j", "Down", ("overview", "queue", "dlq"), show=False),
    Key("cursor_up", "k", "Up", ("overview", "queue", "dlq"), show=False),
    Key("cursor_top", "g", "Top", ("overview", "queue", "dlq"), show=False),
    Key("cursor_bottom", "G", "Bottom", ("overview", "queue", "dlq"), show=False),
    Key("back", "escape", "Back", ("queue", "dlq", "job", "help")),
    Key("open_flow_job", "enter", "Open the flow parent or child", ("job",), priority=True),
    Key("next_state", "tab", "Next state", ("queue",)),
    Key("prev_state", "shift+tab", "Prev state", ("queue",), show=False),
    Key("show_job", "enter", "Open job (full screen)", ("queue",), priority=True, show=False),
    Key("next_page", "n", "Next page", ("queue",)),
    Key("prev_page", "p", "Prev page", ("queue",), show=False),
    Key("toggle_detail", "d", "Detail pane", ("queue",), show=False),
    Key("toggle_chart", "c", "Chart", ("queue",), show=False),
    Key("mark", "space", "Mark", ("queue", "dlq")),
    Key("mark_range", "V", "Mark range", ("queue", "dlq"), show=False),
    Key("mark_all", "a", "Mark all matching", ("dlq",)),
    Key("rescan", "r", "Rescan", ("dlq",), show=False),
    Key("edit_filter", "slash", "Filter", ("dlq",)),
    Key("retry", "R", "Retry", ("queue", "dlq"), tier="danger", capability="retry"),
    Key("purge", "D", "Purge", ("queue", "dlq"), tier="danger", capability="purge"),
    Key("promote", "O", "Promote (run now)", ("queue",), tier="danger", capability="promote"),
    Key("cancel_jobs", "C", "Cancel job", ("queue",), tier="danger", capability="cancel"),
    Key("toggle_pause", "P", "Pause/resume", ("queue",), tier="danger", capability="pause"),
    # stopping a running retry/purge is safe: it never undoes, it stops after the batch in flight
    Key("cancel_mutation", "x", "Cancel the running retry/purge (after its current batch)",
        ("queue", "dlq", "progress"), show=False),
    Key("hide", "escape", "Hide (the run goes on)", ("progress",)),
)

#: (usage, what it does), in the order the help lists them
COMMANDS: tuple[tuple[str, str], ...] = (
    ("q NAME", "open a queue"),
    ("dlq", "the failures view"),
    ("pause all", "pause every queue (confirmation first)"),
    ("resume all", "resume the queues pause all paused"),
    ("pause NAME", "pause one queue"),
    ("resume NAME", "resume one queue"),
    ("ctx NAME", "switch to a context of the config file"),
    ("theme NAME", "switch theme"),
    ("ro", "read-only for the rest of the session"),
    ("help", "the keys of this screen"),
    ("quit", "quit"),
)

#: actions that change a queue: need a confirmation; not offered (nor shown) in read-only mode
DANGER = frozenset(k.id for k in KEYS if k.tier == "danger")
#: actions that only make sense where queues can change: off in read-only mode (stopping a running
#: retry/purge is safe, but a read-only session never has one)
WRITES = DANGER | {"cancel_mutation"}

_KEY_LABELS = {"question_mark": "?", "colon": ":", "slash": "/", "escape": "esc", "enter": "enter", "minus": "-", "shift+tab": "shift+tab"}


#: action id -> the queue capability it needs
CAPABILITY = {k.id: k.capability for k in KEYS if k.capability}


# -- user keymaps ([keys] in the config file) ------------------------------------------------
class KeymapError(ValueError):
    """A bad ``[keys]`` entry: ``binding`` is its id, ``value`` what it was given."""

    def __init__(self, binding: str, value: object, message: str) -> None:
        super().__init__(message)
        self.binding = binding
        self.value = value


#: characters a user may write for the key names Textual uses
_CHAR_NAMES = {"-": "minus", "/": "slash", "?": "question_mark", ":": "colon", "+": "plus", "=": "equals_sign",
               "!": "exclamation_mark", ".": "full_stop", ",": "comma", ";": "semicolon", "*": "asterisk",
               "#": "number_sign", "[": "left_square_bracket", "]": "right_square_bracket", " ": "space"}
_KEY_NAME = re.compile(r"((ctrl|shift|alt|meta|super|hyper)\+)*([a-z][a-z0-9_]*|[A-Z0-9])")


def _key_names(binding: str, value: object) -> str:
    """``"ctrl+r, R"`` or ``["ctrl+r", "R"]`` -> ``ctrl+r,R`` (Textual's form); bad names raise."""
    if isinstance(value, str):
        parts = value.split(",") if value.strip() != "," else [","]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise KeymapError(binding, value, "a key or a list of keys (strings) is needed")
    names = []
    for part in parts:
        name = part if part == " " else part.strip()
        name = _CHAR_NAMES.get(name, name)
        if not _KEY_NAME.fullmatch(name):
            raise KeymapError(binding, value, f"{part!r} is not a key name (e.g. \"R\", \"ctrl+r\", \"f5\", \"-\")")
        names.append(name)
    if not names:
        raise KeymapError(binding, value, "no key given")
    return ",".join(names)


def _meet(a: Key, b: Key) -> bool:
    """Both answer on one screen (``app`` keys answer everywhere)."""
    return "app" in a.screens or "app" in b.screens or bool(set(a.screens) & set(b.screens))


def with_user_keys(user: dict[str, object], table: tuple[Key, ...] = KEYS) -> tuple[Key, ...]:
    """``table`` with the keys of ``user`` (binding id -> keys); KeymapError for an unknown id, a
    bad key name, or a key that another binding on one of its screens answers too."""
    by_id = {k.id: k for k in table}
    changed: dict[str, str] = {}
    for binding, value in user.items():
        if binding not in by_id:
            raise KeymapError(binding, value, f"no binding has the id {binding!r} (ids: docs/keys.md, "
                                              "or `python -m console.keymap --ids`)")
        changed[binding] = _key_names(binding, value)
    out = tuple(replace(k, keys=changed.get(k.id, k.keys)) for k in table)
    for key in out:
        if key.id not in changed:
            continue
        for other in out:
            if other.id == key.id or not _meet(key, other):
                continue
            same = set(key.keys.split(",")) & set(other.keys.split(","))
            if same:
                raise KeymapError(key.id, user[key.id], f"{label(','.join(sorted(same)))} is already "
                                                        f"{other.id!r} ({other.description}) on the same screen")
    return out


_active: tuple[Key, ...] = KEYS


def use(user: dict[str, object]) -> tuple[Key, ...]:
    """Make ``KEYS`` with the user's keys the table help, hints and the palette read."""
    global _active
    _active = with_user_keys(user)
    return _active


def active() -> tuple[Key, ...]:
    return _active


def changed_keys() -> dict[str, str]:
    """Binding id -> keys, for the bindings the active table binds differently from ``KEYS``
    (Textual's keymap)."""
    default = {k.id: k.keys for k in KEYS}
    return {k.id: k.keys for k in _active if default.get(k.id) != k.keys}


def label(keys: str) -> str:
    return " ".join(_KEY_LABELS.get(k, k) for k in keys.split(","))


def hint(action_ids: list[str], allowed) -> str:
    """``R retry, D purge``: the keys of those actions that ``allowed(id)`` lets through here (a
    screen's ``check_action``), so that no line names a key that does nothing (read-only)."""
    by_id = {k.id: k for k in _active}
    return ", ".join(f"{label(by_id[a].keys)} {by_id[a].description.lower()}" for a in action_ids
                     if allowed(a))


def for_screen(screen: str, table: tuple[Key, ...] | None = None) -> list[Key]:
    return [k for k in (_active if table is None else table) if screen in k.screens]


def markdown() -> str:
    """docs/keys.md, generated from the table (``python -m console.keymap > docs/keys.md``)."""
    out = ["# Key bindings", "", "Generated from `console/keymap.py` by `python -m console.keymap`; do not edit.", ""]
    titles = {"app": "Everywhere", "overview": "Overview (every queue)", "queue": "Queue view (jobs of one queue)",
              "dlq": "Failures (dead letters of every queue, grouped by error)",
              "job": "Job view (one job, full screen)", "progress": "A running retry or purge",
              "help": "Help screen"}
    for screen, title in titles.items():
        keys = for_screen(screen, KEYS)
        if not keys:
            continue
        out += [f"## {title}", "", "| key | action | id (for `[keys]`) |", "|---|---|---|"]
        out += [f"| `{label(k.keys)}` | {k.description} | `{k.id}` |" for k in keys]
        out.append("")
    out += ["Keys that change a queue (Shift) ask for confirmation with a preview and are absent in",
            "read-only mode. Arrow keys, Page Up/Down and Home/End work in every list as well.",
            "One retry or purge runs at a time: pressing R, D or P again while it runs only says so; it",
            "never cancels it. `x` cancels it explicitly, after the batch in flight, and the report and",
            "the audit record say \"N of M, cancelled\".", "",
            "## Command line (`:`)", "", "| command | what it does |", "|---|---|"]
    out += [f"| `:{usage}` | {what} |" for usage, what in COMMANDS]
    out += ["", "`tab` or `→` completes (commands, queue, theme and context names), `↑` `↓` walk the history.", "",
            "## Command palette (`ctrl+p`)", "",
            "Every action of the table above is a command of the palette, by its description and key: only",
            "those that work on the screen underneath, here and now (none that change a queue in a",
            "read-only session), plus the `:` commands. Type to search, `enter` runs it.", "",
            "## Your own keys (`[keys]` in the config file)", "",
            "Bind any action to other keys by its id (the table's last column); the footer, `?`, the",
            "palette and the keys themselves follow. A value is one key or a list (`\"ctrl+r\"`,",
            "`[\"R\", \"ctrl+r\"]`; `-`, `/`, `?`, `:` may be written as themselves).",
            "`queue-console config check` reports an unknown id, a key name that is no key, and a key",
            "that another action of the same screen already answers, with the file, the id and the value.", "",
            "```toml", "[keys]", "dead_letters = \"F\"", "retry = [\"R\", \"ctrl+r\"]", "```", ""]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    import sys

    if "--ids" in sys.argv:
        print("\n".join(f"{k.id}\t{label(k.keys)}\t{k.description}" for k in KEYS))
    else:
        print(markdown(), end="")
