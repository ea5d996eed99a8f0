"""Backends declare themselves (backends.declaration) in the ``queue_console.backends`` entry-point
group; the registry and the CLI loop over the declarations. A backend from another installed
package (a dist-info on sys.path, as pip leaves it) is found, detected and opened next to BullMQ on
a real Redis, and its declared flag is in --help; options arrive through the declaration."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
from backends.contract import Capabilities, Discovery, QueueRef, Reader
from backends.declaration import BackendDeclaration, BackendOption


class FakeReader(Reader):
    backend = "fakeq"
    capabilities = Capabilities()

    def __init__(self, url, marker):
        self.url, self.marker = url, marker

    async def discover(self):
        return Discovery(queues=[QueueRef(connection=self.url.redacted, backend="fakeq", namespace=self.marker,
                                          name="only")])

    async def statuses(self, queues):
        return []

    async def page(self, queue, state, cursor=None, limit=50):
        raise NotImplementedError

    async def job(self, queue, job_id):
        return None

    async def close(self):
        pass


async def _open(url, options):
    return FakeReader(url, options.fakeq_marker)


async def _detect(first, url, options):
    return bool(await first.client.exists(options.fakeq_marker))


MARK = BackendOption(flag="--fakeq-marker", dest="fakeq_marker", config_key="fakeq_marker",
                     help="the key whose presence says fakeq is here")
DECLARATION = BackendDeclaration(name="fakeq", url_kinds=("redis",), open=_open, detect=_detect, options=(MARK,),
                                 order=20)
'''

SCRIPT = '''
import asyncio, sys
from backends.registry import ConnectOptions, backend_names, declarations, open_readers

async def main(url, marker):
    options = ConnectOptions(prefixes=[marker], extra={"fakeq_marker": marker})
    readers = await open_readers(url, options)
    try:
        print("READERS", [r.backend for r in readers])
        for r in readers[1:]:
            print("QUEUES", [q.name for q in (await r.discover()).queues])
    finally:
        for r in readers:
            await r.close()
    print("NAMES", backend_names("redis"), backend_names("postgres"))

asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


def _plugin_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "qc_fakeq.py").write_text(PLUGIN)
    info = tmp_path / "qc_fakeq-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: qc-fakeq\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[queue_console.backends]\nfakeq = qc_fakeq:DECLARATION\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}


def test_a_backend_from_another_package_is_declared_detected_and_opened(tmp_path, redis_url, prefix):
    import redis

    env = _plugin_env(tmp_path)
    marker = f"{prefix}:fakeq"
    run = [sys.executable, "-c", SCRIPT, redis_url, marker]
    absent = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert absent.returncode == 0, absent.stderr
    assert "READERS ['bullmq']" in absent.stdout  # not detected: not opened
    assert "NAMES ('bullmq', 'gello', 'fakeq') ('pgboss', 'gello', 'bullmq-postgres')" in absent.stdout, absent.stdout
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(marker, "1")
        present = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        client.delete(marker)
        client.close()
    assert present.returncode == 0, present.stderr
    assert "READERS ['bullmq', 'fakeq']" in present.stdout and "QUEUES ['only']" in present.stdout, present.stdout


def test_declared_flags_and_backend_names_reach_the_cli(tmp_path):
    env = _plugin_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "console.cli", "status", "--help"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--fakeq-marker" in proc.stdout and "fakeq is here" in proc.stdout
    assert "{bullmq,pgboss,gello,bullmq-postgres,fakeq}" in proc.stdout.replace("\n", "").replace(" ", ""), proc.stdout
    # --prefix is declared by BullMQ and by Gello: one flag, both helps
    flat = " ".join(proc.stdout.split())
    assert "BullMQ key prefix to look in" in flat and "with --backend gello: Gello's key prefix" in flat, flat


OPTIONS_SCRIPT = '''
import asyncio, json, sys
from console.cli import _flags, build_parser
from console.config import load
from console.connections import connect_options
from backends.registry import open_readers

async def main(argv):
    options = connect_options(load(_flags(build_parser().parse_args(argv))))
    readers = await open_readers(options_url, options)
    try:
        print("OPTION", json.dumps(options.fakeq_marker), "READERS", [r.backend for r in readers])
    finally:
        for r in readers:
            await r.close()

options_url = sys.argv[1]
asyncio.run(main(sys.argv[2:]))
'''


def test_an_add_on_backend_option_works_as_flag_config_key_and_context_key(tmp_path, redis_url, prefix):
    """The plugin's ``--fakeq-marker`` / ``fakeq_marker`` is declared only in its package: it is a
    CLI flag, a top-level config key and a context key, reaches ConnectOptions, and its backend is
    detected with it; a key nobody declared is still refused, naming the key."""
    import redis

    env = _plugin_env(tmp_path)
    marker = f"{prefix}:fakeq-opt"
    config = tmp_path / "config.toml"
    config.write_text(f'fakeq_marker = "{marker}-top"\n[contexts.other]\nfakeq_marker = "{marker}"\n')
    env["QUEUE_CONSOLE_CONFIG"] = str(config)

    def run(*argv: str) -> str:
        proc = subprocess.run([sys.executable, "-c", OPTIONS_SCRIPT, redis_url, "--url", redis_url, *argv], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    client = redis.Redis.from_url(redis_url)
    try:
        client.set(marker, "1")
        assert f'OPTION "{marker}-top" READERS [\'bullmq\']' in run()  # the config file's top level
        assert f'OPTION "{marker}" READERS [\'bullmq\', \'fakeq\']' in run("--context", "other")  # a context
        # the flag beats the context
        assert f'OPTION "{marker}-flag" READERS [\'bullmq\']' in run("--context", "other", "--fakeq-marker",
                                                                        f"{marker}-flag")
        assert f'OPTION "{marker}" READERS [\'bullmq\', \'fakeq\']' in run("--fakeq-marker", marker)
    finally:
        client.delete(marker)
        client.close()
    config.write_text("fakeq_marker = 3\n")
    bad = subprocess.run([sys.executable, "-m", "console.cli", "config", "check"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "key 'fakeq_marker': bad value 3: expected a string" in bad.stderr, bad.stderr
    config.write_text('fakeq_markr = "x"\n')
    typo = subprocess.run([sys.executable, "-m", "console.cli", "config", "check"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert typo.returncode == 2 and "fakeq_markr" in typo.stderr, typo.stderr


def test_store_schema_comes_from_the_console_settings_not_the_backend(monkeypatch, tmp_path):
    from backends.pgboss.reader import PgBossReader
    from console.config import load
    from console.connections import connect_options

    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("QUEUE_CONSOLE_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("QUEUE_CONSOLE_STORE_SCHEMA", "qc_elsewhere")
    assert connect_options(load({})).store_schema == "qc_elsewhere"
    # inside backends/ the environment is not read: a reader without the option uses the default
    assert PgBossReader(None, None).writer._store_schema == "queue_console"
