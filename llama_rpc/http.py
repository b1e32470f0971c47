"""The HTTP server: a Quart app serving every route of the method table, from a `Stack`.

    POST/GET/DELETE /<route>   decode at the edge (body, or the query string of GET), call the
                               provider, answer JSON, or SSE (`data: <json>\\n\\n`) for a stream
    GET /health                {"status": "OK", "apis": {"inference": {"status": "ok"}, ...}}, or 503
                               with "Error" when an API cannot serve (never behind the API key)
    GET /openapi.json          the OpenAPI 3.1 document of what this stack serves
    /v1/..., /v1/openai/v1/... the OpenAI-compatible routes (llama_rpc/openai.py)

Errors become statuses and bodies in llama_rpc/errors.py only. Every request's Host, Origin and
body type are checked first (llama_rpc/origin.py: 403, 415), against pages that would drive the
server from a browser. With an API key, every other request must carry
`Authorization: Bearer <key>` (401 otherwise). With `cors_origins`, those origins' pages may call
it: Access-Control-* headers, and preflights answered without the key (llama_rpc/cors.py).

Non-goals: no business logic (a transport decodes, calls, encodes), no sessions or cookies, no
TLS (put a proxy in front).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import msgspec
from quart import Quart, Request, Response, request
from quart.asgi import ASGIHTTPConnection
from quart.wrappers.request import Body
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from llama_core.errors import AuthenticationError, PayloadTooLargeError
from llama_core.providers.provider_data import HEADER as PROVIDER_DATA_HEADER
from llama_core.providers.provider_data import set_provider_data
from llama_core.routes import METHODS, Method, provider_call, served_methods, wants_stream
from llama_core.types._base import Base
from llama_core.types.schema import decode_request, json_too_deep
from llama_rpc import openai
from llama_rpc.cors import apply_cors, cors_origins, is_preflight
from llama_rpc.errors import error_body, openai_error_body
from llama_rpc.openapi import openapi_document
from llama_rpc.origin import RequestGuard
from llama_rpc.sse import sse_stream

MAX_BODY_BYTES = 16 * 1024 * 1024  # beyond this: 413
DRAIN_FACTOR = 4  # a body over the limit is read (and dropped) up to this many times the limit before its 413

_encoder = msgspec.json.Encoder()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_response(data: Any, status: int = 200) -> Response:
    """`data` (a Struct, list, dict or None) as an application/json answer."""
    return Response(_encoder.encode(data), status=status, content_type="application/json")


def sse_response(events: AsyncIterator[bytes]) -> Response:
    """A text/event-stream answer with no time limit (a generation may run for minutes)."""
    response = Response(events, content_type="text/event-stream", headers=SSE_HEADERS)
    response.timeout = None
    return response


async def _one(item: Any) -> AsyncIterator[Any]:
    yield item


# --- the query string of GET routes -----------------------------------------------------------


def _accepts_str(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_accepts_str(t) for t in info.types)
    return isinstance(info, (msgspec.inspect.StrType, msgspec.inspect.AnyType, msgspec.inspect.EnumType))


def _list_item(info: msgspec.inspect.Type) -> msgspec.inspect.Type | None:
    """The item type if `info` is a list (or an optional list), else None."""
    if isinstance(info, msgspec.inspect.UnionType):
        items = [_list_item(t) for t in info.types]
        return next((t for t in items if t is not None), None)
    return info.item_type if isinstance(info, msgspec.inspect.ListType) else None


@functools.cache
def _query_fields(request_type: type[Base]) -> dict[str, tuple[bool, bool]]:
    """field name -> (is a list, its values are strings)."""
    out = {}
    for field in msgspec.inspect.type_info(request_type).fields:
        item = _list_item(field.type)
        out[field.encode_name] = (item is not None, _accepts_str(item if item is not None else field.type))
    return out


def _query_value(value: str, keep_str: bool) -> Any:
    if keep_str or json_too_deep(value.encode()):  # too deep: the request decoder refuses it by name
        return value
    try:
        return msgspec.json.decode(value)  # numbers, true/false, null
    except msgspec.DecodeError:
        return value  # let the request decoder name the field


def query_body(request_type: type[Base], args: Any) -> bytes:
    """A GET request's query string as the JSON body `decode_request` reads.

    A list field takes every value of its key (`?document_ids=a&document_ids=b`); other fields the
    last one. Unknown keys pass through so the decoder rejects them by name.
    """
    fields = _query_fields(request_type)
    body: dict[str, Any] = {}
    for key in args.keys():
        is_list, keep_str = fields.get(key, (False, True))
        values = [_query_value(v, keep_str) for v in args.getlist(key)]
        body[key] = values if is_list else values[-1]
    return _encoder.encode(body)


# --- one request: Quart's connection with one task fewer, and a body drained past its limit ----


class DrainingBody(Body):
    """Quart's request body, which past the size limit keeps reading (and dropping) to the end.

    Quart's fails as soon as a body is over MAX_CONTENT_LENGTH: its 413 goes out while the client
    is still writing, the server closes the connection, and a client that writes its whole body
    before reading sees a broken pipe instead of the 413. `read_body` answers the 413 once `ended`
    is set: the body's last byte arrived (`whole`; the connection stays usable), the client went
    away, or more than DRAIN_FACTOR times the limit came (answered at once, and closed).
    """

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self.ended = asyncio.Event()
        self.whole = False
        self._received = 0
        self.limit = max_content_length
        self._drain_limit = None if max_content_length is None else DRAIN_FACTOR * max_content_length
        if expected_content_length is not None and self._over_drain_limit(expected_content_length):
            self.ended.set()  # too much to read for nothing

    def _over_drain_limit(self, size: int) -> bool:
        return self._drain_limit is not None and size > self._drain_limit

    @property
    def too_large(self) -> bool:
        return self._must_raise is not None  # Body's only failure: over the limit

    def append(self, data: bytes) -> None:
        self._received += len(data)
        super().append(data)  # past the limit: dropped
        if self._over_drain_limit(self._received):
            self.ended.set()

    def end(self) -> None:
        """The client sent the body's last byte."""
        self.whole = True
        self.set_complete()
        self.ended.set()


