"""Inference over a vendor's OpenAI-style REST API (Fireworks, Together, vLLM, TGI's chat); tool schemas shared with Ollama.

    chat_completion  ->  POST {url}/v1/chat/completions   messages, tools, sampling (SSE if stream)
    completion       ->  POST {url}/v1/completions        prompt, sampling (SSE if stream)
    embeddings       ->  POST {url}/v1/embeddings        (a local embedding model's name: answered here)

Models: a registry descriptor (or its Hugging Face repo, or an older name) maps to the vendor's id
by the vendor's table; a name the registry does not know is sent as it is (a vendor's own id).
The API key is the config's `api_key`, else the request's provider data (`{"<vendor>_api_key": ...}`
in the X-LlamaStack-ProviderData header).

Streams give the meta-reference chunk sequence (llama_core.providers.inference.vendor_stream):
text deltas as progress, a leading `<|python_tag|>` as a started tool call, the vendor's own tool
calls once complete, then `complete` with the stop reason and the vendor's `usage` as `metrics`
(on whole answers too, where the vendor counted). The first request is sent before the
stream is returned, so refusals (401, 404, 429) are answered as statuses and retried where safe
(llama_core.providers.retry); a stream that breaks off later is a ProviderError.

Non-goals: no logprobs, no images, no vendor SDKs (plain httpx).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from llama_core.errors import InvalidRequestError, LlamaError, ModelNotFoundError, ProviderError, UnsupportedError
from llama_core.models.registry import resolve_model
from llama_core.prompt.tool_calls import offered
from llama_core.providers.inference.batch import chat_one_by_one, completion_one_by_one
from llama_core.providers.inference.local_embeddings import is_embedding_model, local_embeddings
from llama_core.providers.inference.usage import vendor_metrics
from llama_core.providers.inference.vendor_stream import (
    OpenStream,
    Piece,
    chat_chunks,
    completion_chunks,
    cut_piece,
    drain,
    error_message,
    stop_at,
    stream_lines,
    vendor_message,
    vendor_tool_call,
)
from llama_core.providers.provider_data import HEADER, provider_data
from llama_core.providers.retry import RetryPolicy, parse_retry_after, send_with_retries
from llama_core.providers.vendor_errors import stream_failure, vendor_error
from llama_core.redact import known_secrets, redact
from llama_core.sse import iter_sse_data
from llama_core.types import (
    BuiltinTool,
    Message,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResponseMessage,
    UserMessage,
    content_text,
)
from llama_core.types.inference import (
    JsonSchemaResponseFormat,
    ResponseFormat,
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
    EmbeddingsUsage,
    Metrics,
)

if TYPE_CHECKING:
    import httpx

# OpenAI finish_reason -> ours. "eos" is Together's; "tool_calls": the model waits for a tool's result.
FINISH_REASONS: dict[str, StopReason] = {
    "stop": StopReason.end_of_turn,
    "eos": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
    "tool_calls": StopReason.end_of_message,
    "function_call": StopReason.end_of_message,
}

# The parameters of the builtin tools, as the model calls them.
BUILTIN_PARAMS: dict[str, tuple[str, str]] = {
    BuiltinTool.brave_search: ("query", "The search query."),
    BuiltinTool.wolfram_alpha: ("query", "The Wolfram Alpha query."),
    BuiltinTool.photogen: ("query", "What the image should show."),
    BuiltinTool.code_interpreter: ("code", "Python code to run."),
}

def embeddings_usage(data: dict[str, Any]) -> EmbeddingsUsage | None:
    """The `usage` of a vendor's embeddings answer; None when it did not count."""
    usage = data.get("usage")
    if not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
        return None
    total = usage.get("total_tokens")
    return EmbeddingsUsage(prompt_tokens=usage["prompt_tokens"], total_tokens=total if isinstance(total, int) else usage["prompt_tokens"])


def usage_metrics(data: dict[str, Any]) -> Metrics:
    """The `usage` of a vendor's answer (or stream event) as metrics; UNSET when it did not count."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return msgspec.UNSET
    return vendor_metrics(usage.get("prompt_tokens"), usage.get("completion_tokens"))


# -- requests: our types -> OpenAI-style JSON ------------------------------------------------------


def tool_schema(tool: ToolDefinition) -> dict[str, Any]:
    """`{"type": "function", "function": {name, description, parameters: JSON Schema}}` for one tool."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    if tool.tool_name in BUILTIN_PARAMS:
        name, description = BUILTIN_PARAMS[tool.tool_name]
        properties[name] = {"type": "string", "description": description}
        required.append(name)
    for name, param in (tool.parameters or {}).items():
        prop: dict[str, Any] = {"type": param.param_type}
        if param.description:
            prop["description"] = param.description
        if param.default is not None:
            prop["default"] = param.default
        properties[name] = prop
        if param.required:
            required.append(name)
    function: dict[str, Any] = {"name": tool.tool_name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": function}


def openai_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    """A response_format as the OpenAI wire has it: a strict JSON schema (the vendors take no grammar here)."""
    if not isinstance(fmt, JsonSchemaResponseFormat):
        raise UnsupportedError("This vendor takes a JSON schema as response_format, not a grammar.", field="response_format")
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt.json_schema, "strict": True}}


