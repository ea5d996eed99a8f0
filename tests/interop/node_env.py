"""Node.js for the interop tests: find ``node``/``npm``, install the pinned BullMQ packages once per
session, and run ``fixture.js`` as a child process that is always terminated.

Skips are loud: the reason starts with ``INTEROP SKIPPED:`` and is also issued as a warning (so it
shows in pytest's warnings summary even without ``-rs``). When the ``CI`` environment variable is
set (``CI=true``), a missing Node/npm or a failed ``npm ci`` FAILS the test instead: CI must not
pass by silently not testing interop.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

INTEROP_DIR = Path(__file__).resolve().parent
FIXTURE_JS = INTEROP_DIR / "fixture.js"
PACKAGE_LOCK = INTEROP_DIR / "package-lock.json"
NODE_MODULES = INTEROP_DIR / "node_modules"
#: written after a successful ``npm ci``: sha256 of package-lock.json and the node version
STAMP = NODE_MODULES / ".queue-console-npm-ci.stamp"
#: the packages fixture.js requires, with the versions package.json pins
PINNED = {"bullmq": "6.7.0", "bullmq5": "5.81.5", "bullmq4": "4.18.3"}
MIN_NODE_MAJOR = 16
NPM_CI_TIMEOUT_S = 300


class InteropSkipWarning(UserWarning):
    """Issued with every interop skip, so that skipping never goes unnoticed."""


@dataclass(frozen=True)
class NodeEnv:
    node: str
    npm: str
    node_version: str
    directory: Path = INTEROP_DIR


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip loudly, or fail when running in CI. Never returns."""
    if in_ci():
        pytest.fail(f"INTEROP FAILED (CI is set, so interop tests may not be skipped): {reason}", pytrace=False)
    message = f"INTEROP SKIPPED: {reason}"
    warnings.warn(message, InteropSkipWarning, stacklevel=2)
    pytest.skip(message)


# The outcome of the one check per session: a NodeEnv, or the reason it is unavailable.
_SESSION: NodeEnv | str | None = None


def require_node() -> NodeEnv:
    """The Node toolchain with ``node_modules`` installed from package-lock.json, or skip/fail."""
    global _SESSION
    if _SESSION is None:
        try:
            _SESSION = _prepare()
        except _Unavailable as exc:
            _SESSION = str(exc)
    if isinstance(_SESSION, str):
        unavailable(_SESSION)
    assert isinstance(_SESSION, NodeEnv)
    return _SESSION


class _Unavailable(Exception):
    pass


def _prepare() -> NodeEnv:
    node = os.environ.get("QC_NODE") or shutil.which("node")
    npm = os.environ.get("QC_NPM") or shutil.which("npm")
    if not node:
        raise _Unavailable("`node` was not found on PATH (install Node.js >= 16, or set QC_NODE)")
    if not npm:
        raise _Unavailable("`npm` was not found on PATH (install npm, or set QC_NPM)")
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise _Unavailable(f"`{node} --version` failed: {exc}") from exc
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        raise _Unavailable(f"cannot read the Node.js version from {version!r}") from None
    if major < MIN_NODE_MAJOR:
        raise _Unavailable(f"Node.js {version} is too old (BullMQ needs >= {MIN_NODE_MAJOR})")
    if not PACKAGE_LOCK.exists():
        raise _Unavailable(f"{PACKAGE_LOCK} is missing")
    env = NodeEnv(node=node, npm=npm, node_version=version)
    _ensure_node_modules(env)
    return env


def _wanted_stamp(env: NodeEnv) -> str:
    digest = hashlib.sha256(PACKAGE_LOCK.read_bytes()).hexdigest()
    return f"{digest} node {env.node_version}\n"


def _installed_ok(env: NodeEnv) -> bool:
    try:
        if STAMP.read_text() != _wanted_stamp(env):
            return False
        for name, version in PINNED.items():
            manifest = json.loads((NODE_MODULES / name / "package.json").read_text())
            if manifest.get("version") != version:
                return False
    except (OSError, ValueError):
        return False
    return True


