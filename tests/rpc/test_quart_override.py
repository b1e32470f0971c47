"""llama_rpc.http.HTTPConnection overrides Quart's ASGIHTTPConnection.__call__ (a private class): fail loudly when it no longer fits.

pyproject.toml bounds quart below the next minor release; this file is what to run before raising that bound.
"""

from __future__ import annotations

import inspect
import re

import anyio
import pytest
from quart import Quart, request
from quart.asgi import ASGIHTTPConnection

from llama_rpc.http import DrainingRequest, HTTPConnection


def _params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_methods_the_override_calls_keep_their_shape() -> None:
    assert issubclass(HTTPConnection, ASGIHTTPConnection)
    assert _params(ASGIHTTPConnection.__init__) == ["self", "app", "scope"]
    assert _params(ASGIHTTPConnection.__call__) == ["self", "receive", "send"]
    assert _params(ASGIHTTPConnection._create_request_from_scope) == ["self", "send"]
    assert _params(ASGIHTTPConnection.handle_messages) == ["self", "request", "receive"]
    assert _params(ASGIHTTPConnection.handle_request) == ["self", "request", "send"]
    for name in ("__call__", "handle_messages", "handle_request"):
        assert inspect.iscoroutinefunction(getattr(ASGIHTTPConnection, name)), name
    assert not inspect.iscoroutinefunction(ASGIHTTPConnection._create_request_from_scope)


def test_quarts_call_is_still_the_three_steps_the_override_rewrites() -> None:
    # HTTPConnection.__call__ does what Quart's does in one task fewer; a fourth step in Quart's would be lost.
    source = inspect.getsource(ASGIHTTPConnection.__call__)
    calls = [name for name in ("_create_request_from_scope(", "handle_messages(", "handle_request(") if name in source]
    assert calls == ["_create_request_from_scope(", "handle_messages(", "handle_request("]
    assert source.count("self.") == 3, source


def test_quarts_handle_messages_still_reads_only_what_the_override_reads() -> None:
    # HTTPConnection.handle_messages is Quart's with body.end() for set_complete(): a new message kind would be lost.
    source = inspect.getsource(ASGIHTTPConnection.handle_messages)
    kinds = sorted(set(re.findall(r'"(http\.[a-z.]+)"', source)))
    assert kinds == ["http.disconnect", "http.request"], source
    assert "request.body.set_complete()" in source and "request.body.append(" in source, source


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # Quart runs on asyncio only
async def test_quart_still_builds_each_http_connection_from_asgi_http_class() -> None:
    built: list[dict] = []

    class Recording(HTTPConnection):
        def __init__(self, app: Quart, scope: dict) -> None:
            built.append(scope)
            super().__init__(app, scope)

    app = Quart(__name__)
    assert Quart.asgi_http_class is ASGIHTTPConnection  # the documented hook, with the class we subclass behind it
    app.asgi_http_class = Recording
    app.request_class = DrainingRequest  # as create_app: the override's handle_messages ends a DrainingBody

    @app.post("/echo")
    async def echo() -> bytes:
        return await request.get_data()

    sent: list[dict] = []
    messages = iter([{"type": "http.request", "body": b"hello", "more_body": False}])
    gone = anyio.Event()

    async def receive() -> dict:
        try:
            return next(messages)
        except StopIteration:
            await gone.wait()  # the client stays until the answer is sent
            return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            gone.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/echo", "raw_path": b"/echo", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"test"), (b"content-length", b"5")], "client": ("127.0.0.1", 1), "server": ("test", 80),
        "extensions": {},
    }  # fmt: skip
    await app(scope, receive, send)
    assert [s["path"] for s in built] == ["/echo"]
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"hello"
