"""What the in-process CLI tests share: no developer config or environment leaks into a test
(``isolated_env``, autouse in each module that imports it), and ``run`` / ``run_async`` for one
command line."""
from __future__ import annotations

import asyncio

import pytest

ENV_NAMES = ("QUEUE_CONSOLE_URL", "QUEUE_CONSOLE_REFRESH", "QUEUE_CONSOLE_READ_ONLY", "QUEUE_CONSOLE_THEME",
             "QUEUE_CONSOLE_CONTEXT", "QUEUE_CONSOLE_UTC", "QUEUE_CONSOLE_POLICY", "QUEUE_CONSOLE_STORE_PREFIX",
             "XDG_CONFIG_HOME")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No developer config or environment leaks into a test; returns the (empty) config file the
    test may write."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    cfg = tmp_path / "empty.toml"
    cfg.write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(cfg))
    monkeypatch.setenv("HOME", str(tmp_path))
    return cfg


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """The CLI in process: (exit code, stdout, stderr)."""
    from console.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(argv))
    captured = capsys.readouterr()
    return (info.value.code or 0), captured.out, captured.err


async def run_async(capsys, *argv: str) -> tuple[int, str, str]:
    """The real CLI entry point (its own asyncio.run) on a thread beside the test's event loop."""
    from console import cli

    def run_cli() -> int:
        try:
            cli.main(list(argv))
        except SystemExit as exc:
            return exc.code
        return 0

    code = await asyncio.to_thread(run_cli)
    out, err = capsys.readouterr()
    return code, out, err
