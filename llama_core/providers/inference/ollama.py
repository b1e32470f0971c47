"""`remote::ollama` inference: a local Ollama server (default http://localhost:11434) over its REST API.

    chat_completion  ->  POST /api/chat      messages (tool calls both ways), tools, options
    completion       ->  POST /api/generate  raw prompt (no template), options
    embeddings       ->  POST /api/embed     (a local embedding model's name: answered here)
    start            ->  GET  /api/tags      is Ollama running?

Streams are NDJSON (one JSON object per line, the last with `done: true` and `done_reason`); they
become the meta-reference chunk sequence. Models: a registry descriptor maps to its Ollama tag by
OLLAMA_TAGS; any other name is taken as an Ollama tag (`mistral:7b`). Errors say what to do:
Ollama not running (start `ollama serve`), or the model not pulled (`ollama pull TAG`).

Non-goals: pulling models for the user, images, keep_alive tuning.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from llama_core.config import OllamaImplConfig
from llama_core.errors import ModelNotFoundError, NotFoundError, ProviderError, UnavailableError, UnsupportedError
from llama_core.models.registry import resolve_model
from llama_core.prompt.tool_calls import offered
from llama_core.providers.inference.batch import chat_one_by_one, completion_one_by_one
from llama_core.providers.inference.local_embeddings import is_embedding_model, local_embeddings
from llama_core.providers.inference.openai_compat import tool_schema, user_text
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
from llama_core.providers.retry import RetryPolicy, parse_retry_after, send_with_retries
from llama_core.providers.vendor_errors import stream_failure, vendor_error
from llama_core.redact import known_secrets, redact
from llama_core.types import (
    Message,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    ToolChoice,
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
)

if TYPE_CHECKING:
    import httpx

VENDOR = "Ollama"

# core model id -> Ollama tag (the fp16 builds, as the reference mapped them).
OLLAMA_TAGS: dict[str, str] = {
    "Llama3.1-8B-Instruct": "llama3.1:8b-instruct-fp16",
    "Llama3.1-70B-Instruct": "llama3.1:70b-instruct-fp16",
    "Llama3.1-405B-Instruct": "llama3.1:405b-instruct-fp16",
    "Llama3.2-1B-Instruct": "llama3.2:1b-instruct-fp16",
    "Llama3.2-3B-Instruct": "llama3.2:3b-instruct-fp16",
    "Llama3.2-11B-Vision-Instruct": "x/llama3.2-vision:11b-instruct-fp16",
    "Llama3.3-70B-Instruct": "llama3.3:70b-instruct-fp16",
    "Llama-Guard-3-8B": "llama-guard3:8b",
    "Llama-Guard-3-1B": "llama-guard3:1b",
    "SmolLM2-135M-Instruct": "smollm2:135m-instruct-fp16",
}

# Ollama's done_reason -> ours ("load"/"unload" answer an empty prompt; nothing was generated).
DONE_REASONS: dict[str, StopReason] = {
    "stop": StopReason.end_of_turn,
    "length": StopReason.out_of_tokens,
    "load": StopReason.end_of_turn,
    "unload": StopReason.end_of_turn,
}


def ollama_tag(model_id: str) -> str:
    """The Ollama tag serving `model_id`: a registry model's by OLLAMA_TAGS, any other name as is."""
    try:
        model = resolve_model(model_id)
    except ModelNotFoundError:
        return model_id
    if model.core_model_id not in OLLAMA_TAGS:
        known = ", ".join(OLLAMA_TAGS)
        raise UnsupportedError(f"{model.descriptor} has no Ollama build here; choose one of: {known}.", field="model")
    return OLLAMA_TAGS[model.core_model_id]


def ollama_format(fmt: ResponseFormat | None) -> dict[str, Any]:
    """Ollama's `format` for a response_format: the JSON schema itself (Ollama takes no grammar)."""
    if fmt is None:
        return {}
    if not isinstance(fmt, JsonSchemaResponseFormat):
        raise UnsupportedError("Ollama takes a JSON schema as response_format, not a grammar.", field="response_format")
    return {"format": fmt.json_schema}


def ollama_options(sp: SamplingParams) -> dict[str, Any]:
    """Ollama's `options`: temperature (0 for greedy), top_p/top_k by strategy, num_predict, seed,
    repeat_penalty, stop."""
    options: dict[str, Any] = {"temperature": 0.0 if sp.strategy == SamplingStrategy.greedy else sp.temperature}
    if sp.strategy == SamplingStrategy.top_p:
        options["top_p"] = sp.top_p
    elif sp.strategy == SamplingStrategy.top_k:
        options["top_k"] = sp.top_k
    if sp.max_tokens > 0:
        options["num_predict"] = sp.max_tokens
    if sp.seed is not None:
        options["seed"] = sp.seed
    if sp.repetition_penalty != 1.0:
        options["repeat_penalty"] = sp.repetition_penalty
    if sp.stop:
        options["stop"] = sp.stop
    return options