def user_text(message: UserMessage) -> str:
    """A user turn's text, with its RAG context after a blank line (as the chat format lays it out)."""
    text = content_text(message.content)
    return text if message.context is None else f"{text}\n\n{content_text(message.context)}"


def openai_tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.tool_name, "arguments": json.dumps(call.arguments)},
    }


def openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages as OpenAI chat messages; tool calls and tool results keep their call ids."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": content_text(m.content)})
        elif isinstance(m, UserMessage):
            out.append({"role": "user", "content": user_text(m)})
        elif isinstance(m, ToolResponseMessage):
            out.append({"role": "tool", "tool_call_id": m.call_id, "content": content_text(m.content)})
        else:
            reply: dict[str, Any] = {"role": "assistant", "content": content_text(m.content)}
            if m.tool_calls:
                reply["tool_calls"] = [openai_tool_call(c) for c in m.tool_calls]
            out.append(reply)
    return out


def sampling_fields(sp: SamplingParams) -> dict[str, Any]:
    """temperature (0 for greedy), top_p or top_k by strategy, max_tokens when set, seed, repetition_penalty, stop."""
    fields: dict[str, Any] = {"temperature": 0.0 if sp.strategy == SamplingStrategy.greedy else sp.temperature}
    if sp.strategy == SamplingStrategy.top_p:
        fields["top_p"] = sp.top_p
    elif sp.strategy == SamplingStrategy.top_k:
        fields["top_k"] = sp.top_k
    if sp.max_tokens > 0:
        fields["max_tokens"] = sp.max_tokens
    return fields | seed_penalty_stop(sp)


def seed_penalty_stop(sp: SamplingParams) -> dict[str, Any]:
    """seed, repetition_penalty (unless 1) and stop (when set): named alike by OpenAI-style servers and TGI."""
    fields: dict[str, Any] = {}
    if sp.seed is not None:
        fields["seed"] = sp.seed
    if sp.repetition_penalty != 1.0:
        fields["repetition_penalty"] = sp.repetition_penalty
    if sp.stop:
        fields["stop"] = sp.stop
    return fields


async def sse_json(vendor: str, response: httpx.Response, secrets: Iterable[str] = ()) -> AsyncIterator[dict[str, Any]]:
    """The JSON object of each event's data up to `[DONE]`; an `{"error": ...}` event is a ProviderError
    (what the vendor sent redacted of `secrets`, llama_core.providers.vendor_errors)."""
    async with (
        contextlib.aclosing(stream_lines(vendor, response)) as lines,
        contextlib.aclosing(iter_sse_data(lines, drain)) as events,  # a cut after [DONE] loses nothing
    ):
        async for data in events:
            try:
                event = msgspec.json.decode(data)
            except msgspec.DecodeError:
                await drain(events)
                raise stream_failure(vendor, "sent a stream event that is not JSON", data, secrets) from None
            if isinstance(event, dict) and "error" in event:
                await drain(events)
                raise stream_failure(vendor, "failed during the stream", error_message(data.encode()), secrets)
            yield event


# -- the provider ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _ToolCallParts:
    """One streamed OpenAI tool call, its `arguments` arriving in pieces."""

    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def chat_pieces_from_choice(choice: Mapping[str, Any], finish_reasons: Mapping[str, StopReason]) -> Piece:
    """A whole (non-stream) choice as one Piece."""
    message = choice.get("message") or {}
    piece = Piece(text=message.get("content") or "")
    for raw in message.get("tool_calls") or []:
        function = raw.get("function") or {}
        call = vendor_tool_call(raw.get("id"), function.get("name", ""), function.get("arguments"))
        if call is None:
            piece.bad_calls.append(str(function.get("arguments")))
        else:
            piece.calls.append(call)
    piece.finish = finish_reasons.get(choice.get("finish_reason") or "stop", StopReason.end_of_turn)
    return piece


