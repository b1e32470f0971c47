"""A CLI on a pseudo-terminal, as a user at a keyboard runs it (stdlib `pty`: line editing, Ctrl-C as SIGINT)."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time


class Terminal:
    """`python -m llama_cli ARGS` on a pty: `send` types, `expect` reads until a text appears."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the CLI, with the pty as its controlling terminal
            try:
                os.execve(sys.executable, [sys.executable, "-m", "llama_cli", *args], env or dict(os.environ))
            finally:
                os._exit(127)
        self.pid, self.fd, self.seen = pid, fd, ""
        self.status: int | None = None

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def interrupt(self) -> None:
        """Ctrl-C as the terminal delivers it: the line discipline sends SIGINT to the foreground group."""
        self.send("\x03")

    def expect(self, text: str, timeout: float = 120.0) -> str:
        """Everything read up to and including `text` (from where the last expect stopped)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} not seen; the terminal shows:\n{self.seen}")
        head, _, self.seen = self.seen.partition(text)
        return head + text

    def wait(self, timeout: float = 60.0) -> tuple[int, str]:
        """(exit status, what it printed after the last expect) once the CLI has exited.

        The CLI's own exit is what counts: its engine workers may hold the terminal open a moment longer.
        """
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.2):  # what it wrote last, as far as it is there
                    pass
                break
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"still running; the terminal shows:\n{self.seen}")
            self._read(0.2)
        os.close(self.fd)
        rest, self.seen = self.seen, ""
        return os.waitstatus_to_exitcode(status), rest

    def close(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def _read(self, timeout: float) -> bool:
        # False at EOF (the CLI exited: Linux reports EIO on the master) or when nothing came in time
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        self.seen += data.decode(errors="replace").replace("\r\n", "\n")
        return True
