"""Inference wire types: chat/completion/embedding requests, responses and stream chunks.

Streams follow the original server: a chat stream is `start` (delta ""), then `progress` events whose
delta is text or a ToolCallDelta, then `complete` (delta "", final stop_reason).

Token counts ride on responses as llama-stack's later servers report them: `metrics`, a list of
`{"metric": "prompt_tokens" | "completion_tokens" | "total_tokens", "value": n, "unit": null}`, on a
whole response and on the last chunk of a stream. A provider that cannot count leaves it out, and the
field is then absent from the wire (UNSET), as the original's responses had none.

Unions stay JSON-compatible with the original without tags: `str | ToolCall` and
`str | ToolCallDelta` each hold one string type and one Struct (a JSON object), which msgspec tells
apart by JSON type alone.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, TypeAlias

import msgspec
from msgspec import UNSET, Meta, UnsetType

from llama_core.types._base import Base
from llama_core.types.common import (
    Content,
    LogProbConfig,
    SamplingParams,
    StopReason,
    TokenLogProbs,
)
from llama_core.types.messages import (
    CompletionMessage,
    Message,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolPromptFormat,
)

# --- requests ---------------------------------------------------------------------------------


class JsonSchemaResponseFormat(Base, tag_field="type", tag="json_schema"):
    """The reply is one JSON value valid against `json_schema` (generation is constrained to it)."""

    json_schema: dict[str, Any]


class GrammarResponseFormat(Base, tag_field="type", tag="grammar"):
    """The reply matches a grammar: `bnf` holds its text under one key, `gbnf` (llama.cpp's GBNF)
    or `lark` (Lark, as llguidance reads it)."""

    bnf: dict[str, Any]


# The reference's `response_format` of chat_completion and completion, tagged on `type`.
ResponseFormat: TypeAlias = JsonSchemaResponseFormat | GrammarResponseFormat


# A dialog has at least one message (an empty one has nothing to answer; /v1 refuses it the same way).
Dialog: TypeAlias = Annotated[list[Message], Meta(min_length=1)]


class ChatCompletionRequest(Base):
    """POST /inference/chat_completion. `tools` are offered zero-shot; `stream` picks SSE.

    `tool_prompt_format` None means the model's own (python_list for Llama 3.2 text and 3.3, json
    for 3.1); the reply may call only the tools listed in `tools`, builtins included.
    """

    model: str
    messages: Dialog
    sampling_params: SamplingParams = msgspec.field(default_factory=SamplingParams)
    tools: list[ToolDefinition] = []
    tool_choice: ToolChoice = ToolChoice.auto
    tool_prompt_format: ToolPromptFormat | None = None
    stream: bool = False
    logprobs: LogProbConfig | None = None
    response_format: ResponseFormat | None = None


class CompletionRequest(Base):
    """POST /inference/completion: raw text continuation, no chat template."""

    model: str
    content: Content
    sampling_params: SamplingParams = msgspec.field(default_factory=SamplingParams)
    stream: bool = False
    logprobs: LogProbConfig | None = None
    response_format: ResponseFormat | None = None


class BatchChatCompletionRequest(Base):
    """POST /inference/batch_chat_completion: one dialog per item, same tools and sampling
    (`tool_prompt_format` None: the model's own, as ChatCompletionRequest)."""

    model: str
    messages_batch: list[Dialog]
    sampling_params: SamplingParams = msgspec.field(default_factory=SamplingParams)
    tools: list[ToolDefinition] = []
    tool_choice: ToolChoice = ToolChoice.auto
    tool_prompt_format: ToolPromptFormat | None = None
    logprobs: LogProbConfig | None = None


class BatchCompletionRequest(Base):
    """POST /inference/batch_completion: one prompt per item."""

    model: str
    content_batch: list[Content]
    sampling_params: SamplingParams = msgspec.field(default_factory=SamplingParams)
    logprobs: LogProbConfig | None = None


EMBEDDINGS_MAX_INPUTS = 2048  # texts per embeddings request: OpenAI's cap


class EmbeddingsRequest(Base):
    """POST /inference/embeddings: one vector per item of `contents` (parts of one item are joined)."""

    model: str
    contents: Annotated[list[Content], Meta(min_length=1, max_length=EMBEDDINGS_MAX_INPUTS)]


# --- responses --------------------------------------------------------------------------------


class MetricInResponse(Base):
    """One measurement of a response: `prompt_tokens` (the rendered prompt, special tokens included),
    `completion_tokens` (every token generated, a stop token included) or `total_tokens`; `unit`
    None for a count."""

    metric: str
    value: int | float
    unit: str | None = None


# The metrics of a response; UNSET (absent on the wire) when its provider did not count.
Metrics: TypeAlias = list[MetricInResponse] | UnsetType


class ChatCompletionResponse(Base):
    """The whole assistant message; `logprobs` (one entry per token) only when asked for; `metrics`
    the token counts when the provider counted."""

    completion_message: CompletionMessage
    logprobs: list[TokenLogProbs] | None = None
    metrics: Metrics = UNSET


class CompletionResponse(Base):
    content: str
    stop_reason: StopReason
    logprobs: list[TokenLogProbs] | None = None
    metrics: Metrics = UNSET


class BatchChatCompletionResponse(Base):
    completion_message_batch: list[CompletionMessage]


class BatchCompletionResponse(Base):
    completion_message_batch: list[CompletionMessage]


class EmbeddingsUsage(Base):
    """Tokens the embedding model read (after truncation, special tokens included), as OpenAI counts them."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(Base, omit_defaults=True):
    """`embeddings[i]` is the vector of `contents[i]`. `usage` is absent when the model's provider
    does not count (the original wire had only `embeddings`)."""

    embeddings: list[list[float]]
    usage: EmbeddingsUsage | None = None


# --- stream chunks ----------------------------------------------------------------------------


class ChatCompletionResponseEventType(enum.StrEnum):
    start = "start"
    progress = "progress"
    complete = "complete"


class ToolCallParseStatus(enum.StrEnum):
    """Where a streamed tool call stands: raw text arrives `started`/`in_progress`, then the parse."""

    started = "started"
    in_progress = "in_progress"
    failure = "failure"
    success = "success"


class ToolCallDelta(Base):
    """Raw tool-call text while it streams; the parsed ToolCall once `parse_status` is `success`."""

    content: str | ToolCall
    parse_status: ToolCallParseStatus


class ChatCompletionResponseEvent(Base):
    """One event of a chat stream; `stop_reason` is set once the stop token (or budget) is seen."""

    event_type: ChatCompletionResponseEventType
    delta: str | ToolCallDelta
    logprobs: list[TokenLogProbs] | None = None
    stop_reason: StopReason | None = None


class ChatCompletionResponseStreamChunk(Base):
    """One SSE `data:` line of a chat stream; the `complete` chunk carries the token counts (`metrics`)."""

    event: ChatCompletionResponseEvent
    metrics: Metrics = UNSET


class CompletionResponseStreamChunk(Base):
    """One SSE `data:` line of a completion stream: the next text piece; the last one (with
    `stop_reason`) carries the token counts (`metrics`)."""

    delta: str
    stop_reason: StopReason | None = None
    logprobs: list[TokenLogProbs] | None = None
    metrics: Metrics = UNSET
