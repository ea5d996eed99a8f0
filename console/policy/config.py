"""The requeue policy as configured: TOML -> validated pydantic models.

Pure: ``load_policy`` reads one file; everything else works on data. Errors name the file, the
key path and the bad value, e.g.::

    policy.toml: key 'policy.budgets.per_job': bad value -1: must be >= 0

See docs/policy.md for the reference.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from backends.contract import QueueRef
from console.config import ConfigError

FailureClassName = Literal["transient", "permanent", "fatal"]

#: the word that turns an optional limit off (TOML has no null), e.g. ``per_job = "off"``
OFF = "off"

#: failure reasons are matched on at most this many leading characters (stack traces can be huge)
REASON_MATCH_CHARS = 8192


class PolicyError(ConfigError):
    """A bad policy file: names the source, the key path and the bad value (exit 2 in the CLI)."""

    def __init__(self, message: str, *, source: str = "", key: str | None = None, value: Any = None):
        super().__init__(message)
        self.source = source
        self.key = key
        self.value = value


# --------------------------------------------------------------------------------------- durations

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_HELP = "not a duration: use a number of seconds or e.g. 500ms, 30s, 5m, 1h30m, 7d"


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as ``"1h30m"``, ``"500ms"``, ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError(_DURATION_HELP)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        sign = 1.0
        if text.startswith("-"):
            sign, text = -1.0, text[1:].strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, total = 0, 0.0
            for m in _DURATION_PART.finditer(text):
                if m.start() != pos and text[pos : m.start()].strip():
                    raise ValueError(_DURATION_HELP) from None
                total += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(_DURATION_HELP) from None
            seconds = total
        seconds *= sign
    else:
        raise ValueError(_DURATION_HELP)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("must be a finite duration")
    return seconds


def _off(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() == OFF else value


def _duration_or_off(value: Any) -> Any:
    value = _off(value)
    return None if value is None else parse_duration(value)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
OptDuration = Annotated[float | None, BeforeValidator(_duration_or_off)]
OptCount = Annotated[int | None, BeforeValidator(_off), BeforeValidator(_no_bool)]
Number = Annotated[float, BeforeValidator(_no_bool)]


def format_duration(seconds: float | None) -> str:
    """``90`` -> ``"1m30s"``; stable and short, for rendering."""
    if seconds is None:
        return OFF
    ms = int(round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        s = ms / 1000
        return f"{s:g}s"
    total = ms // 1000
    d, rem = divmod(total, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
    return "".join(f"{n}{u}" for n, u in parts if n) or "0s"


# --------------------------------------------------------------------------------------- sections


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Budgets(_Section):
    """Retry budgets. ``None`` (or ``"off"`` in TOML) means no limit."""

    #: max manual requeues of one job (counted from the ledger, within ``per_job_window`` if set)
    per_job: OptCount = Field(default=None, ge=0)
    #: only ledger entries younger than this count towards ``per_job`` (None: all of them)
    per_job_window: OptDuration = Field(default=None, gt=0)
    #: max requeues of one queue in any window of ``window`` (ledger + this plan)
    per_queue: OptCount = Field(default=None, ge=0)
    window: Duration = Field(default=3600.0, gt=0)


class Fairness(_Section):
    """Interleaving and pacing of a bulk requeue."""

    #: max requeues per second per queue (None: no limit); consecutive starts are >= 1/rate apart
    rate: Annotated[float | None, BeforeValidator(_off), BeforeValidator(_no_bool)] = Field(
        default=None, gt=0, le=1000
    )
    #: dotted path into the job's data (e.g. ``tenant.id``): interleave by its value within a queue
    key: Annotated[str | None, BeforeValidator(_off)] = None

    @field_validator("key")
    @classmethod
    def _valid_key(cls, key: str | None) -> str | None:
        if key is not None and (not key or any(not part for part in key.split("."))):
            raise ValueError("must be a dotted path such as tenant.id (no empty parts)")
        return key


class Timeouts(_Section):
    """What to apply on requeue, and how old a failure may be."""

    #: how long the requeued job may run (pg-boss expire_in/expire_seconds); where supported
    job_timeout: OptDuration = Field(default=None, gt=0)
    #: keep the requeued job at least this long after its start time (pg-boss keep_until)
    retention: OptDuration = Field(default=None, gt=0)
    #: failures older than this are refused unless forced
    max_age: OptDuration = Field(default=None, gt=0)


class Backoff(_Section):
    """Capped exponential backoff with jitter for repeated manual requeues of the same job."""

    #: first delay (0: no backoff)
    base: Duration = Field(default=0.0, ge=0)
    factor: Number = Field(default=2.0, ge=1, le=1000)
    cap: Duration = Field(default=3600.0, ge=0)
    #: fraction of the delay taken off at random: 0 none, 0.5 "equal jitter", 1 "full jitter"
    jitter: Number = Field(default=0.0, ge=0, le=1)
    #: backoff starts once the count reaches this (1: the first manual requeue is immediate)
    after: Annotated[int, BeforeValidator(_no_bool)] = Field(default=1, ge=0)
    #: what the exponent counts: earlier manual requeues of the job (ledger) or its attempts
    count: Literal["requeues", "attempts"] = "requeues"

    @field_validator("cap")
    @classmethod
    def _cap_covers_base(cls, cap: float, info: ValidationInfo) -> float:
        base = info.data.get("base")
        if base is not None and cap < base:
            raise ValueError(f"cap ({format_duration(cap)}) must be >= base ({format_duration(base)})")
        return cap


class Rules(_Section):
    """The effective rules for one queue: the defaults with that queue's overrides applied."""

    #: a job that would start later than now + max_delay is refused (None: no limit)
    max_delay: OptDuration = Field(default=None, ge=0)
    budgets: Budgets = Budgets()
    fairness: Fairness = Fairness()
    timeouts: Timeouts = Timeouts()
    backoff: Backoff = Backoff()


