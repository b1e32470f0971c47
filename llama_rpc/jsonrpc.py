"""JSON-RPC 2.0 over lines: message Structs, the one error -> code mapping, and a dispatcher.

    {"jsonrpc":"2.0","id":1,"method":"models/list"}                       -> {"jsonrpc":"2.0","id":1,"result":[...]}
    {"jsonrpc":"2.0","id":2,"method":"inference/chat_completion","params":{..., "stream": true}}
        -> {"jsonrpc":"2.0","method":"stream/chunk","params":{"requestId":2,"chunk":{...}}}   one per chunk
        -> {"jsonrpc":"2.0","id":2,"result":{"completion_message":{...}}}                    the chunks folded

Every route of the method table is a method of the same name; params are the request's fields,
decoded with `decode_request` at the edge. Each request runs in its own task, so a slow call never
blocks another (or a ping); `cancel(id)` stops one and it gets no answer. At the end of input,
in-flight requests finish (within `eof_grace`: unbounded, or a second once MCP is initialized). Codes: -32700 parse
error, -32600 invalid request (also a line nested deeper than MAX_JSON_DEPTH, answered before it is
decoded, so with id null), -32601 method not found (also an API this stack does not serve),
-32602 invalid params (with `data.field`; also unknown ids such as a model, and too-large input),
-32603 internal error. Never code 0.

Non-goals: no batches (JSON arrays; MCP dropped them in 2025-06-18), no requests from server to
client, no business logic beyond folding a stream into the one result a caller awaits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from llama_core.errors import (
    InvalidRequestError,
    LlamaError,
    NotConfiguredError,
    NotFoundError,
    PayloadTooLargeError,
    shown,
)
from llama_core.routes import METHODS, Method, provider_call
from llama_core.types._base import Base
from llama_core.types.folds import fold
from llama_core.types.schema import MAX_JSON_DEPTH, decode_request, json_too_deep
from llama_rpc.stdio import TooLong

log = logging.getLogger("llama_rpc.jsonrpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

CHUNK_NOTIFICATION = "stream/chunk"
# When the input ends, in-flight requests get this long to answer, then stop. A plain JSON-RPC pipe
# (`echo ... | python -m llama_rpc`) waits for its answers; an MCP host closing stdin is leaving.
EOF_GRACE_S = math.inf
MCP_EOF_GRACE_S = 1.0

RequestId = int | str


# --- messages ---------------------------------------------------------------------------------


class Incoming(msgspec.Struct):
    """Any JSON object read off the wire; each member is checked by hand to answer precisely."""

    jsonrpc: Any = msgspec.UNSET
    id: Any = msgspec.UNSET
    method: Any = msgspec.UNSET
    params: msgspec.Raw = msgspec.UNSET  # type: ignore[assignment] -- decoded later, per method
    result: Any = msgspec.UNSET
    error: Any = msgspec.UNSET


class ErrorObject(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class Response(msgspec.Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId | None
    result: Any


class ErrorResponse(msgspec.Struct, kw_only=True):
    jsonrpc: str = "2.0"
    id: RequestId | None
    error: ErrorObject


class Notification(msgspec.Struct, kw_only=True):
    jsonrpc: str = "2.0"
    method: str
    params: Any  # always given: JSON-RPC allows it absent, never null


class JsonRpcError(Exception):
    """A protocol error a handler raises on purpose (e.g. MCP's unknown tool: -32602)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


_incoming = msgspec.json.Decoder(Incoming)
_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """One message as one line (msgspec never writes a raw newline inside JSON)."""
    return _encoder.encode(message) + b"\n"


# --- the one mapping from the error tree ------------------------------------------------------

# First match wins; everything else we raise on purpose is -32603 with its own one-line message.
CODES: tuple[tuple[type[LlamaError], int], ...] = (
    (InvalidRequestError, INVALID_PARAMS),  # UnsupportedError too
    (NotFoundError, INVALID_PARAMS),  # an unknown model, bank, agent: a bad parameter value
    (PayloadTooLargeError, INVALID_PARAMS),
    (NotConfiguredError, METHOD_NOT_FOUND),  # the API is not served by this stack
    (LlamaError, INTERNAL_ERROR),
)


def error_object(error: BaseException) -> ErrorObject:
    """The JSON-RPC error of `error`: a code, one line for a user, and `data` {type, status, field?}.

    An exception we did not raise on purpose is logged (stderr) and answered "Internal error".
    """
    if isinstance(error, JsonRpcError):
        return ErrorObject(error.code, error.message, error.data)
    if isinstance(error, LlamaError):
        code = next(c for cls, c in CODES if isinstance(error, cls))
        data: dict[str, Any] = {"type": error.kind, "status": error.status}
        if isinstance(error, InvalidRequestError) and error.field is not None:
            data["field"] = error.field
        return ErrorObject(code, error.message, data)
    log.error("unexpected error while serving a request", exc_info=error)
    return ErrorObject(INTERNAL_ERROR, "Internal error")


# --- streams folded into one result -----------------------------------------------------------

OnChunk = Callable[[Any, int], Awaitable[None]]  # (chunk, its 1-based number)


async def call_method(stack: Any, method: Method, request: Base, on_chunk: OnChunk | None = None) -> Any:
    """Call the provider; a stream is passed chunk by chunk to `on_chunk`, then folded.

    The provider's iterator is always closed (shielded: closing frees the engine's batch slot,
    and must happen even when the call is cancelled).
    """
    result = await provider_call(stack, method)(request)
    if not hasattr(result, "__aiter__"):
        return result
    stream: AsyncIterator[Any] = result
    chunks: list[Any] = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
            if on_chunk is not None:
                await on_chunk(chunk, len(chunks))
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
    return fold(method.chunk_type, chunks)


# --- dispatch ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Context:
    """What a handler knows of its request: the id, the raw params, and a way to notify."""

    connection: Connection
    id: RequestId
    method: str
    params: msgspec.Raw | None

    async def notify(self, method: str, params: Any) -> None:
        await self.connection.send(Notification(method=method, params=params))


Handler = Callable[[Context], Awaitable[Any]]
NotificationHandler = Callable[[msgspec.Raw | None], None]


def table_handlers(stack: Any, methods: Mapping[str, Method] = METHODS) -> dict[str, Handler]:
    """A handler per route of `methods` (the route table); a stream notifies `stream/chunk` per chunk."""

    def handler(method: Method) -> Handler:
        async def handle(ctx: Context) -> Any:
            provider_call(stack, method)  # -32601 before decoding when the API is not served
            request = decode_request(method.request_type, ctx.params or b"")

            async def on_chunk(chunk: Any, n: int) -> None:
                await ctx.notify(CHUNK_NOTIFICATION, {"requestId": ctx.id, "chunk": chunk})

            return await call_method(stack, method, request, on_chunk)

        return handle

    return {name: handler(method) for name, method in methods.items()}


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class Connection:
    """One JSON-RPC peer: reads lines, runs a task per request, writes answers through one writer.

    `handlers` answer requests by method name; `notifications` are plain functions called inline
    (a notification never gets an answer, whatever happens). `send(message)` queues a Struct.
    """

    def __init__(
        self,
        sender: Any,
        handlers: Mapping[str, Handler],
        notifications: Mapping[str, NotificationHandler] | None = None,
        eof_grace: float = EOF_GRACE_S,
    ) -> None:
        self.sender = sender
        self.handlers = dict(handlers)
        self.notifications = dict(notifications or {})
        self.eof_grace = eof_grace
        self.in_flight: dict[RequestId, anyio.CancelScope] = {}
        self._out_send, self._out_recv = anyio.create_memory_object_stream[bytes](math.inf)
        self._tg: anyio.abc.TaskGroup | None = None
        self._drained = anyio.Event()
        self._closing = False

    async def send(self, message: msgspec.Struct) -> None:
        """Queue one message for the writer (never blocks)."""
        self._push(encode(message))

    def _push(self, data: bytes) -> None:
        try:
            self._out_send.send_nowait(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the connection is gone: nobody to tell

    def cancel(self, request_id: Any) -> bool:
        """Stop request `request_id` (it will get no answer); False if it is unknown or done."""
        scope = self.in_flight.get(request_id) if _valid_id(request_id) else None
        if scope is None:
            return False
        scope.cancel()
        return True

    async def serve(self, lines: AsyncIterator[bytes]) -> None:
        """Answer every line until the input ends; then let in-flight work finish (briefly) and return."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._writer)
            try:
                async for line in lines:
                    try:
                        self.on_line(line)
                    except Exception as error:  # noqa: BLE001 -- a bug here must not end the connection
                        self._push(encode(ErrorResponse(id=None, error=error_object(error))))
                self._closing = True
                if not self.in_flight:
                    self._drained.set()
                with anyio.move_on_after(self.eof_grace):
                    await self._drained.wait()
                for scope in list(self.in_flight.values()):
                    scope.cancel()
                await self._drained.wait()
            finally:
                self._out_send.close()

    async def _writer(self) -> None:
        async with self._out_recv:
            async for data in self._out_recv:
                batch = [data]
                while True:  # everything already queued goes out in one write
                    try:
                        batch.append(self._out_recv.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    await self.sender.send(b"".join(batch))
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    log.info("the client closed its end; dropping what was left to send")

    def _error(self, request_id: Any, code: int, message: str, data: Any = None) -> None:
        self._push(encode(ErrorResponse(id=request_id, error=ErrorObject(code, message, data))))

    def on_line(self, line: bytes) -> None:
        """Handle one line: answer at once what is malformed or unknown, start a task otherwise."""
        if isinstance(line, TooLong):
            self._error(None, INVALID_REQUEST, "Message too large")
            return
        if json_too_deep(line):  # before decoding: msgspec recurses once per level (and would crash)
            self._error(None, INVALID_REQUEST, f"Invalid request: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            return
        try:
            message = _incoming.decode(line)
        except msgspec.ValidationError:  # valid JSON, but not an object (arrays: batches)
            self._error(None, INVALID_REQUEST, "Invalid request: a message is one JSON object (batches are not supported)")
            return
        except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec 0.18 raises the latter for bad UTF-8
            self._error(None, PARSE_ERROR, "Parse error")
            return
        if message.method is msgspec.UNSET:
            if message.result is not msgspec.UNSET or message.error is not msgspec.UNSET:
                log.debug("ignoring a response from the client: id %r", message.id)
                return  # we send no requests, so a response answers nothing
            self._error(message.id if _valid_id(message.id) else None, INVALID_REQUEST, "Invalid request: no method")
            return
        if message.id is msgspec.UNSET:
            self._notification(message)
            return
        if not _valid_id(message.id):
            self._error(None, INVALID_REQUEST, "Invalid request: id must be a string or an integer")
            return
        request_id: RequestId = message.id
        if message.jsonrpc != "2.0":
            self._error(request_id, INVALID_REQUEST, 'Invalid request: jsonrpc must be "2.0"')
        elif not isinstance(message.method, str):
            self._error(request_id, INVALID_REQUEST, "Invalid request: method must be a string")
        elif message.method.startswith("notifications/"):
            self._error(request_id, INVALID_REQUEST, f"Invalid request: {shown(message.method)} is a notification; send it without an id")
        elif request_id in self.in_flight:
            self._error(request_id, INVALID_REQUEST, f"Invalid request: id {shown(repr(request_id))} is already in use")
        elif message.method not in self.handlers:
            self._error(request_id, METHOD_NOT_FOUND, "Method not found", shown(message.method))
        else:
            params = None if message.params is msgspec.UNSET else message.params
            scope = anyio.CancelScope()
            self.in_flight[request_id] = scope
            assert self._tg is not None
            context = Context(self, request_id, message.method, params)
            self._tg.start_soon(self._run, context, self.handlers[message.method], scope)

    def _notification(self, message: Incoming) -> None:
        if message.jsonrpc != "2.0" or not isinstance(message.method, str):
            return  # a malformed notification: nobody to tell
        handler = self.notifications.get(message.method)
        if handler is None:
            log.debug("ignoring notification %s", message.method)
            return
        try:
            handler(None if message.params is msgspec.UNSET else message.params)
        except LlamaError as error:  # a notification never gets an answer: a line on stderr
            log.warning("ignoring notification %s: %s", message.method, error.message)
        except Exception:  # noqa: BLE001
            log.exception("notification %s failed", message.method)

    async def _run(self, ctx: Context, handler: Handler, scope: anyio.CancelScope) -> None:
        try:
            reply: bytes | None = None
            with scope:
                try:
                    reply = encode(Response(id=ctx.id, result=await handler(ctx)))
                except Exception as error:  # noqa: BLE001 -- every failure is answered
                    reply = encode(ErrorResponse(id=ctx.id, error=error_object(error)))
            if scope.cancelled_caught:
                log.info("request %r (%s) cancelled", ctx.id, ctx.method)
            elif reply is not None:
                self._push(reply)
        finally:
            del self.in_flight[ctx.id]
            if self._closing and not self.in_flight:
                self._drained.set()
