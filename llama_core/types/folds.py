"""Chunk streams folded back into the one answer a call without `stream` gives, per chunk type.

    fold(ChatCompletionResponseStreamChunk, chunks)     -> ChatCompletionResponse
    fold(CompletionResponseStreamChunk, chunks)         -> CompletionResponse
    fold(AgenticSystemTurnResponseStreamChunk, chunks)  -> Turn (the turn_complete event's)
    chunk_text(chunk)                                   -> the text a chunk adds ("" for none)

Beside the chunk types (the wire contract), so every transport that waits for a whole answer
(JSON-RPC, MCP) folds a stream the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from llama_core.errors import LlamaError
from llama_core.types.agents import AgenticSystemTurnResponseStreamChunk, Turn
from llama_core.types.common import StopReason
from llama_core.types.inference import (
    ChatCompletionResponse,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    CompletionResponse,
    CompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)
from llama_core.types.messages import CompletionMessage, ToolCall


def _chat_text(chunk: ChatCompletionResponseStreamChunk) -> str:
    delta = chunk.event.delta
    if isinstance(delta, ToolCallDelta):
        return delta.content if isinstance(delta.content, str) else ""
    return delta


def fold_chat(chunks: list[ChatCompletionResponseStreamChunk]) -> ChatCompletionResponse:
    """The ChatCompletionResponse a non-streaming call would have given."""
    text, calls, logprobs, stop, metrics = [], [], [], None, msgspec.UNSET
    for chunk in chunks:
        metrics = chunk.metrics if chunk.metrics is not msgspec.UNSET else metrics  # the complete chunk's counts
        event = chunk.event
        delta = event.delta
        if isinstance(delta, str):
            if event.event_type == ChatCompletionResponseEventType.progress:
                text.append(delta)
        elif delta.parse_status == ToolCallParseStatus.success and isinstance(delta.content, ToolCall):
            calls.append(delta.content)
        logprobs += event.logprobs or []
        stop = event.stop_reason or stop
    message = CompletionMessage(content="".join(text), stop_reason=stop or StopReason.out_of_tokens, tool_calls=calls)
    return ChatCompletionResponse(completion_message=message, logprobs=logprobs or None, metrics=metrics)


def fold_completion(chunks: list[CompletionResponseStreamChunk]) -> CompletionResponse:
    """The CompletionResponse a non-streaming call would have given."""
    logprobs = [lp for c in chunks for lp in c.logprobs or []]
    stop = next((c.stop_reason for c in reversed(chunks) if c.stop_reason is not None), StopReason.out_of_tokens)
    metrics = next((c.metrics for c in reversed(chunks) if c.metrics is not msgspec.UNSET), msgspec.UNSET)
    text = "".join(c.delta for c in chunks)
    return CompletionResponse(content=text, stop_reason=stop, logprobs=logprobs or None, metrics=metrics)


def fold_turn(chunks: list[AgenticSystemTurnResponseStreamChunk]) -> Turn:
    """The finished Turn of the last turn_complete event; LlamaError if the stream has none."""
    for chunk in reversed(chunks):
        turn = getattr(chunk.event.payload, "turn", None)
        if turn is not None:
            return turn
    raise LlamaError("The turn's event stream ended without a turn_complete event.")


@dataclass(frozen=True, slots=True)
class Fold:
    """How one kind of stream reads as text (for progress) and folds into the plain result."""

    text: Callable[[Any], str]
    fold: Callable[[list[Any]], Any]


FOLDS: dict[type, Fold] = {
    ChatCompletionResponseStreamChunk: Fold(_chat_text, fold_chat),
    CompletionResponseStreamChunk: Fold(lambda c: c.delta, fold_completion),
    AgenticSystemTurnResponseStreamChunk: Fold(lambda c: getattr(c.event.payload, "model_response_text_delta", None) or "", fold_turn),
}


def fold(chunk_type: type | None, chunks: list[Any]) -> Any:
    """The one answer `chunks` (of `chunk_type`) stand for; the list itself for a type with no fold."""
    way = FOLDS.get(chunk_type) if chunk_type is not None else None
    return way.fold(chunks) if way is not None else chunks


def chunk_text(chunk: Any) -> str:
    """The text `chunk` adds to its answer ("" for a chunk of no text, or of a type with no fold)."""
    way = FOLDS.get(type(chunk))
    return way.text(chunk) if way is not None else ""