class DrainingRequest(Request):
    body_class = DrainingBody


class HTTPConnection(ASGIHTTPConnection):
    """Quart's ASGI HTTP connection, handling the request in the server's task.

    Quart runs the handler and the receiver of ASGI messages as two new tasks and waits for the
    first to finish (a task, a wait and a cancellation per request: ~15% of the app's
    instructions). Here the handler runs in the task the server gave the request, and the receiver
    cancels it when the client goes away, as Quart's does: a stream's iterator is closed and its
    engine slot freed at once.
    """

    async def __call__(self, receive: Any, send: Any) -> None:
        incoming = self._create_request_from_scope(send)
        handler = asyncio.current_task()
        assert handler is not None
        gone = False

        async def receive_all() -> None:  # body parts into the request, until http.disconnect
            nonlocal gone
            await self.handle_messages(incoming, receive)
            gone = True
            handler.cancel()

        receiver = asyncio.ensure_future(receive_all())
        try:
            await self.handle_request(incoming, send)
        except asyncio.CancelledError:
            if not gone:
                raise  # the server's own cancellation (shutdown): not ours to swallow
            handler.uncancel()
        finally:
            receiver.cancel()
        if receiver.done() and not receiver.cancelled() and receiver.exception() is not None:
            raise receiver.exception()  # type: ignore[misc]  # as Quart raises its tasks' errors

    async def handle_messages(self, request: Any, receive: Any) -> None:
        """Quart's, telling the body where it ends (DrainingBody), even past its limit."""
        body: DrainingBody = request.body
        while True:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.end()
            elif message["type"] == "http.disconnect":
                body.ended.set()
                return


# --- the routes -------------------------------------------------------------------------------


async def read_body() -> bytes:
    """The whole request body, waiting at most BODY_TIMEOUT seconds for it (408 after).

    What Quart's `request.get_data()` does, minus its `asyncio.wait_for`, which wraps the wait in
    a new task on every call (two more event-loop turns per request). A body that came with the
    headers is complete already: awaiting it again does not suspend. A body over the limit is a
    413, raised once the client has sent it all (DrainingBody), so that the client reads it.
    """
    body: DrainingBody = request.body
    try:
        async with asyncio.timeout(request.body_timeout):
            try:
                return await body
            except RequestEntityTooLarge:
                await body.ended.wait()
                raise too_large(body.limit) from None
    except TimeoutError:
        raise (too_large(body.limit) if body.too_large else RequestTimeout()) from None


def too_large(limit: int | None) -> PayloadTooLargeError:
    """The 413 of a body over `limit` bytes, naming the limit (werkzeug's own text does not)."""
    if not limit:
        return PayloadTooLargeError("The request body is larger than this server accepts.")
    size = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"
    return PayloadTooLargeError(f"The request body is larger than this server's limit of {size}.")


async def request_data() -> bytes:
    """The body of the request being handled (read before any route runs, so it never waits)."""
    return await request.body


async def _request_body(method: Method) -> bytes:
    if method.verb != "POST" and request.query_string and (args := request.args):
        return query_body(method.request_type, args)
    return await request_data() or b"{}"  # no body: no fields (skips the decoder's failed first try)