def ollama_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Our messages as /api/chat messages; tool calls carry their arguments as JSON objects."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": content_text(m.content)})
        elif isinstance(m, UserMessage):
            out.append({"role": "user", "content": user_text(m)})
        elif isinstance(m, ToolResponseMessage):
            out.append({"role": "tool", "content": content_text(m.content), "tool_name": m.tool_name})
        else:
            reply: dict[str, Any] = {"role": "assistant", "content": content_text(m.content)}
            if m.tool_calls:
                reply["tool_calls"] = [
                    {"function": {"name": c.tool_name, "arguments": c.arguments}} for c in m.tool_calls
                ]
            out.append(reply)
    return out


def chat_piece(line: dict[str, Any]) -> Piece:
    """One /api/chat answer object (a stream line, or the whole answer) as a Piece."""
    message = line.get("message") or {}
    piece = Piece(text=message.get("content") or "")
    for raw in message.get("tool_calls") or []:
        function = raw.get("function") or {}
        call = vendor_tool_call(raw.get("id"), function.get("name", ""), function.get("arguments"))
        if call is None:
            piece.bad_calls.append(str(function.get("arguments")))
        else:
            piece.calls.append(call)
    if line.get("done"):
        piece.finish = DONE_REASONS.get(line.get("done_reason") or "stop", StopReason.end_of_turn)
        piece.metrics = vendor_metrics(line.get("prompt_eval_count"), line.get("eval_count"))
    return piece


def generate_piece(line: dict[str, Any]) -> Piece:
    """One /api/generate answer object as a Piece (the last one with Ollama's token counts)."""
    if not line.get("done"):
        return Piece(text=line.get("response") or "")
    finish = DONE_REASONS.get(line.get("done_reason") or "stop", StopReason.end_of_turn)
    metrics = vendor_metrics(line.get("prompt_eval_count"), line.get("eval_count"))
    return Piece(text=line.get("response") or "", finish=finish, metrics=metrics)


async def ndjson(response: httpx.Response, secrets: set[str]) -> AsyncIterator[dict[str, Any]]:
    """The objects of an NDJSON stream; an `{"error": ...}` line is a ProviderError (redacted of `secrets`)."""
    async with contextlib.aclosing(stream_lines(VENDOR, response)) as lines:
        async for line in lines:
            if not line.strip():
                continue
            try:
                data = msgspec.json.decode(line)
            except msgspec.DecodeError:
                await drain(lines)
                raise stream_failure(VENDOR, "sent a stream line that is not JSON", line, secrets) from None
            if isinstance(data, dict) and "error" in data:
                await drain(lines)
                raise stream_failure(VENDOR, "failed during the stream", error_message(line.encode()), secrets)
            yield data


