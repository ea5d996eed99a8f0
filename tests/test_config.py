"""Settings layering: defaults < TOML file < environment < flags; contexts; error messages."""
from __future__ import annotations

from pathlib import Path

import pytest

from console.config import DEFAULT_URL, ConfigError, Settings, load

ENV_VARS = ("QUEUE_CONSOLE_CONFIG", "QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_REFRESH", "QUEUE_CONSOLE_READ_ONLY",
            "QUEUE_CONSOLE_THEME", "QUEUE_CONSOLE_CONTEXT", "QUEUE_CONSOLE_UTC", "XDG_CONFIG_HOME")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # never read the developer's own config file (XDG_CONFIG_HOME unset, HOME elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def config_file(monkeypatch, tmp_path):
    path = tmp_path / "qc.toml"

    def write(text: str) -> Path:
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(path))
        return path

    return write


def test_defaults_without_file_env_or_flags():
    s = load({})
    assert s.urls == []
    assert s.effective_urls() == [DEFAULT_URL] == ["redis://127.0.0.1:6379/0"]
    assert s.refresh == 2.0
    assert s.read_only is False
    assert s.theme == "queue-console"
    assert s.connect_timeout == 5.0
    assert s.prefixes == []
    assert s.context is None


def test_file_overrides_defaults(config_file):
    config_file(
        'urls = ["redis://file-host:6379/1"]\n'
        "refresh = 7.5\n"
        "read_only = true\n"
        'theme = "dark-ops"\n'
        'prefixes = ["bull", "{jobs}"]\n'
        "connect_timeout = 1.5\n"
    )
    s = load({})
    assert s.urls == ["redis://file-host:6379/1"]
    assert s.refresh == 7.5
    assert s.read_only is True
    assert s.theme == "dark-ops"
    assert s.prefixes == ["bull", "{jobs}"]
    assert s.connect_timeout == 1.5


def test_env_overrides_file_and_splits_several_urls(config_file, monkeypatch):
    config_file('urls = ["redis://file-host:6379/1"]\nrefresh = 7.5\ntheme = "from-file"\n')
    monkeypatch.setenv(
        "QUEUE_CONSOLE_URL", "redis://a:6379/0, rediss://:pw@b:6380/2   unix:///tmp/r.sock,postgresql://db/jobs"
    )
    monkeypatch.setenv("QUEUE_CONSOLE_REFRESH", "0.5")
    s = load({})
    assert s.urls == ["redis://a:6379/0", "rediss://:pw@b:6380/2", "unix:///tmp/r.sock", "postgresql://db/jobs"]
    assert s.refresh == 0.5
    assert s.theme == "from-file"  # not set in the environment: the file still counts


def test_flags_override_env_and_file(config_file, monkeypatch):
    config_file('urls = ["redis://file-host:6379/1"]\nrefresh = 7.5\nread_only = false\n')
    monkeypatch.setenv("QUEUE_CONSOLE_URL", "redis://env-host:6379/0")
    monkeypatch.setenv("QUEUE_CONSOLE_REFRESH", "3")
    s = load({"urls": ["redis://flag-host:6379/4"], "refresh": 9.0, "read_only": True, "theme": None,
              "prefixes": []})
    assert s.urls == ["redis://flag-host:6379/4"]
    assert s.refresh == 9.0
    assert s.read_only is True
    # None and [] mean "flag not given": lower layers stay
    assert s.theme == "queue-console"
    assert s.prefixes == []


def test_env_read_only_and_theme(monkeypatch):
    monkeypatch.setenv("QUEUE_CONSOLE_READ_ONLY", "true")
    monkeypatch.setenv("QUEUE_CONSOLE_THEME", "nord")
    s = load({})
    assert s.read_only is True
    assert s.theme == "nord"


def test_context_from_flag_supplies_urls_and_flags(config_file, monkeypatch):
    config_file(
        'urls = ["redis://default-host:6379/0"]\n'
        "[contexts.prod]\n"
        'urls = ["redis://:secret@redis.prod:6379/0", "redis://redis.prod2:6379/0"]\n'
        "read_only = true\n"
        'prefixes = ["{prod}"]\n'
        "[contexts.staging]\n"
        'urls = ["redis://redis.staging:6379/0"]\n'
    )
    monkeypatch.setenv("QUEUE_CONSOLE_URL", "redis://env-host:6379/0")
    s = load({"context": "prod"})
    assert s.context == "prod"
    assert s.urls == ["redis://:secret@redis.prod:6379/0", "redis://redis.prod2:6379/0"]
    assert s.read_only is True
    assert s.prefixes == ["{prod}"]
    assert sorted(s.contexts) == ["prod", "staging"]

    staging = load({"context": "staging"})
    assert staging.urls == ["redis://redis.staging:6379/0"]
    assert staging.read_only is False


def test_flag_urls_beat_the_context(config_file):
    config_file('[contexts.prod]\nurls = ["redis://redis.prod:6379/0"]\nprefixes = ["p"]\n')
    s = load({"context": "prod", "urls": ["redis://flag:6379/0"], "prefixes": ["mine"]})
    assert s.urls == ["redis://flag:6379/0"]
    assert s.prefixes == ["mine"]


def test_context_from_env(config_file, monkeypatch):
    config_file('[contexts.ci]\nurls = ["redis://ci-redis:6379/5"]\n')
    monkeypatch.setenv("QUEUE_CONSOLE_CONTEXT", "ci")
    s = load({})
    assert s.urls == ["redis://ci-redis:6379/5"]


