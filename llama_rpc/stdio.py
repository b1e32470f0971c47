"""Newline-delimited framing over byte streams, and the process's own stdin/stdout as such streams.

MCP's stdio transport: one JSON message per line, UTF-8, `\\n` between messages, no embedded
newlines, nothing but protocol on stdout. The framing works on any pair of streams with

    async receive() -> bytes    (raises anyio.EndOfStream at the end)
    async send(bytes) -> None

so tests inject anyio memory streams; `process_stdio()` gives the real fds. It also points fd 1 at
stderr for the rest of the process: a stray `print()`, a C library or a spawned worker process
then writes to stderr, and only the protocol writer holds the real stdout.

Non-goals: no Content-Length (LSP) framing, no batching of JSON-RPC arrays, no Windows consoles.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import AsyncIterator
from typing import Any, Protocol

import anyio

MAX_LINE_BYTES = 16 * 1024 * 1024  # as the HTTP body limit; a longer line is answered, not buffered
READ_SIZE = 64 * 1024
PIPE_BUF = 4096  # a writable pipe has room for this much (POSIX: PIPE_BUF >= 512; Linux: 4096)


class TooLong(bytes):
    """Stands in for a line over the limit (its head, so a log can show what it was)."""


class Receiver(Protocol):
    async def receive(self) -> bytes: ...


class Sender(Protocol):
    async def send(self, item: bytes) -> None: ...


async def read_lines(stream: Receiver, max_line: int = MAX_LINE_BYTES) -> AsyncIterator[bytes]:
    """Each line of `stream` without its `\\n` (a `\\r` before it is dropped too); blank lines skipped.

    A line longer than `max_line` is skipped to its end and yielded once as a `TooLong`. A last
    line without `\\n` before the end of the stream still counts.
    """
    buffer = bytearray()
    skipping = False  # inside an over-long line: drop bytes until its newline
    while True:
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            break
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buffer += data[start:]
                    if len(buffer) > max_line:
                        yield TooLong(bytes(buffer[:200]))
                        buffer.clear()
                        skipping = True
                break
            if skipping:
                skipping = False
            else:
                buffer += data[start:end]
                line = bytes(buffer).rstrip(b"\r")
                buffer.clear()
                if len(line) > max_line:
                    yield TooLong(line[:200])
                elif line.strip():
                    yield line
            start = end + 1
    if not skipping and bytes(buffer).strip():
        yield bytes(buffer)


class FdReceiver:
    """Reads a file descriptor in a worker thread (works under asyncio and trio alike)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def receive(self) -> bytes:
        # abandon_on_cancel: a read blocked on a silent peer must not hold up shutdown.
        data = await anyio.to_thread.run_sync(os.read, self.fd, READ_SIZE, abandon_on_cancel=True)
        if not data:
            raise anyio.EndOfStream
        return data


class FdSender:
    """Writes whole buffers to a file descriptor in a worker thread; one writer at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = anyio.Lock()

    async def send(self, item: bytes) -> None:
        async with self._lock:
            if len(item) <= PIPE_BUF and self._writable():  # a pipe with room: no thread hop
                item = item[os.write(self.fd, item) :]
            if item:
                await anyio.to_thread.run_sync(self._write_all, item)

    def _writable(self) -> bool:
        try:
            return bool(select.select([], [self.fd], [], 0)[1])
        except (OSError, ValueError):
            return False

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


@contextlib.contextmanager
def process_stdio() -> Any:
    """(receiver, sender) over this process's stdin and stdout; fd 1 is stderr until the end.

    The protocol keeps a private duplicate of the real stdout (not inherited by child processes);
    fd 1 and `sys.stdout` become stderr, so nothing but protocol ever reaches the client.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)  # non-inheritable: worker processes never see it
    saved_stdout = sys.stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield FdReceiver(0), FdSender(protocol_fd)
    finally:
        sys.stdout = saved_stdout
        os.dup2(protocol_fd, 1)
        os.close(protocol_fd)