class OllamaInference:
    """apis.Inference served by an Ollama server. An async context manager: entering checks it runs."""

    def __init__(self, config: OllamaImplConfig) -> None:
        self.config = config
        self.url = config.url.rstrip("/")
        self.shown_url = redact(self.url)  # for messages: a url may carry user:password@
        # A local server: a refused connection means "not running", so it is not retried.
        self.retry = RetryPolicy(retry_connect_errors=False)
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> OllamaInference:
        import httpx

        self._http = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(300.0, connect=5.0))
        try:
            await self.pulled_tags()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def not_running(self) -> UnavailableError:
        return UnavailableError(f"Ollama is not running at {self.shown_url}: start it with `ollama serve` in a separate terminal.")

    async def _send(self, verb: str, path: str, body: dict[str, Any] | None, *, stream: bool = False, tag: str = "") -> httpx.Response:
        import httpx

        assert self._http is not None, "use `async with OllamaInference(...)` first"
        http = self._http
        content = msgspec.json.encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            response = await send_with_retries(
                http, lambda: http.build_request(verb, path, content=content, headers=headers), self.retry, stream=stream
            )
        except httpx.ConnectError:
            raise self.not_running() from None
        except httpx.TransportError as e:
            raise ProviderError(redact(f"Ollama at {self.url} failed: {e or type(e).__name__}", known_secrets())) from None
        if response.status_code == 404 and tag:
            raise NotFoundError(f"Model {tag} is not pulled in Ollama at {self.shown_url}: run `ollama pull {tag}` first.")
        if response.status_code >= 400:
            wait = parse_retry_after(response.headers.get("retry-after"))
            # Ollama takes no key: a 401/403 comes from something in front of it.
            key = f"what is in front of Ollama at {self.shown_url} (this stack sends it no credentials)"
            raise vendor_error(VENDOR, response.status_code, error_message(response.content), secrets=known_secrets(), key=key, wait=wait)
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            raise ProviderError("Ollama answered with something that is not JSON.") from None
        if not isinstance(data, dict):
            raise ProviderError("Ollama answered with JSON that is not an object.")
        return data

    async def pulled_tags(self) -> list[str]:
        """The tags Ollama has pulled (GET /api/tags); UnavailableError if it is not running."""
        models = self._json(await self._send("GET", "/api/tags", None)).get("models") or []
        return [m.get("name") or m.get("model") for m in models]

    async def served_models(self) -> list[str]:
        """What Ollama has pulled: registry descriptors where a tag is one of ours, else the tag."""
        descriptors = {tag: core_id for core_id, tag in OLLAMA_TAGS.items()}
        return [descriptors.get(tag, tag) for tag in await self.pulled_tags()]

    # -- Inference ---------------------------------------------------------------------------------

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncIterator[ChatCompletionResponseStreamChunk]:
        """A reply to `request.messages` from /api/chat; a chunk stream (start, progress..., complete) if `stream`."""
        if request.logprobs is not None:
            raise UnsupportedError("Ollama does not return logprobs.", field="logprobs")
        tag = ollama_tag(request.model)
        body: dict[str, Any] = {
            "model": tag,
            "messages": ollama_messages(request.messages),
            "options": ollama_options(request.sampling_params),
            "stream": request.stream,
        }
        if request.tools and request.tool_choice != ToolChoice.none:
            if request.tool_choice == ToolChoice.required:
                raise UnsupportedError("Ollama cannot be made to call a tool (tool_choice 'required').", field="tool_choice")
            body["tools"] = [tool_schema(t) for t in request.tools]
        body |= ollama_format(request.response_format)
        response = await self._send("POST", "/api/chat", body, stream=request.stream, tag=tag)
        stops, tools = request.sampling_params.stop, offered(request.tools)
        if request.stream:
            pieces = stop_at(response, self._pieces(response, chat_piece, known_secrets()), stops)
            return OpenStream(response, chat_chunks(VENDOR, pieces, tools))
        piece = cut_piece(chat_piece(self._json(response)), stops)
        if piece.finish is None:
            raise ProviderError("Ollama's answer is not done.")
        message = vendor_message(piece.text, piece.finish, piece.calls, tools=tools)
        return ChatCompletionResponse(completion_message=message, metrics=piece.metrics)

    async def completion(
        self, request: CompletionRequest
    ) -> CompletionResponse | AsyncIterator[CompletionResponseStreamChunk]:
        """A raw continuation of `request.content` from /api/generate (raw: no template); a chunk stream if `stream`."""
        if request.logprobs is not None:
            raise UnsupportedError("Ollama does not return logprobs.", field="logprobs")
        tag = ollama_tag(request.model)
        body = {
            "model": tag,
            "prompt": content_text(request.content),
            "raw": True,
            "options": ollama_options(request.sampling_params),
            "stream": request.stream,
        } | ollama_format(request.response_format)
        response = await self._send("POST", "/api/generate", body, stream=request.stream, tag=tag)
        stops = request.sampling_params.stop
        if request.stream:
            pieces = stop_at(response, self._pieces(response, generate_piece, known_secrets()), stops)
            return OpenStream(response, completion_chunks(VENDOR, pieces))
        piece = cut_piece(generate_piece(self._json(response)), stops)
        if piece.finish is None:
            raise ProviderError("Ollama's answer is not done.")
        return CompletionResponse(content=piece.text, stop_reason=piece.finish, metrics=piece.metrics)

    async def batch_chat_completion(self, request: BatchChatCompletionRequest) -> BatchChatCompletionResponse:
        """One reply per dialog, asked for one after another."""
        return await chat_one_by_one(self, request)

    async def batch_completion(self, request: BatchCompletionRequest) -> BatchCompletionResponse:
        """One continuation per prompt, asked for one after another."""
        return await completion_one_by_one(self, request)

    async def embeddings(self, request: EmbeddingsRequest) -> EmbeddingsResponse:
        """One vector per item of `request.contents`: from the local model of that name if there is
        one (llama_core.embedding), else from Ollama's /api/embed."""
        if is_embedding_model(request.model):
            return await local_embeddings(request)
        tag = ollama_tag(request.model)
        body = {"model": tag, "input": [content_text(c) for c in request.contents]}
        data = self._json(await self._send("POST", "/api/embed", body, tag=tag))
        tokens = data.get("prompt_eval_count")
        usage = EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens) if isinstance(tokens, int) else None
        return EmbeddingsResponse(embeddings=data.get("embeddings") or [], usage=usage)

    async def _pieces(self, response: httpx.Response, piece_of: Any, secrets: set[str]) -> AsyncIterator[Piece]:
        async with contextlib.aclosing(ndjson(response, secrets)) as lines:
            async for line in lines:
                yield piece_of(line)
