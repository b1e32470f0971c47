"""Async HTTP client of a running stack: one method per route, chunk streams parsed from SSE.

`StackClient` implements the API Protocols of `llama_core.apis` over HTTP (httpx), so the CLI
clients and the `remote` provider call a stack the way they would call a local provider:

    async with StackClient("http://localhost:5000") as client:
        response = await client.chat_completion(ChatCompletionRequest(model=..., messages=[...]))

A request with `stream=True` returns an async iterator of chunks (close it, or consume it, to free
the connection: `async with contextlib.aclosing(stream)`). Error answers come back as the same
exception classes the server raised (400 InvalidRequestError with its `field`, 404 NotFoundError...).

Non-goals: no retries (the caller knows whether a request is safe to repeat), no connection to
anything but a llama stack server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from llama_core import errors
from llama_core.types._base import Base
from llama_core.types.agents import (
    AgenticSystemCreateRequest,
    AgenticSystemCreateResponse,
    AgenticSystemDeleteRequest,
    AgenticSystemMemoryBankAttachRequest,
    AgenticSystemMemoryBankDetachRequest,
    AgenticSystemSessionCreateRequest,
    AgenticSystemSessionCreateResponse,
    AgenticSystemSessionDeleteRequest,
    AgenticSystemSessionGetRequest,
    AgenticSystemStepGetRequest,
    AgenticSystemStepResponse,
    AgenticSystemTurnCreateRequest,
    AgenticSystemTurnGetRequest,
    AgenticSystemTurnResponseStreamChunk,
    Session,
    Turn,
)
from llama_core.types.inference import (
    BatchChatCompletionRequest,
    BatchChatCompletionResponse,
    BatchCompletionRequest,
    BatchCompletionResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseStreamChunk,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseStreamChunk,
    EmbeddingsRequest,
    EmbeddingsResponse,
)
from llama_core.types.memory import (
    CreateMemoryBankRequest,
    DeleteDocumentsRequest,
    DropMemoryBankRequest,
    GetDocumentsRequest,
    GetMemoryBankRequest,
    InsertDocumentsRequest,
    ListMemoryBanksRequest,
    MemoryBank,
    MemoryBankDocument,
    QueryDocumentsRequest,
    QueryDocumentsResponse,
    UpdateDocumentsRequest,
)
from llama_core.types.models import Model, ModelsGetRequest, ModelsListRequest
from llama_core.types.safety import RunShieldsRequest, RunShieldsResponse

if TYPE_CHECKING:
    import httpx

C = TypeVar("C", bound=Base)
Translate = Callable[[errors.LlamaError], errors.LlamaError] | None

# The routes that are not POST. GET sends the request fields as a query string (a list field as
# repeated keys); DELETE sends a JSON body. The server's method table (llama_rpc/methods.py) reads this.
ROUTE_VERBS: dict[str, str] = {
    "memory_banks/list": "GET",
    "memory_banks/get": "GET",
    "memory_banks/drop": "DELETE",
    "memory_bank/documents/get": "GET",
    "memory_bank/documents/delete": "DELETE",
    "models/list": "GET",
    "models/get": "GET",
}

# HTTP status -> the error the server raised (inverse of the server's mapping; 500 and anything
# unknown become a plain LlamaError).
STATUS_ERRORS: dict[int, type[errors.LlamaError]] = {
    400: errors.InvalidRequestError,
    401: errors.AuthenticationError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    501: errors.NotConfiguredError,
    502: errors.ProviderError,
    503: errors.UnavailableError,
}


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


async def iter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with "\\n"), up to `[DONE]`.

    Lines after `[DONE]` are read and dropped: the stream ends right after it, and reading to the
    end finishes `lines` (an unfinished async generator is a warning under trio).
    """
    data: list[str] = []
    done = False
    async for line in lines:
        if done:
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line and data:
            event, data = "\n".join(data), []
            done = event == "[DONE]"
            if not done:
                yield event
    if data and not done and data != ["[DONE]"]:
        yield "\n".join(data)


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
    """Async client of a stack served by `llama stack run` at `base_url` (e.g. http://localhost:5000)."""

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

    # --- the one path every method takes ----------------------------------------------------

    async def call(self, route: str, request: Base, response_type: Any, chunk_type: Any = None) -> Any:
        """Send `request` to `/route`; decode the answer as `response_type`, or stream `chunk_type`s.

        A stream is expected when `chunk_type` is given and the request asks for one (or has no
        `stream` field: such routes always stream).
        """
        import httpx

        verb = ROUTE_VERBS.get(route, "POST")
        if verb == "GET":
            built = self._http.build_request(verb, "/" + route, params=query_params(request))
        else:
            built = self._http.build_request(
                verb, "/" + route, content=msgspec.json.encode(request), headers={"Content-Type": "application/json"}
            )
        streaming = chunk_type is not None and getattr(request, "stream", True)
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
            return ChunkStream(response, chunk_type, self._translate)
        return msgspec.json.decode(response.content, type=response_type)

    async def health(self) -> dict[str, Any]:
        """GET /health."""
        response = await self._http.get("/health")
        if response.status_code != 200:
            raise error_from_answer(response.status_code, response.content)
        return msgspec.json.decode(response.content)

    # --- inference --------------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        return await self.call(
            "inference/chat_completion", request, ChatCompletionResponse, ChatCompletionResponseStreamChunk
        )

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        return await self.call("inference/completion", request, CompletionResponse, CompletionResponseStreamChunk)

    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        return await self.call("inference/batch_chat_completion", request, BatchChatCompletionResponse)

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        return await self.call("inference/batch_completion", request, BatchCompletionResponse)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        return await self.call("inference/embeddings", request, EmbeddingsResponse)

    # --- safety -----------------------------------------------------------------------------

    async def run_shields(self, request: RunShieldsRequest) -> RunShieldsResponse:
        return await self.call("safety/run_shields", request, RunShieldsResponse)

    # --- agentic system ---------------------------------------------------------------------

    async def create_agentic_system(self, request: AgenticSystemCreateRequest) -> AgenticSystemCreateResponse:
        return await self.call("agentic_system/create", request, AgenticSystemCreateResponse)

    async def delete_agentic_system(self, request: AgenticSystemDeleteRequest) -> None:
        return await self.call("agentic_system/delete", request, None)

    async def create_agentic_system_session(
        self, request: AgenticSystemSessionCreateRequest
    ) -> AgenticSystemSessionCreateResponse:
        return await self.call("agentic_system/session/create", request, AgenticSystemSessionCreateResponse)

    async def get_agentic_system_session(self, request: AgenticSystemSessionGetRequest) -> Session:
        return await self.call("agentic_system/session/get", request, Session)

    async def delete_agentic_system_session(self, request: AgenticSystemSessionDeleteRequest) -> None:
        return await self.call("agentic_system/session/delete", request, None)

    async def create_agentic_system_turn(
        self, request: AgenticSystemTurnCreateRequest
    ) -> AsyncIterator[AgenticSystemTurnResponseStreamChunk]:
        """Always a stream of turn events, as the server answers this route (whatever `stream` says)."""
        request_stream = msgspec.structs.replace(request, stream=True) if not request.stream else request
        return await self.call("agentic_system/turn/create", request_stream, Turn, AgenticSystemTurnResponseStreamChunk)

    async def get_agentic_system_turn(self, request: AgenticSystemTurnGetRequest) -> Turn:
        return await self.call("agentic_system/turn/get", request, Turn)

    async def get_agentic_system_step(self, request: AgenticSystemStepGetRequest) -> AgenticSystemStepResponse:
        return await self.call("agentic_system/step/get", request, AgenticSystemStepResponse)

    async def attach_memory_bank_to_agentic_system(self, request: AgenticSystemMemoryBankAttachRequest) -> None:
        return await self.call("agentic_system/memory_bank/attach", request, None)

    async def detach_memory_bank_from_agentic_system(self, request: AgenticSystemMemoryBankDetachRequest) -> None:
        return await self.call("agentic_system/memory_bank/detach", request, None)

    # --- memory -----------------------------------------------------------------------------

    async def create_memory_bank(self, request: CreateMemoryBankRequest) -> MemoryBank:
        return await self.call("memory_banks/create", request, MemoryBank)

    async def list_memory_banks(self, request: ListMemoryBanksRequest) -> list[MemoryBank]:
        return await self.call("memory_banks/list", request, list[MemoryBank])

    async def get_memory_bank(self, request: GetMemoryBankRequest) -> MemoryBank | None:
        return await self.call("memory_banks/get", request, MemoryBank | None)

    async def drop_memory_bank(self, request: DropMemoryBankRequest) -> str:
        return await self.call("memory_banks/drop", request, str)

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        return await self.call("memory_bank/insert", request, None)

    async def update_documents(self, request: UpdateDocumentsRequest) -> None:
        return await self.call("memory_bank/update", request, None)

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        return await self.call("memory_bank/query", request, QueryDocumentsResponse)

    async def get_documents(self, request: GetDocumentsRequest) -> list[MemoryBankDocument]:
        return await self.call("memory_bank/documents/get", request, list[MemoryBankDocument])

    async def delete_documents(self, request: DeleteDocumentsRequest) -> None:
        return await self.call("memory_bank/documents/delete", request, None)

    # --- models -----------------------------------------------------------------------------

    async def list_models(self, request: ModelsListRequest | None = None) -> list[Model]:
        return await self.call("models/list", request or ModelsListRequest(), list[Model])

    async def get_model(self, request: ModelsGetRequest) -> Model:
        return await self.call("models/get", request, Model)
