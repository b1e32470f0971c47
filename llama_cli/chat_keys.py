"""Ctrl-C and the prompt of `llama model run`'s chat, robust to which thread the kernel picks.

A terminal's Ctrl-C is a SIGINT to the process, and the kernel hands it to any thread that does not
block it: often an anyio worker thread or one that multiprocessing's resource tracker unblocked,
which cannot interrupt an input() blocked on the main thread (the chat then ignored Ctrl-C at its
prompt until Enter). So no thread of ours waits on the terminal where a signal must reach it:

- the event loop owns SIGINT (`CtrlC.handling`): asyncio's wakeup fd wakes it whichever thread the
  signal landed on, and the press cancels what it stops now (a reply prints nothing after it);
- `read_line` reads the line (`terminal_line`) on a daemon thread and waits for it on the loop, so the loop stays free
  to hear Ctrl-C at the prompt. A read that Ctrl-C abandons is left blocked on the terminal: it is
  only abandoned when the chat ends, and a daemon thread does not hold the process's exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio


class CtrlC:
    """What a Ctrl-C stops now: a cancel scope, which the chat sets as it moves between load, prompt and reply.

    Inside `handling()` a press reaches the chat twice. Python's own handler runs on the main thread at
    its next bytecode and only counts it, so that `checkpoint()` holds the output at once; asyncio's
    handler then runs `press` from the loop (its wakeup fd wakes the loop whichever thread the kernel
    picked), which cancels the current scope.
    """

    def __init__(self) -> None:
        self._scope: Any = None
        self._ends_session = False
        self._signalled = self._pressed = 0  # presses Python's handler saw; presses the loop handled
        self.interrupted = False  # a press stopped the session itself (its load, a one-prompt run)

    def stops(self, scope: Any, *, interrupts: bool = False) -> None:
        """From now on a press cancels `scope`; `interrupts`: the run then ends as interrupted (exit 130)."""
        self._scope, self._ends_session = scope, interrupts

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """SIGINT is the chat's while inside (from the running asyncio loop, on the main thread);
        outside, Python's KeyboardInterrupt again."""
        import asyncio

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.press)
        signal.signal(signal.SIGINT, self._seen)  # in place of asyncio's no-op; its wakeup fd stays
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _seen(self, signum: int, frame: object) -> None:
        self._signalled += 1

    def press(self) -> None:
        """Cancel the current scope (from the loop)."""
        self._pressed += 1
        if self._scope is not None:
            self.interrupted = self.interrupted or self._ends_session
            self._scope.cancel()

    async def checkpoint(self) -> None:
        """Before each piece of output: raises the caller's cancellation if a press cancelled it, also
        one the loop has yet to handle (the piece came in with the Ctrl-C: the user saw ^C, not it)."""
        from anyio.lowlevel import checkpoint_if_cancelled

        while self._signalled > self._pressed:  # the loop reads its wakeup fd within an iteration or two
            await anyio.sleep(0)
        await checkpoint_if_cancelled()  # a cancel anyio has not delivered yet to a task already woken


def terminal_line(prompt: str) -> str:
    """input(prompt) as the terminal itself edits and echoes the line (its ^C, the bytes typed), on
    every install: input() hands the line to GNU readline once any module has imported it (cyclopts
    4.x does, 5.x does not), which echoes no ^C and drops a byte that is not UTF-8. EOFError at Ctrl-D."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.removesuffix("\n")


async def read_line(prompt: str) -> str | None:
    """input(prompt) without blocking the event loop; None at end of input (Ctrl-D).

    Cancellable: a cancelled read is abandoned on its daemon thread (see the module's docstring).
    """
    wake_r, wake_w = os.pipe()
    got: list[str | BaseException | None] = []

    def read() -> None:
        try:
            got.append(terminal_line(prompt))
        except EOFError:
            got.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the loop's task, which raises it
            got.append(e)
        try:
            os.write(wake_w, b"\0")
        except OSError:
            pass  # abandoned: the loop closed its end
        finally:
            os.close(wake_w)

    try:
        threading.Thread(target=read, name="chat-input", daemon=True).start()
        await anyio.wait_readable(wake_r)
    finally:
        os.close(wake_r)
    result = got[0]
    if isinstance(result, BaseException):
        raise result
    return result