class QueueOverride(_Section):
    """``[policy.queues."<name>"]``: any subset of the rules; unset keys inherit the defaults."""

    max_delay: OptDuration = Field(default=None, ge=0)
    budgets: Budgets | None = None
    fairness: Fairness | None = None
    timeouts: Timeouts | None = None
    backoff: Backoff | None = None


class FailureClass(_Section):
    """``[[policy.failure_classes]]``: a regex over the failure reason -> a class. First match wins."""

    pattern: str
    class_: FailureClassName = Field(alias="class")
    #: limit to these queues (``name`` or ``backend:name``); None: every queue
    queues: list[str] | None = None

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @field_validator("queues")
    @classmethod
    def _non_empty(cls, queues: list[str] | None) -> list[str] | None:
        if queues is not None and any(not q.strip() for q in queues):
            raise ValueError("queue names must not be empty")
        return queues

    def applies_to(self, queue: QueueRef) -> bool:
        return self.queues is None or queue.name in self.queues or queue.qualified in self.queues


_SECTIONS = ("budgets", "fairness", "timeouts", "backoff")


class Policy(_Section):
    """The whole ``[policy]`` table."""

    max_delay: OptDuration = Field(default=None, ge=0)
    budgets: Budgets = Budgets()
    fairness: Fairness = Fairness()
    timeouts: Timeouts = Timeouts()
    backoff: Backoff = Backoff()
    queues: dict[str, QueueOverride] = Field(default_factory=dict)
    failure_classes: list[FailureClass] = Field(default_factory=list)

    _source: str = PrivateAttr(default="(defaults)")
    _rules: dict[str, Rules] = PrivateAttr(default_factory=dict)
    _compiled: list[re.Pattern[str]] = PrivateAttr(default_factory=list)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, queues: dict[str, QueueOverride]) -> dict[str, QueueOverride]:
        for name in queues:
            if not name.strip():
                raise ValueError("queue names must not be empty")
        return queues

    def model_post_init(self, _context: Any) -> None:
        self._compiled = [re.compile(fc.pattern) for fc in self.failure_classes]
        defaults = Rules(
            max_delay=self.max_delay,
            budgets=self.budgets,
            fairness=self.fairness,
            timeouts=self.timeouts,
            backoff=self.backoff,
        )
        self._rules = {"": defaults}
        for name, override in self.queues.items():
            self._rules[name] = _merge(defaults, override, name)

    @property
    def source(self) -> str:
        return self._source

    def rules_for(self, queue: QueueRef) -> Rules:
        """Overrides for ``backend:name`` win over ``name``, which win over the defaults."""
        rules = self._rules
        return rules.get(queue.qualified) or rules.get(queue.name) or rules[""]

    def classify(self, queue: QueueRef, reason: str | None) -> tuple[FailureClassName, str | None]:
        """The failure class of a reason and the pattern that matched (None: default transient)."""
        text = (reason or "")[:REASON_MATCH_CHARS]
        for fc, rx in zip(self.failure_classes, self._compiled):
            if fc.applies_to(queue) and rx.search(text):
                return fc.class_, fc.pattern
        return "transient", None

    def ledger_retention(self) -> float | None:
        """Seconds of ledger history (before now) the rules look at; None: all of it, because a
        per-job budget or a requeue-counting backoff has no ``per_job_window``. Entries due to
        start in the future are always needed."""
        longest = 0.0
        for rules in self._rules.values():
            b = rules.budgets
            if b.per_job is not None or rules.backoff.count == "requeues" and rules.backoff.base > 0:
                if b.per_job_window is None:
                    return None
                longest = max(longest, b.per_job_window)
            if b.per_queue is not None:
                longest = max(longest, b.window)
            if rules.fairness.rate is not None:
                longest = max(longest, 1.0 / rules.fairness.rate)
        return longest