class OpenAIStyleInference:
    """apis.Inference over an OpenAI-style vendor API. Subclasses name the vendor and its model ids."""

    vendor: ClassVar[str]  # "Fireworks"
    key_name: ClassVar[str]  # the provider-data key of its API key: "fireworks_api_key"
    model_ids: ClassVar[Mapping[str, str]]  # core model id (descriptor without variant) -> vendor id
    finish_reasons: ClassVar[Mapping[str, StopReason]] = FINISH_REASONS
    chat_path: ClassVar[str] = "/chat/completions"  # under api_base

    def __init__(self, config: Any) -> None:
        self.config = config
        self.retry = RetryPolicy()
        self._http: httpx.AsyncClient | None = None

    @property
    def api_base(self) -> str:
        """The config's url with `/v1` once (the 2024 Fireworks url had none)."""
        url = self.config.url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"

    async def __aenter__(self) -> OpenAIStyleInference:
        import httpx

        self._http = httpx.AsyncClient(base_url=self.api_base, timeout=httpx.Timeout(300.0, connect=10.0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- models and keys -----------------------------------------------------------------------------

    async def served_models(self) -> list[str]:
        """The registry models this vendor's table maps (other names pass through as the vendor's own)."""
        return list(self.model_ids)

    def vendor_model(self, model_id: str) -> str:
        """The vendor's id of `model_id`; a name the registry does not know passes as the vendor's own."""
        try:
            model = resolve_model(model_id)
        except ModelNotFoundError:
            return model_id
        if model.core_model_id not in self.model_ids:
            known = ", ".join(self.model_ids)
            raise UnsupportedError(f"{model.descriptor} is not served by {self.vendor}; choose one of: {known}.", field="model")
        return self.model_ids[model.core_model_id]

    def api_key(self) -> str:
        """The config's key, else the one in this request's provider data.

        InvalidRequestError (400) if neither: the request lacks its provider data. Not a 401, which
        says the client's key for this server is wrong, and is what a chained stack's 401 means.
        """
        key = self.config.api_key or provider_data().get(self.key_name)
        if not key:
            raise InvalidRequestError(
                f"No {self.vendor} API key: set api_key in the run config (`llama stack configure`), or send "
                f'the header X-LlamaStack-ProviderData: {{"{self.key_name}": "<your key>"}}.',
                field=HEADER,
            )
        return str(key)

    def key_source(self) -> str:
        """Where the key of this request comes from, as a 401 asks the user to check it."""
        if self.config.api_key:
            return "the api_key in the run config"
        return f"the {self.key_name} in the request's X-LlamaStack-ProviderData header"

    def secrets(self) -> set[str]:
        """Every key this request could send: never repeated in an error or a log line."""
        return known_secrets(self.config)

    def auth_headers(self) -> dict[str, str]:
        """The credentials of one request: `Authorization: Bearer <api_key()>`."""
        return {"Authorization": f"Bearer {self.api_key()}"}

    async def model_for(self, model_id: str) -> str:
        """The vendor's id of `model_id` for one request (a self-hosted engine asks what it serves)."""
        return self.vendor_model(model_id)

    def unreachable(self, reason: str) -> LlamaError:
        """The error for a vendor that could not be reached (`reason` is redacted already)."""
        return ProviderError(f"Cannot reach {self.vendor} at {reason}")

    # -- HTTP ------------------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any], *, stream: bool = False) -> httpx.Response:
        import httpx

        assert self._http is not None, f"use `async with {type(self).__name__}(...)` first"
        http = self._http
        headers = {**self.auth_headers(), "Content-Type": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        content = msgspec.json.encode(body)
        try:
            response = await send_with_retries(
                http, lambda: http.build_request("POST", path, content=content, headers=headers), self.retry, stream=stream
            )
        except httpx.TransportError as e:
            raise self.unreachable(redact(f"{self.api_base}: {e or type(e).__name__}", self.secrets())) from None
        if response.status_code >= 400:
            wait = parse_retry_after(response.headers.get("retry-after"))
            reason = error_message(response.content)
            raise vendor_error(self.vendor, response.status_code, reason, secrets=self.secrets(), key=self.key_source(), wait=wait)
        return response

    def _check_logprobs(self, logprobs: Any) -> None:
        if logprobs is not None:
            raise UnsupportedError(f"logprobs are not offered through {self.vendor} here.", field="logprobs")

    def chat_body(self, request: ChatCompletionRequest, model: str | None = None) -> dict[str, Any]:
        """The vendor's /chat/completions body for `request` (`model`: the vendor's id, if known)."""
        body: dict[str, Any] = {
            "model": model or self.vendor_model(request.model),
            "messages": openai_messages(request.messages),
            **sampling_fields(request.sampling_params),
        }
        if request.tools:
            body["tools"] = [tool_schema(t) for t in request.tools]
            body["tool_choice"] = str(request.tool_choice)
        if request.response_format is not None:
            body["response_format"] = openai_response_format(request.response_format)
        if request.stream:
            body["stream"] = True
        return body

    # -- Inference ---------------------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """A reply to `request.messages`; a chunk stream (start, progress..., complete) if `stream`."""
        self._check_logprobs(request.logprobs)
        body = self.chat_body(request, await self.model_for(request.model))
        response = await self._post(self.chat_path, body, stream=request.stream)
        stops, tools = request.sampling_params.stop, offered(request.tools)
        if request.stream:
            pieces = stop_at(response, self._chat_pieces(response, self.secrets()), stops)
            return OpenStream(response, chat_chunks(self.vendor, pieces, tools))
        data = self._json(response)
        piece = cut_piece(chat_pieces_from_choice(self._first_choice(data), self.finish_reasons), stops)
        assert piece.finish is not None
        message = vendor_message(piece.text, piece.finish, piece.calls, tools=tools)
        return ChatCompletionResponse(completion_message=message, metrics=usage_metrics(data))

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """A raw continuation of `request.content`; a chunk stream if `stream`."""
        self._check_logprobs(request.logprobs)
        body: dict[str, Any] = {
            "model": await self.model_for(request.model),
            "prompt": content_text(request.content),
            **sampling_fields(request.sampling_params),
        }
        if request.response_format is not None:
            body["response_format"] = openai_response_format(request.response_format)
        if request.stream:
            body["stream"] = True
        response = await self._post("/completions", body, stream=request.stream)
        stops = request.sampling_params.stop
        if request.stream:
            pieces = stop_at(response, self._completion_pieces(response, self.secrets()), stops)
            return OpenStream(response, completion_chunks(self.vendor, pieces))
        data = self._json(response)
        choice = self._first_choice(data)
        stop = self.finish_reasons.get(choice.get("finish_reason") or "stop", StopReason.end_of_turn)
        piece = cut_piece(Piece(text=choice.get("text") or "", finish=stop), stops)
        return CompletionResponse(content=piece.text, stop_reason=piece.finish or stop, metrics=usage_metrics(data))

    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        """One reply per dialog, asked for one after another."""
        return await chat_one_by_one(self, request)

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        """One continuation per prompt, asked for one after another."""
        return await completion_one_by_one(self, request)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """One vector per item of `request.contents`: from the local model of that name if there is
        one (llama_core.embedding), else from the vendor's /embeddings."""
        if is_embedding_model(request.model):
            return await local_embeddings(request)
        body = {"model": await self.model_for(request.model), "input": [content_text(c) for c in request.contents]}
        data = self._json(await self._post("/embeddings", body))
        items = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        return EmbeddingsResponse(embeddings=[item["embedding"] for item in items], usage=embeddings_usage(data))

    # -- answers -----------------------------------------------------------------------------------

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            raise ProviderError(f"{self.vendor} answered with something that is not JSON.") from None
        if not isinstance(data, dict):
            raise ProviderError(f"{self.vendor} answered with JSON that is not an object.")
        return data

    def _first_choice(self, data: dict[str, Any]) -> dict[str, Any]:
        choices = data.get("choices") or []
        if not choices:
            raise ProviderError(f"{self.vendor} answered with no choices.")
        return choices[0]

    async def _chat_pieces(self, response: httpx.Response, secrets: set[str]) -> AsyncIterator[Piece]:
        parts: dict[int, _ToolCallParts] = {}
        async with contextlib.aclosing(sse_json(self.vendor, response, secrets)) as events:
            async for event in events:
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    for raw in delta.get("tool_calls") or []:
                        part = parts.setdefault(raw.get("index", len(parts)), _ToolCallParts())
                        function = raw.get("function") or {}
                        part.id = raw.get("id") or part.id
                        part.name = function.get("name") or part.name
                        part.arguments.append(function.get("arguments") or "")
                    piece = Piece(text=delta.get("content") or "")
                    reason = choice.get("finish_reason")
                    if reason:
                        piece.finish = self.finish_reasons.get(reason, StopReason.end_of_turn)
                        for part in parts.values():  # tool calls are whole once the choice finishes
                            call = vendor_tool_call(part.id, part.name, "".join(part.arguments))
                            if call is None:
                                piece.bad_calls.append("".join(part.arguments))
                            else:
                                piece.calls.append(call)
                        parts.clear()
                    yield piece
                if (metrics := usage_metrics(event)) is not msgspec.UNSET:  # with the last choice, or alone after it
                    yield Piece(metrics=metrics)

    async def _completion_pieces(self, response: httpx.Response, secrets: set[str]) -> AsyncIterator[Piece]:
        async with contextlib.aclosing(sse_json(self.vendor, response, secrets)) as events:
            async for event in events:
                for choice in event.get("choices") or []:
                    reason = choice.get("finish_reason")
                    finish = self.finish_reasons.get(reason, StopReason.end_of_turn) if reason else None
                    yield Piece(text=choice.get("text") or "", finish=finish)
                if (metrics := usage_metrics(event)) is not msgspec.UNSET:
                    yield Piece(metrics=metrics)