def _ensure_node_modules(env: NodeEnv) -> None:
    """``npm ci`` when node_modules is missing or was installed from another package-lock.json.

    A file lock serialises concurrent sessions (e.g. pytest-xdist workers) on one checkout.
    """
    if _installed_ok(env):
        return
    lock_name = "qc-interop-npm-" + hashlib.sha1(str(INTEROP_DIR).encode()).hexdigest()[:12] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed_ok(env):
                return
            cmd = [env.npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
            try:
                done = subprocess.run(cmd, cwd=INTEROP_DIR, capture_output=True, text=True, timeout=NPM_CI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise _Unavailable(f"`npm ci` in {INTEROP_DIR} took longer than {NPM_CI_TIMEOUT_S} s") from None
            except OSError as exc:
                raise _Unavailable(f"`npm ci` in {INTEROP_DIR} could not start: {exc}") from exc
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
                raise _Unavailable(f"`npm ci` in {INTEROP_DIR} failed (exit {done.returncode}):\n{tail}")
            if not all((NODE_MODULES / name / "package.json").exists() for name in PINNED):
                raise _Unavailable(f"`npm ci` in {INTEROP_DIR} did not install {', '.join(PINNED)}")
            STAMP.write_text(_wanted_stamp(env))
            if not _installed_ok(env):
                raise _Unavailable(f"node_modules in {INTEROP_DIR} does not hold the pinned versions {PINNED}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class FixtureError(AssertionError):
    pass


class NodeFixture:
    """``node fixture.js <redis-url> <prefix> <base> <lib>``: start, read its JSON line, stop.

    The child keeps a worker holding the active job until :meth:`stop` closes its stdin; ``stop``
    always ends the child (SIGTERM, then SIGKILL) and is safe to call more than once.
    """

    def __init__(self, env: NodeEnv, redis_url: str, prefix: str, base: str, lib: str) -> None:
        self.env = env
        self.args = [env.node, str(FIXTURE_JS), redis_url, prefix, base, lib]
        self.proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile()

    def start(self, timeout_s: float = 45.0) -> dict:
        self.proc = subprocess.Popen(
            self.args, cwd=INTEROP_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            bufsize=0,
        )
        line = self._read_line(timeout_s)
        try:
            return json.loads(line)
        except ValueError as exc:
            raise FixtureError(f"fixture.js printed no JSON: {line[:500]!r}{self._stderr_tail()}") from exc

    def _read_line(self, timeout_s: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        buf = bytearray()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FixtureError(f"fixture.js wrote no JSON line within {timeout_s:g} s{self._stderr_tail()}")
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    code = self.proc.wait(timeout=5)
                    raise FixtureError(f"fixture.js exited with code {code} before printing its JSON{self._stderr_tail()}")
                buf.extend(chunk)
        return bytes(buf.split(b"\n", 1)[0])

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"\n--- fixture.js stderr ---\n{text[-4000:]}" if text else ""

    def stop(self, grace_s: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(b"done\n")
                    proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=5)
        finally:
            if proc.poll() is None:  # interrupted while waiting: never leave the child behind
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            self._stderr.close()
            self.proc = None


# ---------------------------------------------------------------------------- other package dirs
# (added for pg-boss: tests/interop/pgboss has its own package.json and package-lock.json; the
# functions above keep serving tests/interop itself, unchanged)
_DIR_SESSIONS: dict[Path, NodeEnv | str] = {}


def require_node_dir(directory: Path, pinned: dict[str, str]) -> NodeEnv:
    """Node with ``directory/node_modules`` installed by ``npm ci`` from its package-lock.json (once
    per session, again when the lock file or Node changed), or a loud skip / CI failure."""
    directory = Path(directory).resolve()
    if directory not in _DIR_SESSIONS:
        try:
            _DIR_SESSIONS[directory] = _prepare_dir(directory, pinned)
        except _Unavailable as exc:
            _DIR_SESSIONS[directory] = str(exc)
    got = _DIR_SESSIONS[directory]
    if isinstance(got, str):
        unavailable(got)
    assert isinstance(got, NodeEnv)
    return got


def _prepare_dir(directory: Path, pinned: dict[str, str]) -> NodeEnv:
    node = os.environ.get("QC_NODE") or shutil.which("node")
    npm = os.environ.get("QC_NPM") or shutil.which("npm")
    if not node:
        raise _Unavailable("`node` was not found on PATH (install Node.js >= 18, or set QC_NODE)")
    if not npm:
        raise _Unavailable("`npm` was not found on PATH (install npm, or set QC_NPM)")
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise _Unavailable(f"cannot run `{node} --version`: {exc}") from exc
    if major < 18:
        raise _Unavailable(f"Node.js {version} is too old (pg-boss 12 needs >= 18)")
    lock_file = directory / "package-lock.json"
    if not lock_file.exists():
        raise _Unavailable(f"{lock_file} is missing")
    env = NodeEnv(node=node, npm=npm, node_version=version, directory=directory)
    modules = directory / "node_modules"
    stamp = modules / ".queue-console-npm-ci.stamp"
    wanted = f"{hashlib.sha256(lock_file.read_bytes()).hexdigest()} node {version}\n"

    def ok() -> bool:
        try:
            if stamp.read_text() != wanted:
                return False
            return all(json.loads((modules / name / "package.json").read_text()).get("version") == v
                       for name, v in pinned.items())
        except (OSError, ValueError):
            return False

    if ok():
        return env
    lock_name = "qc-interop-npm-" + hashlib.sha1(str(directory).encode()).hexdigest()[:12] + ".lock"
    with open(Path(tempfile.gettempdir()) / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if ok():
                return env
            cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
            try:
                done = subprocess.run(cmd, cwd=directory, capture_output=True, text=True, timeout=NPM_CI_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise _Unavailable(f"`npm ci` in {directory} took longer than {NPM_CI_TIMEOUT_S} s") from None
            except OSError as exc:
                raise _Unavailable(f"`npm ci` in {directory} could not start: {exc}") from exc
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-15:])
                raise _Unavailable(f"`npm ci` in {directory} failed (exit {done.returncode}):\n{tail}")
            stamp.write_text(wanted)
            if not ok():
                raise _Unavailable(f"node_modules in {directory} does not hold the pinned versions {pinned}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return env
