"""Settings: defaults < config file (TOML) < environment < command-line flags.

The file is ``$QUEUE_CONSOLE_CONFIG`` or ``config.toml`` in the platform's user config directory
(platformdirs: ``$XDG_CONFIG_HOME/queue-console``, by default ``~/.config/queue-console`` on Linux;
``queue-console config path`` prints it)::

    refresh = 2.0
    read_only = true
    [contexts.prod]
    urls = ["redis://:secret@redis.prod:6379/0"]
    read_only = true

Environment: ``QUEUE_CONSOLE_URL`` (one or more URLs separated by spaces or commas),
``QUEUE_CONSOLE_READ_ONLY``, ``QUEUE_CONSOLE_REFRESH``, ``QUEUE_CONSOLE_THEME``, ``QUEUE_CONSOLE_UTC``.
Errors name the file, the key and the bad value.

The layering is this module's own (a dict merged layer by layer, each layer validated by the one
pydantic model ``Settings`` so that an error names the layer it came from); pydantic-settings is not
used and is not a dependency.
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from backends.errors import BadUrl
from backends.urls import parse, redact

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class ConfigError(ValueError):
    """A bad config file or environment value (bad usage: exit 2)."""


def _valid_urls(urls: list[str]) -> list[str]:
    for url in urls:
        parse(url)  # raises BadUrl, reported with the key
    return urls


#: connection URLs, each checked when the settings load (bad ones name their key)
Urls = Annotated[list[str], AfterValidator(_valid_urls)]


def _valid_write_url(url: str) -> str:
    if parse(url).kind != "postgres":
        raise ValueError("the write URL must be a postgresql:// URL (the primary of a hot standby)")
    return url


#: where PostgreSQL mutations go when --url is a hot standby (docs/operations.md)
WriteUrl = Annotated[str, AfterValidator(_valid_write_url)]


def _valid_keys(keys: dict[str, Any]) -> dict[str, Any]:
    from console.keymap import with_user_keys

    with_user_keys(keys)  # KeymapError, reported with its binding id and value
    return keys


class BadOption(ValueError):
    """A backend-declared config key with a value of the wrong type (names the key and value)."""

    def __init__(self, key: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.key, self.value = key, value


def _declared_keys() -> dict[str, Any]:
    """The declared options (``backends.declaration.BackendOption``) by config key."""
    from backends.registry import declared_options

    return {opt.config_key: opt for opt in declared_options().values()}


def _take_backend_options(model: type[BaseModel], data: Any) -> Any:
    """Move the config keys the backends declare (BullMQ's ``prefixes``, pg-boss's ``schema``, those
    of backends from other packages alike) into ``backend_options``, each checked against its
    declared type (``BackendOption.check``). Keys nobody declared stay where they are, so
    ``extra="forbid"`` still names them."""
    if not isinstance(data, dict):
        return data
    names = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    data = dict(data)
    taken = dict(data.pop("backend_options", None) or {})
    for key, opt in _declared_keys().items():
        if key in names or key not in data:
            continue
        value = data.pop(key)
        try:
            taken[key] = opt.check(value)
        except ValueError as exc:
            raise BadOption(key, value, str(exc)) from None
    data["backend_options"] = taken
    return data


def _is_set(value: Any) -> bool:
    """A given value (an empty list or string in a context or on the command line is none)."""
    return value is not None and value != [] and value != ""


class _BackendOptions(BaseModel):
    #: the values of the config keys the backends declare (``BackendOption.config_key`` -> value);
    #: each also reads like a field (``settings.prefixes``), or through ``option(key)``
    backend_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _declared(cls, data: Any) -> Any:
        return _take_backend_options(cls, data)

    def option(self, key: str) -> Any:
        """A declared option's value by config key (None, or [] when repeatable, when unset)."""
        if key in self.backend_options:
            return self.backend_options[key]
        opt = _declared_keys().get(key)
        if opt is None:
            raise KeyError(f"no backend declares the option {key!r}")
        return opt.unset

    def given_options(self) -> dict[str, Any]:
        """The declared options this layer sets (a context's override the top level's)."""
        return {k: v for k, v in self.backend_options.items() if _is_set(v)}

    def __getattr__(self, name: str) -> Any:
        # a declared config key reads like a field (``settings.prefixes``); "schema" is pydantic's
        # own method name, so that one is read as ``option("schema")``
        if not name.startswith("_") and name in _declared_keys():
            return self.option(name)
        return super().__getattr__(name)  # type: ignore[misc]


class Context(_BackendOptions):
    model_config = ConfigDict(extra="forbid")
    urls: Urls = Field(default_factory=list)
    read_only: bool | None = None
    backend: str | None = None
    write_url: WriteUrl | None = None
    #: the TUI's context badge colour (a colour name or #rrggbb); a context named like "prod"
    #: without one is shown white on red
    color: str | None = None