def _merge(defaults: Rules, override: QueueOverride, name: str) -> Rules:
    update: dict[str, Any] = {}
    if "max_delay" in override.model_fields_set:
        update["max_delay"] = override.max_delay
    for section in _SECTIONS:
        part = getattr(override, section)
        if part is None:
            continue
        base = getattr(defaults, section)
        merged = base.model_dump(by_alias=True)
        merged.update(part.model_dump(include=part.model_fields_set, by_alias=True))
        try:
            update[section] = type(base).model_validate(merged)
        except ValidationError as exc:
            # e.g. an overridden cap below the inherited base: report it at the queue's section
            raise _Located(("queues", name, section), exc) from None
    return defaults.model_copy(update=update)


class _Located(Exception):
    def __init__(self, prefix: tuple[Any, ...], exc: ValidationError):
        self.prefix = prefix
        self.exc = exc


# --------------------------------------------------------------------------------------- loading

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_OWN_KEYS = set(Policy.model_fields)


def format_key(loc: tuple[Any, ...]) -> str:
    """``('policy', 'queues', 'bullmq:a', 'budgets')`` -> ``policy.queues."bullmq:a".budgets``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        seg = text if _BARE_KEY.match(text) else json.dumps(text)
        out += ("." if out else "") + seg
    return out


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound:g}" if isinstance(bound, (int, float)) else f"must be {op} {bound}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("string_type",):
        return "must be a string"
    if kind in ("list_type",):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a table"
    if kind == "value_error":
        error = ctx.get("error")
        return str(error) if error is not None else err["msg"].removeprefix("Value error, ")
    return err["msg"]


_NOTHING = object()


def _raw_at(data: Any, loc: tuple[Any, ...]) -> Any:
    """The value as written in the file at ``loc`` (so '-5s' is shown, not -5.0), if it is there."""
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return _NOTHING
    return data


def _raise(source: str, loc: tuple[Any, ...], err: dict[str, Any], raw: Any = _NOTHING, note: str = "") -> None:
    key = format_key(loc) or "policy"
    value = err.get("input") if raw is _NOTHING else raw
    missing = err.get("type") == "missing"
    msg = _message(err) + note
    text = f"{source}: key {key!r}: {msg}" if missing else f"{source}: key {key!r}: bad value {_shown(value)}: {msg}"
    raise PolicyError(text, source=source, key=key, value=None if missing else value)


def policy_from_dict(data: dict[str, Any], source: str) -> Policy:
    """Validate a parsed TOML document (its ``[policy]`` table; other top-level keys are ignored
    so the table may live in the main config file). A missing table gives the default policy."""
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a TOML document (a table)", source=source)
    stray = sorted(k for k in data if k in _OWN_KEYS and k != "policy")
    if stray:
        key = stray[0]
        raise PolicyError(
            f"{source}: key {key!r}: belongs under [policy] (write [policy.{key}] or policy.{key} = ...)",
            source=source, key=key, value=data[key],
        )
    table = data.get("policy", {})
    if not isinstance(table, dict):
        _raise(source, ("policy",), {"type": "dict_type", "input": table, "msg": ""})
    try:
        policy = Policy.model_validate(table)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ("policy", *err["loc"])
        _raise(source, loc, err, _raw_at(data, loc))
    except _Located as located:
        err = located.exc.errors()[0]
        loc = ("policy", *located.prefix, *err["loc"])
        raw = _raw_at(data, loc)
        note = ""
        if raw is _NOTHING:
            raw = _raw_at(data, ("policy", located.prefix[-1], *err["loc"]))
            note = f" (value inherited from [policy.{located.prefix[-1]}])"
        _raise(source, loc, err, raw, note)
    policy._source = source
    return policy


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file. Raises PolicyError (a ConfigError) with file, key, value."""
    source = str(path)
    try:
        with Path(path).expanduser().open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(f"{source}: policy file does not exist", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}", source=source) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{source}: not UTF-8 text (invalid byte at offset {exc.start}); TOML files are UTF-8",
                          source=source) from None
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read: {exc.strerror}", source=source) from None
    return policy_from_dict(data, source)


def policy_from_toml(text: str, source: str = "(string)") -> Policy:
    """Validate policy TOML given as text (tests, previews of an edited file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}", source=source) from None
    return policy_from_dict(data, source)


def default_policy() -> Policy:
    """No limits, no classes, no backoff: everything selected is retried now (duplicates refused)."""
    return Policy()
