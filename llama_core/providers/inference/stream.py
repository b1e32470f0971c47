"""The one chat-stream chunk sequence every inference provider gives:

    start ("")  ->  progress per text delta  ->  [tool-call deltas]  ->  complete ("", stop_reason)

Output that opens with <|python_tag|> streams as ToolCallDelta(in_progress) pieces after one
ToolCallDelta("", started). Once the whole message is decoded, each parsed call is one
ToolCallDelta(call, success); a tool call that was started but did not parse is one
ToolCallDelta("", failure).
"""

from __future__ import annotations

from llama_core.types import CompletionMessage, StopReason, TokenLogProbs
from llama_core.types.inference import (
    ChatCompletionResponseEvent,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)

EventType = ChatCompletionResponseEventType


def _chunk(
    event_type: EventType,
    delta: str | ToolCallDelta,
    stop_reason: StopReason | None = None,
    logprobs: list[TokenLogProbs] | None = None,
) -> ChatCompletionResponseStreamChunk:
    return ChatCompletionResponseStreamChunk(
        event=ChatCompletionResponseEvent(event_type=event_type, delta=delta, stop_reason=stop_reason, logprobs=logprobs)
    )


class ChatStream:
    """Builds the chunks of one chat stream from text deltas, then the final decoded message."""

    def __init__(self) -> None:
        self.in_tool_call = False

    def start(self) -> ChatCompletionResponseStreamChunk:
        return _chunk(EventType.start, "")

    def tool_call_started(self) -> ChatCompletionResponseStreamChunk:
        """The output opened with <|python_tag|>: what follows is tool-call text."""
        self.in_tool_call = True
        return _chunk(EventType.progress, ToolCallDelta(content="", parse_status=ToolCallParseStatus.started))

    def text(self, delta: str, logprobs: list[TokenLogProbs] | None = None) -> ChatCompletionResponseStreamChunk:
        if self.in_tool_call:
            return _chunk(
                EventType.progress,
                ToolCallDelta(content=delta, parse_status=ToolCallParseStatus.in_progress),
                logprobs=logprobs,
            )
        return _chunk(EventType.progress, delta, logprobs=logprobs)

    def finish(self, message: CompletionMessage) -> list[ChatCompletionResponseStreamChunk]:
        """Tool-call results (success per parsed call, or one failure), then `complete`."""
        chunks = []
        if self.in_tool_call and not message.tool_calls:
            failure = ToolCallDelta(content="", parse_status=ToolCallParseStatus.failure)
            chunks.append(_chunk(EventType.progress, failure, message.stop_reason))
        for call in message.tool_calls:
            success = ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
            chunks.append(_chunk(EventType.progress, success, message.stop_reason))
        chunks.append(_chunk(EventType.complete, "", message.stop_reason))
        return chunks
