"""Loopback vendor servers: an ASGI app that records every request and answers with scripted replies.

    vendor = FakeVendor({("GET", "/api/tags"): Reply(body=sample("ollama/tags.json"))})
    with running_server(lambda: vendor) as url:
        vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_stream.ndjson"))))
        ...
        assert vendor.requests[-1].json["options"] == {...}

Replies queued with `then` are used first, in order; then a route's default. A reply's body may be a
list of pieces (each sent on its own, as a stream), and `cut=True` drops the connection after them,
as a vendor's stream broken off midway. With `echo_auth = True` the vendor behaves as a careless one
does: every error answer (status >= 400) repeats the request's Authorization header in its message
and beside it, and `{authorization}` in any reply's body is replaced by that header (a stream's
error event, an HTML page). The samples under `samples/` are answers written out from
each vendor's API documentation, in its exact shape (not captured from the live services).
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpc.server import running_server

from llama_core.types import ToolDefinition, ToolParamDefinition, UserMessage
from llama_core.types.inference import ChatCompletionRequest, ToolCallDelta

SAMPLES = Path(__file__).parent / "samples"
SSE = "text/event-stream"
MODEL = "Llama3.1-8B-Instruct"  # the model the vendors' samples answer for


def sample(name: str) -> bytes:
    """The bytes of sample payload `name` (e.g. "ollama/tags.json")."""
    return (SAMPLES / name).read_bytes()


def stream_of(payload: bytes, sep: bytes = b"\n") -> list[bytes]:
    """`payload` as stream pieces: one per line (NDJSON) or per event (SSE, sep=b"\\n\\n")."""
    return [part + sep for part in payload.split(sep) if part.strip()]


@dataclass
class Reply:
    status: int = 200
    body: bytes | list[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cut: bool = False  # drop the connection after the body pieces
    hold: float = 0.0  # seconds to keep the answer open after the pieces (a vendor still generating)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class CutStream(Exception):
    """Raised inside the app to make the server drop the connection mid-answer."""


class FakeVendor:
    """An ASGI app: default replies per (method, path), queued replies first, every request recorded."""

    def __init__(self, defaults: dict[tuple[str, str], Reply] | None = None) -> None:
        self.defaults = dict(defaults or {})
        self.queued: dict[str, collections.deque[Reply]] = collections.defaultdict(collections.deque)
        self.requests: list[Recorded] = []
        self.echo_auth = False

    def then(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with `replies`, in order."""
        self.queued[path].extend(replies)

    def reset(self) -> None:
        self.queued.clear()
        self.requests.clear()
        self.echo_auth = False

    @staticmethod
    def echoed(reply: Reply, authorization: str) -> list[bytes]:
        """The body pieces of `reply` with the Authorization header echoed, as echo_auth says."""
        pieces = reply.body if isinstance(reply.body, list) else [reply.body]
        pieces = [p.replace(b"{authorization}", authorization.encode()) for p in pieces]
        if reply.status < 400:
            return pieces
        try:
            data = json.loads(b"".join(pieces))
        except ValueError:
            return [b"".join(pieces) + f" (you sent Authorization: {authorization})".encode()]
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            error["message"] = f"{error.get('message', '')} (you sent Authorization: {authorization})"
        else:
            data = {"error": f"{error} (you sent Authorization: {authorization})"}
        data["request_headers"] = {"authorization": authorization}
        return [json.dumps(data).encode()]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def _reply(self, method: str, path: str) -> Reply:
        if self.queued[path]:
            return self.queued[path].popleft()
        return self.defaults.get((method, path), Reply(status=404, body=b'{"error": "404 page not found"}'))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] == "/health":  # what tests/rpc/server.py polls until the server is up
            reply = Reply(body=b"{}")
        else:
            self.requests.append(Recorded(scope["method"], scope["path"], headers, body))
            reply = self._reply(scope["method"], scope["path"])
        pieces = reply.body if isinstance(reply.body, list) else [reply.body]
        if self.echo_auth:
            pieces = self.echoed(reply, headers.get("authorization", ""))
        response_headers = [(b"content-type", reply.content_type.encode())]
        response_headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": response_headers})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if reply.hold:
            await asyncio.sleep(reply.hold)
        if reply.cut:
            raise CutStream("the vendor dropped the connection")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextmanager
def serving(defaults: dict[tuple[str, str], Reply] | None = None) -> Iterator[tuple[FakeVendor, str]]:
    """A FakeVendor with `defaults` on a loopback server: (the vendor, its base URL)."""
    vendor = FakeVendor(defaults)
    with running_server(lambda: vendor) as url:
        yield vendor, url


async def no_sleep(seconds: float) -> None:
    """A RetryPolicy's sleep that does not wait: retries in a test come at once."""


# The tool call every vendor's samples make, and its arguments.
WEATHER = ToolDefinition(
    tool_name="get_current_weather",
    description="Get the current weather",
    parameters={"location": ToolParamDefinition(param_type="string"), "format": ToolParamDefinition(param_type="string", required=False)},
)
PARIS = {"location": "Paris, FR", "format": "celsius"}


def chat(model: str = MODEL, stream: bool = False, **fields: Any) -> ChatCompletionRequest:
    """The question the vendors' chat samples answer."""
    return ChatCompletionRequest(model=model, messages=[UserMessage(content="What is the capital of France?")], stream=stream, **fields)


async def events(stream: Any, call_ids: bool = True) -> list[tuple[str, Any, str | None]]:
    """(event type, delta, stop reason) per chunk; a tool call as (status, content or ([id,] name, args)),
    its id left out with `call_ids=False` (where the vendor sends none and ours is random)."""
    out = []
    async for chunk in stream:
        e = chunk.event
        delta = e.delta
        if isinstance(delta, ToolCallDelta):
            c = delta.content
            if not isinstance(c, str):
                c = (c.call_id, c.tool_name, c.arguments) if call_ids else (c.tool_name, c.arguments)
            delta = (str(delta.parse_status), c)
        out.append((str(e.event_type), delta, e.stop_reason and str(e.stop_reason)))
    return out
