"""Async HTTP client of a running stack: one method per route of the route table, chunk streams from SSE.

`StackClient` implements the API Protocols of `llama_core.apis` over HTTP (httpx), so the CLI
clients and the `remote` provider call a stack the way they would call a local provider:

    async with StackClient("http://localhost:5000") as client:
        response = await client.chat_completion(ChatCompletionRequest(model=..., messages=[...]))

Its methods are built from `llama_core.routes.METHODS`, one per route, named as the Protocol method
that serves it (`client.call(route, request)` is the one path they all take); a request type with
no required field may be left out (`await client.list_models()`). Type checkers see no per-method
signatures: the Protocols in llama_core.apis are the reference.

A request with `stream=True` returns an async iterator of chunks (close it, or consume it, to free
the connection: `async with contextlib.aclosing(stream)`); a route that always streams
(agentic_system/turn/create) always returns one. Error answers come back as the same exception
classes the server raised (400 InvalidRequestError with its `field`, 404 NotFoundError...).

Non-goals: no retries (the caller knows whether a request is safe to repeat), no connection to
anything but a llama stack server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from llama_core import errors
from llama_core.routes import METHODS, Method, Streams, wants_stream
from llama_core.sse import iter_sse_data
from llama_core.types._base import Base

if TYPE_CHECKING:
    import httpx

C = TypeVar("C", bound=Base)
Translate = Callable[[errors.LlamaError], errors.LlamaError] | None


def errors_by_status(root: type[errors.LlamaError] = errors.LlamaError) -> dict[int, type[errors.LlamaError]]:
    """HTTP status -> the most general class of the error tree below `root` that answers it.

    Breadth first, so a status maps to the class nearest the root (404: NotFoundError, not
    ModelNotFoundError; 500: LlamaError itself).
    """
    found: dict[int, type[errors.LlamaError]] = {}
    level = [root]
    while level:
        for cls in level:
            found.setdefault(cls.status, cls)
        level = [sub for cls in level for sub in cls.__subclasses__()]
    return found


# HTTP status -> the error the server raised (the inverse of `LlamaError.status`; a status the tree
# does not use becomes a plain LlamaError).
STATUS_ERRORS: dict[int, type[errors.LlamaError]] = errors_by_status()


class _ErrorBody(msgspec.Struct):
    message: str = ""
    field: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)


def error_from_answer(status: int, body: bytes) -> errors.LlamaError:
    """The exception a non-200 answer (or an SSE error event, status 200) stands for."""
    try:
        detail = _error_decoder.decode(body).error
        message, field = detail.message, detail.field
    except msgspec.DecodeError:
        message, field = " ".join(body.decode(errors="replace").split())[:300], None
    message = message or f"HTTP {status}"
    cls = STATUS_ERRORS.get(status, errors.LlamaError)
    if issubclass(cls, errors.InvalidRequestError):
        return cls(message, field=field)
    return cls(message)


def query_params(request: Base) -> list[tuple[str, str]]:
    """A GET request's fields as query parameters: lists repeat their key, None is left out."""
    params: list[tuple[str, str]] = []
    for key, value in msgspec.to_builtins(request).items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            params.append((key, item if isinstance(item, str) else msgspec.json.encode(item).decode()))
    return params


class ChunkStream(AsyncIterator[C]):
    """The chunks of one streamed answer; `aclose()` (or the end) releases the connection."""

    def __init__(self, response: httpx.Response, chunk_type: type[C], translate: Translate = None) -> None:
        self._response = response
        self._events = iter_sse_data(response.aiter_lines())
        self._decoder = msgspec.json.Decoder(chunk_type)
        self._translate = translate

    def __aiter__(self) -> ChunkStream[C]:
        return self

    async def __anext__(self) -> C:
        try:
            event = await self._events.__anext__()
        except BaseException:
            await self.aclose()
            raise
        if event.startswith('{"error"'):
            async for _ in self._events:  # the server ends a stream after its error event; reading
                pass  # to the end finishes httpx's own generators too (trio warns about open ones)
            await self.aclose()
            error = error_from_answer(self._status_of(event), event.encode())
            raise error if self._translate is None else self._translate(error)
        return self._decoder.decode(event)

    @staticmethod
    def _status_of(event: str) -> int:
        try:
            return int(msgspec.json.decode(event).get("error", {}).get("status", 500))
        except (msgspec.DecodeError, AttributeError, TypeError, ValueError):
            return 500

    async def aclose(self) -> None:
        await self._events.aclose()
        await self._response.aclose()


class StackClient:
    """Async client of a stack served by `llama stack run` at `base_url` (e.g. http://localhost:5000).

    One method per route of `methods` (the route table; default `routes.METHODS`), named as the
    Protocol method serving it. A subclass built on another table gets that table's methods:
    `class Client(StackClient, methods=table)`.
    """

    methods: Mapping[str, Method] = METHODS

    def __init_subclass__(cls, *, methods: Mapping[str, Method] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if methods is not None:
            cls.methods = methods
            add_route_methods(cls, methods)

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        translate: Translate = None,
    ) -> None:
        """`translate`: what the server's errors become here (default: the class it raised)."""
        import httpx

        self.base_url = base_url.rstrip("/")
        self._translate = translate
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    async def __aenter__(self) -> StackClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, route: str, request: Base) -> Any:
        """Send `request` to `/route` (a name of `methods`); its answer decoded, or its chunk stream.

        A stream comes back when the route always streams (a request with `stream` false is sent
        with `stream` true: the server answers events either way) or the request asks for one.
        """
        import httpx

        method = self.methods[route]
        if method.streams is Streams.always and getattr(request, "stream", True) is False:
            request = msgspec.structs.replace(request, stream=True)  # type: ignore[type-var]
        if method.verb == "GET":
            built = self._http.build_request(method.verb, method.path, params=query_params(request))
        else:
            built = self._http.build_request(
                method.verb, method.path, content=msgspec.json.encode(request), headers={"Content-Type": "application/json"}
            )
        streaming = method.chunk_type is not None and wants_stream(method, request)
        try:
            response = await self._http.send(built, stream=streaming)
        except httpx.TransportError as e:
            raise errors.UnavailableError(f"Cannot reach the stack at {self.base_url}: {e or type(e).__name__}") from None
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            error = error_from_answer(response.status_code, body)
            raise error if self._translate is None else self._translate(error)
        if streaming:
            return ChunkStream(response, method.chunk_type, self._translate)
        return msgspec.json.decode(response.content, type=method.response_type)

    async def health(self) -> dict[str, Any]:
        """GET /health."""
        response = await self._http.get("/health")
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.content)
        return msgspec.json.decode(response.content)


def _route_method(method: Method) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def call(self: StackClient, request: Base | None = None) -> Any:
        return await self.call(method.name, method.request_type() if request is None else request)

    call.__name__ = call.__qualname__ = method.call
    call.__doc__ = f"{method.verb} {method.path}: {method.summary}"
    return call


def add_route_methods(cls: type[StackClient], methods: Mapping[str, Method]) -> None:
    """Give `cls` a method per route of `methods`, named as the Protocol method serving it."""
    for method in methods.values():
        setattr(cls, method.call, _route_method(method))


add_route_methods(StackClient, METHODS)