class Settings(_BackendOptions):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    urls: Urls = Field(default_factory=list)
    context: str | None = None
    contexts: dict[str, Context] = Field(default_factory=dict)
    read_only: bool = False
    theme: str = "queue-console"
    #: CLI timestamps in UTC instead of local time (both carry their offset)
    utc: bool = False
    refresh: float = Field(default=2.0, gt=0.2, le=3600)
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    op_timeout: float = Field(default=10.0, gt=0, le=600)
    backend: str | None = None
    #: PostgreSQL mutations go here instead of to the --url (a hot standby); reads stay on --url
    write_url: WriteUrl | None = None
    #: key prefix (Redis) under which the console keeps its audit records, requeue ledger and
    #: global-pause memory, on the same server as the queues, where every operator sees them
    store_prefix: str = Field(default="queue-console", min_length=1)
    #: PostgreSQL schema of those records (QUEUE_CONSOLE_STORE_SCHEMA; default: queue_console)
    store_schema: str | None = Field(default=None, min_length=1)
    #: the requeue policy: a TOML file with a [policy] table (--policy, QUEUE_CONSOLE_POLICY) ...
    policy_file: str | None = None
    #: ... or the [policy] table of the config file itself (docs/policy.md)
    policy: dict[str, Any] | None = None
    #: the user's keymap: binding id -> keys (docs/keys.md, "Your own keys"), checked against the
    #: binding table (an unknown id or a clash names the id and the value)
    keys: Annotated[dict[str, Any], AfterValidator(_valid_keys)] = Field(default_factory=dict)

    def effective_urls(self) -> list[str]:
        return self.urls or [DEFAULT_URL]


def config_path() -> Path:
    env = os.environ.get("QUEUE_CONSOLE_CONFIG")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("queue-console")) / "config.toml"


def check_file(path: Path) -> Settings:
    """Validate one config file as ``load`` would read it, and its ``[policy]`` table and the
    context it names; ConfigError names the file, key and value."""
    settings = _validate(_read_file(path, required=True), f"config file {path}")
    if settings.context and settings.context not in settings.contexts:
        known = ", ".join(sorted(settings.contexts)) or "none defined"
        raise ConfigError(f"config file {path}: key 'context': unknown context {settings.context!r} (known: {known})")
    if settings.policy is not None:
        from console.policy import policy_from_dict

        policy_from_dict({"policy": settings.policy}, str(path))  # PolicyError is a ConfigError
    return settings


def _read_file(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text (invalid byte at offset {exc.start}); "
                          "TOML files are UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror}") from None


def _env() -> dict[str, Any]:
    out: dict[str, Any] = {}
    if os.environ.get("QUEUE_CONSOLE_URL"):
        out["urls"] = [u for u in re.split(r"[\s,]+", os.environ["QUEUE_CONSOLE_URL"]) if u]
    for key in ("read_only", "refresh", "theme", "context", "store_prefix", "store_schema", "policy_file", "utc"):
        value = os.environ.get(f"QUEUE_CONSOLE_{key.upper()}") or (
            os.environ.get("QUEUE_CONSOLE_POLICY") if key == "policy_file" else None)
        if value:
            out[key] = value
    return out


def _validate(data: dict[str, Any], where: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = repr(_redacted(value)) if not isinstance(value, dict) else "a table"
        msg = err["msg"]
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), BadOption):
            bad = ctx["error"]
            key = ".".join([*(str(p) for p in err["loc"]), bad.key])
            raise ConfigError(f"{where}: key {key!r}: bad value {_redacted(bad.value)!r}: {bad}") from None
        if isinstance(ctx.get("error"), BadUrl):
            raise ConfigError(f"{where}: key {key!r}: {ctx['error']}") from None
        from console.keymap import KeymapError

        if isinstance(ctx.get("error"), KeymapError):
            bad = ctx["error"]
            raise ConfigError(f"{where}: key '{key}.{bad.binding}': bad value {bad.value!r}: {bad}") from None
        raise ConfigError(f"{where}: key {key!r}: bad value {shown}: {msg}") from None


def _redacted(value: Any) -> Any:
    """A bad value as it may be shown: URLs (even misplaced ones) without their password."""
    if isinstance(value, str) and "://" in value:
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def load(flags: dict[str, Any]) -> Settings:
    """Merge the layers; ``flags`` holds only the options given on the command line."""
    path = config_path()
    file_data = _read_file(path, required="QUEUE_CONSOLE_CONFIG" in os.environ)
    merged: dict[str, Any] = {}
    merged.update(file_data)
    _validate(merged, f"config file {path}")
    env = _env()
    merged.update(env)
    _validate(merged, "environment (QUEUE_CONSOLE_*)")
    merged.update({k: v for k, v in flags.items() if v is not None and v != []})
    settings = _validate(merged, "command line")
    if settings.context:
        ctx = settings.contexts.get(settings.context)
        if ctx is None:
            known = ", ".join(sorted(settings.contexts)) or "none defined"
            raise ConfigError(f"unknown context {settings.context!r} (known: {known}; see {path})")
        update: dict[str, Any] = {}
        if ctx.urls and not flags.get("urls"):
            update["urls"] = ctx.urls
        if ctx.read_only is not None and not flags.get("read_only"):
            update["read_only"] = ctx.read_only or settings.read_only
        if ctx.backend and not flags.get("backend"):
            update["backend"] = ctx.backend
        if ctx.write_url and not flags.get("write_url"):
            update["write_url"] = ctx.write_url
        given = {k for k, v in flags.items() if _is_set(v)}
        ctx_options = {k: v for k, v in ctx.given_options().items() if k not in given}
        if ctx_options:
            update["backend_options"] = {**settings.backend_options, **ctx_options}
        settings = settings.model_copy(update=update)
    return settings


def load_policy_for(settings: Settings):
    """The requeue policy in force: --policy/QUEUE_CONSOLE_POLICY file, else the config file's
    [policy] table, else the default (no limits). Errors name the file, key and value (exit 2)."""
    from console.policy import default_policy, load_policy, policy_from_dict

    if settings.policy_file:
        return load_policy(Path(settings.policy_file).expanduser())
    if settings.policy is not None:
        return policy_from_dict({"policy": settings.policy}, str(config_path()))
    return default_policy()
