"""A config or policy file that is not UTF-8: exit 2 naming the file (issue 9), not an internal error."""
from __future__ import annotations

import pytest

from console import cli

BAD = b'refresh = 2.0\ntheme = "caf\xe9"\n'  # Latin-1, not UTF-8


def _run(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code, capsys.readouterr().err


def test_config_file_with_invalid_utf8(tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.toml"
    path.write_bytes(BAD)
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(path))
    code, err = _run(["status", "--url", "redis://127.0.0.1:6429/0"], capsys)
    assert code == 2
    assert str(path) in err and "not UTF-8" in err
    assert "internal error" not in err and "UnicodeDecodeError" not in err


def test_policy_file_with_invalid_utf8(tmp_path, monkeypatch, capsys):
    path = tmp_path / "policy.toml"
    path.write_bytes(b"[policy]\nmax_attempts = 3\nnote = \"\xff\xfe\"\n")
    from console.config import Settings, load_policy_for

    with pytest.raises(Exception) as info:
        load_policy_for(Settings(policy_file=str(path)))
    assert str(path) in str(info.value) and "not UTF-8" in str(info.value)
    from console.config import ConfigError

    assert isinstance(info.value, ConfigError)  # the CLI maps it to exit 2
