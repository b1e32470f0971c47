"""The one chat-stream chunk sequence every inference provider gives:

    start ("")  ->  progress per text delta  ->  [tool-call deltas]  ->  complete ("", stop_reason)

A reply is either content or tool calls, never both, streamed or not. So while the reply may still
become a call to an offered tool (it opens with `{`, `[`, `<function=`, `<|python_tag|>` or an
offered builtin's `name.call(`: tool_calls.may_open_call), its text is held back. Text that turns
out to be prose is sent at once as one delta; held text that never does waits for the end.

Output that opens with the <|python_tag|> token streams as ToolCallDelta(in_progress) pieces after
one ToolCallDelta("", started). Once the whole message is decoded, each parsed call is one
ToolCallDelta(call, success). When no call parsed, a started call ends with ToolCallDelta("",
failure), and the held text (the message's content) follows as a text delta. The logprobs of held
text come once, with the first call or with that text delta. With no tools offered nothing is held
and nothing is a call.
"""

from __future__ import annotations

from collections.abc import Collection

from llama_core.prompt.tool_calls import may_open_call
from llama_core.types import CompletionMessage, StopReason, TokenLogProbs, content_text
from llama_core.types.inference import (
    ChatCompletionResponseEvent,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)

EventType = ChatCompletionResponseEventType
Chunks = list[ChatCompletionResponseStreamChunk]


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
    """Builds the chunks of one chat stream from text deltas, then the final decoded message.

    `tools` names the tools the request offered (builtins included); with none, text is never held.
    """

    def __init__(self, tools: Collection[str] = ()) -> None:
        self.tools = frozenset(tools)
        self.in_tool_call = False  # the reply opened with <|python_tag|>
        self.holding = bool(self.tools)  # the text so far may still become a call
        self.held: list[str] = []
        self.held_logprobs: list[TokenLogProbs] = []

    def start(self) -> ChatCompletionResponseStreamChunk:
        return _chunk(EventType.start, "")

    def tool_call_started(self) -> Chunks:
        """The output opened with <|python_tag|>: what follows is tool-call text (if tools were offered)."""
        if not self.tools:
            return []
        self.in_tool_call = True
        return [_chunk(EventType.progress, ToolCallDelta(content="", parse_status=ToolCallParseStatus.started))]

    def text(self, delta: str, logprobs: list[TokenLogProbs] | None = None) -> Chunks:
        """The chunks to send for `delta` now: none while the reply may still become a call."""
        if self.in_tool_call:  # its logprobs go with what it turns out to be: the call, or the content
            self.held_logprobs += logprobs or []
            in_progress = ToolCallDelta(content=delta, parse_status=ToolCallParseStatus.in_progress)
            return [_chunk(EventType.progress, in_progress)]
        if not self.holding:
            return [_chunk(EventType.progress, delta, logprobs=logprobs)]
        self.held.append(delta)
        self.held_logprobs += logprobs or []
        text = "".join(self.held)
        if may_open_call(text, self.tools):
            return []
        self.holding = False  # prose after all: everything held goes at once
        return [_chunk(EventType.progress, text, logprobs=self._take_logprobs())]

    def finish(self, message: CompletionMessage) -> Chunks:
        """The calls (success each), or else the held text as content; then `complete`."""
        chunks = []
        stop = message.stop_reason
        if message.tool_calls:
            for call in message.tool_calls:
                success = ToolCallDelta(content=call, parse_status=ToolCallParseStatus.success)
                chunks.append(_chunk(EventType.progress, success, stop, logprobs=self._take_logprobs()))
        else:
            if self.in_tool_call:
                failure = ToolCallDelta(content="", parse_status=ToolCallParseStatus.failure)
                chunks.append(_chunk(EventType.progress, failure, stop))
            text = content_text(message.content)
            if (self.holding or self.in_tool_call) and text:
                chunks.append(_chunk(EventType.progress, text, logprobs=self._take_logprobs()))
        chunks.append(_chunk(EventType.complete, "", stop))
        return chunks

    def _take_logprobs(self) -> list[TokenLogProbs] | None:
        taken, self.held_logprobs = self.held_logprobs, []
        return taken or None
