"""A fake stack for transport tests: deterministic inference and models, no model, no engine.

The fake assistant answers "You said: <last user text>" one word per token, cut before a stop
sequence as every provider cuts it. Prompts steer it:
`call <tool>` asks for a tool call, `fail` breaks the stream after its first word, `slow` sleeps
between words (for disconnect tests). `open_streams` counts chunk iterators not yet closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

from llama_core.errors import ModelNotFoundError, NotConfiguredError, ProviderError
from llama_core.providers.inference.stops import cut_text
from llama_core.stack import api_health
from llama_core.types import CompletionMessage, StopReason, ToolCall, content_text
from llama_core.types import inference as inf
from llama_core.types.models import Model, ModelsGetRequest, ModelsListRequest

MODEL = "Llama3.2-1B-Instruct"


def _check(model: str) -> None:
    if model != MODEL:
        raise ModelNotFoundError(model, [MODEL])


def _words(text: str, max_tokens: int, stops: list[str] | None = None) -> tuple[list[str], StopReason]:
    words = [w + " " for w in text.split(" ")]
    words[-1] = words[-1].rstrip()
    stop = StopReason.end_of_turn
    if max_tokens and len(words) > max_tokens:
        words, stop = words[:max_tokens], StopReason.out_of_tokens
    cut, stopped = cut_text("".join(words), stops or [])
    if stopped:
        return [w + " " for w in cut.split(" ")[:-1]] + [cut.split(" ")[-1]], StopReason.end_of_turn
    return words, stop


def _chunk(kind: str, delta: Any, stop: StopReason | None = None) -> inf.ChatCompletionResponseStreamChunk:
    event = inf.ChatCompletionResponseEvent(event_type=inf.ChatCompletionResponseEventType(kind), delta=delta, stop_reason=stop)
    return inf.ChatCompletionResponseStreamChunk(event=event)


class FakeInference:
    def __init__(self) -> None:
        self.open_streams = 0
        self.closed_streams = 0
        self.requests: list[Any] = []
        self.state = "ok"  # what health() reports (meta-reference's states: ok, starting, restarting, down)

    async def health(self) -> dict[str, Any]:
        return {"status": self.state}

    def _answer(self, request: inf.ChatCompletionRequest) -> CompletionMessage:
        last = content_text(request.messages[-1].content)
        if last.startswith("call ") and request.tools:
            call = ToolCall(call_id="call-1", tool_name=request.tools[0].tool_name, arguments={"x": 1})
            return CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[call])
        words, stop = _words(f"You said: {last}", request.sampling_params.max_tokens, request.sampling_params.stop)
        return CompletionMessage(content="".join(words), stop_reason=stop)

    async def chat_completion(self, request: inf.ChatCompletionRequest) -> Any:
        _check(request.model)
        self.requests.append(request)
        message = self._answer(request)
        if not request.stream:
            return inf.ChatCompletionResponse(completion_message=message)
        return self._chat_stream(request, message)

    async def _chat_stream(self, request: inf.ChatCompletionRequest, message: CompletionMessage) -> AsyncIterator[Any]:
        last = content_text(request.messages[-1].content)
        self.open_streams += 1
        try:
            yield _chunk("start", "")
            if message.tool_calls:
                yield _chunk("progress", inf.ToolCallDelta(content="", parse_status=inf.ToolCallParseStatus.started))
                yield _chunk("progress", inf.ToolCallDelta(content='{"x": 1}', parse_status=inf.ToolCallParseStatus.in_progress))
                success = inf.ToolCallDelta(content=message.tool_calls[0], parse_status=inf.ToolCallParseStatus.success)
                yield _chunk("progress", success, message.stop_reason)
            for i, word in enumerate(_words(content_text(message.content), 0)[0] if message.content else []):
                if i == 1 and last == "fail":
                    raise ProviderError("the fake engine broke")
                if last.startswith("slow"):
                    await anyio.sleep(0.05)
                yield _chunk("progress", word)
            yield _chunk("complete", "", message.stop_reason)
        finally:
            self.open_streams -= 1
            self.closed_streams += 1

    async def completion(self, request: inf.CompletionRequest) -> Any:
        _check(request.model)
        sp = request.sampling_params
        words, stop = _words(f"and then {content_text(request.content)}", sp.max_tokens, sp.stop)
        if not request.stream:
            return inf.CompletionResponse(content="".join(words), stop_reason=stop)
        return self._completion_stream(words, stop)

    async def _completion_stream(self, words: list[str], stop: StopReason) -> AsyncIterator[Any]:
        for i, word in enumerate(words):
            yield inf.CompletionResponseStreamChunk(delta=word, stop_reason=stop if i == len(words) - 1 else None)

    async def batch_chat_completion(self, request: inf.BatchChatCompletionRequest) -> inf.BatchChatCompletionResponse:
        _check(request.model)
        answers = [self._answer(inf.ChatCompletionRequest(model=request.model, messages=m)) for m in request.messages_batch]
        return inf.BatchChatCompletionResponse(completion_message_batch=answers)

    async def batch_completion(self, request: inf.BatchCompletionRequest) -> inf.BatchCompletionResponse:
        raise NotImplementedError  # an unexpected error: the server must answer 500 without details

    async def embeddings(self, request: inf.EmbeddingsRequest) -> inf.EmbeddingsResponse:
        _check(request.model)
        return inf.EmbeddingsResponse(embeddings=[[float(len(content_text(c))), 0.5] for c in request.contents])


class FakeModels:
    model = Model(descriptor=MODEL, core_model_id=MODEL, max_seq_length=131072, provider="fake")

    async def list_models(self, request: ModelsListRequest) -> list[Model]:
        return [self.model]

    async def get_model(self, request: ModelsGetRequest) -> Model:
        _check(request.core_model_id)
        return self.model


class FakeStack:
    """`api(name)` and `health()` as llama_core.stack.Stack: inference and models only."""

    def __init__(self) -> None:
        self.providers: dict[str, Any] = {"inference": FakeInference(), "models": FakeModels()}

    def api(self, name: str) -> Any:
        try:
            return self.providers[name]
        except KeyError:
            raise NotConfiguredError(f"This stack serves no {name} API: add a {name} provider to its run config.") from None

    async def health(self) -> dict[str, Any]:
        return await api_health(self.providers)
