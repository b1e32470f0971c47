"""A real Hypercorn server on a free loopback port, in a thread with its own asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from llama_rpc.serve import serve_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(make_app: Callable[[], Any], timeout: float = 20.0, stack: Any = None, port: int | None = None) -> Iterator[str]:
    """Serve `make_app()` (built inside the server's loop) on 127.0.0.1 (on `port`, or a free one); yield its base URL.

    A `stack` (an async context manager) is entered in the server's loop first and left last.
    """
    port = port or free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        async with contextlib.AsyncExitStack() as scope:
            if stack is not None:
                await scope.enter_async_context(stack)
            await serve_app(make_app(), f"127.0.0.1:{port}", shutdown_trigger=stop.wait, quiet=True)

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 -- reported to the test below
            failure.append(e)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"hypercorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if failure or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {failure}")
        time.sleep(0.02)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)  # the stack's shutdown (worker processes joined) ends inside this thread
        assert not thread.is_alive(), "the server did not shut down within 60 s"


@contextlib.contextmanager
def serving_spied(stack: Any) -> Iterator[tuple[str, Any, list[Any]]]:
    """`stack` (meta-reference inference) served over HTTP: (base URL, its worker group, every message
    the server sends to the workers, in order)."""
    from llama_rpc.http import create_app

    with running_server(lambda: create_app(stack), timeout=120, stack=stack) as url:
        group = stack.api("inference").primary.group
        sent: list[Any] = []
        send = group._send

        async def spy(msg: object) -> None:
            sent.append(msg)
            await send(msg)

        group._send = spy
        yield url, group, sent