def _route_handler(stack: Any, method: Method) -> Callable[[], Any]:
    async def handle() -> Response:
        call = provider_call(stack, method)  # 501 before anything else if the API has no provider
        decoded = decode_request(method.request_type, await _request_body(method))
        result = await call(decoded)
        if hasattr(result, "__aiter__"):
            return sse_response(sse_stream(result, error_body))
        if wants_stream(method, decoded):  # e.g. a turn without `stream`: one event
            return sse_response(sse_stream(_one(result), error_body))
        return json_response(result)

    handle.__name__ = "route_" + method.name.replace("/", "_")
    return handle


def _header(name: str) -> str | None:
    """The first value of header `name`, or None (`headers.get` builds an exception when it is absent)."""
    values = request.headers.getlist(name)
    return values[0] if values else None


def serving_lines(stack: Any) -> list[str]:
    """`Serving POST /inference/chat_completion`... for each route whose API this stack has."""
    lines = [f"Serving {method.verb} {method.path}" for method in served_methods(stack)]
    lines += [f"Serving {verb} {path}" for verb, path in openai.ROUTES]
    lines += ["Serving GET /health", "Serving GET /openapi.json"]
    return lines


def create_app(
    stack: Any,
    *,
    api_key: str | None = None,
    openai_done: bool | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    methods: Mapping[str, Method] = METHODS,
    bind: str | None = None,
    allowed_hosts: Sequence[str] = (),
    cors: Sequence[str] = (),
) -> Quart:
    """The Quart app serving `stack` (anything with `api(name)` and `health()`, as llama_core.stack.Stack).

    `methods`: the route table (llama_core.routes); /openapi.json lists the routes `stack` serves.
    `api_key`: require `Authorization: Bearer <api_key>` on every route but /health.
    `openai_done`: whether OpenAI-compatible streams end with `data: [DONE]` under every prefix
    (None: under /v1 only, as llama_rpc.openai.DONE_LINE says).
    `bind`: the `host:port` it is served on (None: a loopback address); with `allowed_hosts`, the
    Host and Origin values it answers (llama_rpc/origin.py).
    `cors`: the origins (`scheme://host[:port]`, or `*`) whose pages may call it (llama_rpc/cors.py);
    InvalidRequestError for a value that is not one.
    """
    origins = cors_origins(cors)
    app = Quart(__name__, static_folder=None)
    app.asgi_http_class = HTTPConnection
    app.request_class = DrainingRequest
    app.config.update(MAX_CONTENT_LENGTH=max_body_bytes, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=60)

    for method in methods.values():
        app.add_url_rule(method.path, method.name, _route_handler(stack, method), methods=[method.verb])

    async def health() -> Response:
        report = await stack.health()
        return json_response(report, 200 if report["status"] == "OK" else 503)

    async def openapi_json() -> Response:
        return json_response(openapi_document(served_methods(stack, methods)))

    app.add_url_rule("/health", "health", health, methods=["GET"])
    app.add_url_rule("/openapi.json", "openapi", openapi_json, methods=["GET"])
    openai.register(app, stack, done=openai_done)

    expected = f"Bearer {api_key}".encode() if api_key else None
    guard = RequestGuard(bind, allowed_hosts, origins)
    if origins:
        apply_cors(app, origins)

    @app.before_request
    async def before_request() -> None:
        # One hook, not three: Quart awaits each hook of each request through its own checks.
        # Every body is read before anything answers, errors included: an answer sent before its
        # request's body has arrived leaves the connection unusable for the client's next request.
        await read_body()
        origin = _header("Origin")
        refused = guard.check(request.method, _header("Host"), origin, _header("Content-Type"))
        if refused is not None:
            raise refused
        preflight = bool(origins) and is_preflight(request.method, origin, _header("Access-Control-Request-Method"))
        if expected is not None and request.path != "/health" and not preflight:
            given = _header("Authorization") or ""
            if not hmac.compare_digest(given.encode(), expected):
                raise AuthenticationError("Missing or wrong API key: send the header `Authorization: Bearer <key>`.")
        # Per-request vendor keys (X-LlamaStack-ProviderData), read by remote providers.
        set_provider_data(_header(PROVIDER_DATA_HEADER))

    @app.errorhandler(Exception)
    async def on_error(error: Exception) -> Response:
        render = openai_error_body if openai.is_openai_path(request.path) else error_body
        status, body = render(error)
        response = json_response(body, status)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if (retry_after := getattr(error, "retry_after", None)) is not None:  # 503 while the engine restarts
            response.headers["Retry-After"] = str(math.ceil(retry_after))
        if status == 413 and not request.body.whole:  # answered before the body's end: the server closes
            response.headers["Connection"] = "close"
        return response

    return app
