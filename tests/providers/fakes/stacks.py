"""A real Stack served over HTTP on a loopback port (tests/rpc/server.py's thread and loop), started
and stopped with the server, as `llama stack run` does it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rpc.server import running_server

from llama_core.config import RunConfig
from llama_core.stack import Stack
from llama_rpc.http import create_app


def stack_app(config: RunConfig) -> Any:
    """The Quart app of `config`'s Stack, entered before serving and closed after."""
    stack = Stack.from_config(config)
    app = create_app(stack)

    async def start() -> None:
        await stack.__aenter__()

    async def stop() -> None:
        await stack.__aexit__(None, None, None)

    app.before_serving(start)
    app.after_serving(stop)
    return app


@contextlib.contextmanager
def running_stack(config: RunConfig, timeout: float = 60.0) -> Iterator[str]:
    """Serve `config`'s Stack on 127.0.0.1; yield its base URL."""
    with running_server(lambda: stack_app(config), timeout=timeout) as url:
        yield url