def test_unknown_context_names_it_and_the_known_ones(config_file):
    path = config_file('[contexts.prod]\nurls = ["redis://p:6379/0"]\n[contexts.dev]\nurls = []\n')
    with pytest.raises(ConfigError) as info:
        load({"context": "prdo"})
    msg = str(info.value)
    assert "'prdo'" in msg
    assert "dev, prod" in msg
    assert str(path) in msg


def test_unknown_context_without_any_defined():
    with pytest.raises(ConfigError) as info:
        load({"context": "prod"})
    assert "'prod'" in str(info.value)
    assert "none defined" in str(info.value)


def test_bad_value_in_file_names_file_key_and_value(config_file):
    path = config_file('refresh = "fast"\n')
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg
    assert "'refresh'" in msg
    assert "'fast'" in msg
    assert "\n" not in msg


def test_out_of_range_value_in_file(config_file):
    path = config_file("refresh = 0.01\n")
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg and "'refresh'" in msg and "0.01" in msg


def test_bad_value_inside_a_context_names_the_dotted_key(config_file):
    path = config_file('[contexts.prod]\nread_only = "sometimes"\n')
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg
    assert "contexts.prod.read_only" in msg
    assert "'sometimes'" in msg


def test_unknown_key_in_file_is_an_error(config_file):
    path = config_file("refersh = 3\n")
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg and "'refersh'" in msg


def test_bad_url_in_file_names_file_and_key_without_password(config_file):
    path = config_file('urls = ["ftp://:hunter2@host/x"]\n')
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg
    assert "urls" in msg
    assert "ftp" in msg
    assert "hunter2" not in msg


def test_bad_url_in_a_context_is_reported_at_load(config_file):
    path = config_file('[contexts.prod]\nurls = ["redis://:hunter2@host:notaport/0"]\n')
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg
    assert "contexts.prod.urls" in msg
    assert "hunter2" not in msg


def test_bad_env_value_names_the_environment(monkeypatch):
    monkeypatch.setenv("QUEUE_CONSOLE_REFRESH", "fast")
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert "environment" in msg
    assert "QUEUE_CONSOLE_REFRESH" in msg or "'refresh'" in msg
    assert "'fast'" in msg


def test_bad_env_url_is_an_error_without_password(monkeypatch):
    monkeypatch.setenv("QUEUE_CONSOLE_URL", "redis://:hunter2@host/notadb")
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert "environment" in msg
    assert "notadb" in msg
    assert "hunter2" not in msg


def test_bad_flag_value_names_the_command_line():
    with pytest.raises(ConfigError) as info:
        load({"refresh": 0.0})
    msg = str(info.value)
    assert "command line" in msg and "'refresh'" in msg


def test_bad_toml_names_the_file(config_file):
    path = config_file('refresh = \n[contexts.prod\nurls = "x"\n')
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg
    assert "not valid TOML" in msg


def test_missing_file_named_by_env_is_an_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(missing))
    with pytest.raises(ConfigError) as info:
        load({})
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_default_file_location_is_read_when_present(monkeypatch, tmp_path):
    home = tmp_path / "home"
    cfg = home / ".config" / "queue-console"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text("refresh = 4.25\n")
    monkeypatch.setenv("HOME", str(home))
    assert load({}).refresh == 4.25


def test_settings_model_rejects_bad_url_directly():
    with pytest.raises(ValueError):
        Settings(urls=["mysql://x"])


def test_wrong_type_for_urls_does_not_echo_the_password(config_file):
    path = config_file('urls = "redis://:hunter2@host:6379/0"\n')
    with pytest.raises(ConfigError) as info:
        load({})
    msg = str(info.value)
    assert str(path) in msg and "'urls'" in msg
    assert "redis://:***@host:6379/0" in msg
    assert "hunter2" not in msg


def test_utc_layers_file_env_flag(config_file, monkeypatch):
    assert load({}).utc is False
    config_file("utc = true\n")
    assert load({}).utc is True
    config_file("utc = false\n")
    monkeypatch.setenv("QUEUE_CONSOLE_UTC", "1")
    assert load({}).utc is True
    monkeypatch.delenv("QUEUE_CONSOLE_UTC")
    assert load({"utc": True}).utc is True and load({"utc": None}).utc is False


def test_check_file_names_an_unknown_context_and_a_bad_policy_key(tmp_path):
    from console.config import check_file

    path = tmp_path / "c.toml"
    path.write_text('context = "prod"\n[contexts.staging]\nurls = ["redis://s:6379/0"]\n')
    with pytest.raises(ConfigError, match=r"c\.toml: key 'context': unknown context 'prod' \(known: staging\)"):
        check_file(path)
    path.write_text("[policy.fairness]\nrate = \"fast\"\n")
    with pytest.raises(ConfigError, match=r"c\.toml.*rate.*fast"):
        check_file(path)
    path.write_text('utc = true\ncontext = "staging"\n[contexts.staging]\nurls = ["redis://s:6379/0"]\n')
    assert check_file(path).utc is True


def test_a_schema_flag_beats_the_context_and_the_file(config_file):
    """The CLI hands declared flags over under their config keys (``schema``), so a ``--schema``
    flag wins over the file's and the context's, as every other flag does."""
    from console.cli import _flags, build_parser

    config_file('schema = "from_file"\n[contexts.c]\nschema = "from_context"\n')
    assert load(_flags(build_parser().parse_args(["--context", "c"]))).option("schema") == "from_context"
    assert load(_flags(build_parser().parse_args(["--context", "c", "--schema", "flag"]))).option("schema") == "flag"
    assert load(_flags(build_parser().parse_args(["--schema", "flag"]))).option("schema") == "flag"
