"""Run the real queue-console in a pseudo-terminal and keep every byte it writes.

For tests that assert on what reaches a terminal (not on widget text): the app runs as a
subprocess on a pty of a fixed size, keys are typed into it, and ``output`` holds the raw bytes.
"""
from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import sys
import termios
import threading
import time


class PtyApp:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, rows: int = 50, cols: int = 180) -> None:
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        child_env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", **(env or {})}
        child_env.pop("TEXTUAL", None)
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal and stdio
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execvpe(sys.executable, [sys.executable, "-m", "console", *args], child_env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.returncode: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    @property
    def output(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    def mark(self) -> int:
        return len(self.output)

    def wait_for(self, text: str, since: int = 0, timeout: float = 60) -> None:
        """Until ``text`` (UTF-8) appears in what was written after position ``since``."""
        needle = text.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.output[since:]:
            if time.monotonic() > deadline or self.exited():
                tail = self.output[-3000:].decode("utf-8", "replace")
                self._dump()
                raise AssertionError(f"{text!r} never appeared on the terminal; last output: {tail!r}")
            time.sleep(0.05)

    def _dump(self) -> None:
        """With QC_PTY_DUMP set, everything written so far goes to that file (to debug a failure)."""
        dump = os.environ.get("QC_PTY_DUMP")
        if dump:
            with open(dump, "wb") as fh:
                fh.write(self.output)

    def press(self, keys: str | bytes) -> None:
        os.write(self.fd, keys.encode() if isinstance(keys, str) else keys)

    def exited(self) -> bool:
        if self.returncode is not None:
            return True
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        return True

    def wait_exit(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                self._dump()
                self.kill()
                raise AssertionError("the app did not exit")
            time.sleep(0.05)
        self._reader.join(5)
        return self.returncode  # type: ignore[return-value]

    def kill(self) -> None:
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -9
        try:
            os.close(self.fd)
        except OSError:
            pass
