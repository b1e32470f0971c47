"""Request bodies of the OpenAI-compatible routes, as msgspec Structs (responses are built as dicts).

Fields follow OpenAI's API reference. Unlike our own wire types, unknown fields are ignored: these
routes exist for clients we do not control, which add fields faster than we can list them. Fields we
cannot honour are listed (so a value we cannot serve is refused by name, in llama_rpc/openai.py).
Sampling fields take the core's limits (llama_core.types.common), so /v1 refuses what the native
routes refuse, with the same message. `max_tokens` must be at least 1 here: OpenAI has no 0 (our
"up to the context" is an absent max_tokens).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

import msgspec
from msgspec import Meta

from llama_core.choices import CHOICES_MAX
from llama_core.types.common import TOKENS_MAX, TOP_LOGPROBS_MAX, Seed, StopSequence, StopSequences, Temperature, TopP
from llama_core.types.inference import EMBEDDINGS_MAX_INPUTS

# A count of tokens to generate: OpenAI and vLLM refuse 0.
MaxTokens: TypeAlias = Annotated[int, Meta(ge=1, le=TOKENS_MAX)]
Choices: TypeAlias = Annotated[int, Meta(ge=1, le=CHOICES_MAX)]
TopLogprobs: TypeAlias = Annotated[int, Meta(ge=0, le=TOP_LOGPROBS_MAX)]


class _Struct(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class OpenAITextPart(_Struct, tag_field="type", tag="text"):
    text: str


# A message's content: a string or a list of parts (text only: no image or audio parts).
OpenAIContent: TypeAlias = str | list[OpenAITextPart]


class OpenAIFunctionCall(_Struct):
    name: str
    arguments: str  # a JSON object, as a string


class OpenAIToolCall(_Struct):
    id: str
    function: OpenAIFunctionCall
    type: Literal["function"] = "function"


class OpenAISystemMessage(_Struct, tag_field="role", tag="system"):
    content: OpenAIContent
    name: str | None = None


class OpenAIDeveloperMessage(_Struct, tag_field="role", tag="developer"):
    content: OpenAIContent
    name: str | None = None


class OpenAIUserMessage(_Struct, tag_field="role", tag="user"):
    content: OpenAIContent
    name: str | None = None


class OpenAIAssistantMessage(_Struct, tag_field="role", tag="assistant"):
    content: OpenAIContent | None = None
    tool_calls: list[OpenAIToolCall] | None = None
    name: str | None = None
    refusal: str | None = None


class OpenAIToolMessage(_Struct, tag_field="role", tag="tool"):
    content: OpenAIContent
    tool_call_id: str


OpenAIMessage: TypeAlias = OpenAISystemMessage | OpenAIDeveloperMessage | OpenAIUserMessage | OpenAIAssistantMessage | OpenAIToolMessage


class OpenAIParameter(_Struct):
    """One property of a function's parameters: the JSON Schema keywords a tool prompt shows and a
    forced call's grammar keeps (others, such as `items`, are accepted and not used)."""

    type: str | list[str] | None = None
    description: str | None = None
    default: Any = None
    enum: list[Any] | None = None


class OpenAIFunctionParameters(_Struct):
    """A function's parameters: a JSON Schema of an object (other keywords accepted, not used)."""

    type: Literal["object"] = "object"
    properties: dict[str, OpenAIParameter] = {}
    required: list[str] = []


class OpenAIFunctionDefinition(_Struct):
    name: str
    description: str | None = None
    parameters: OpenAIFunctionParameters | None = None
    strict: bool | None = None


class OpenAITool(_Struct):
    function: OpenAIFunctionDefinition
    type: Literal["function"] = "function"


class OpenAINamedFunction(_Struct):
    name: str


class OpenAINamedToolChoice(_Struct):
    function: OpenAINamedFunction
    type: Literal["function"] = "function"


class OpenAIJsonSchema(_Struct):
    """response_format.json_schema: the reply is valid against `schema` (any JSON value when absent)."""

    name: str
    schema: dict[str, Any] = {}
    description: str | None = None
    strict: bool | None = None


class OpenAITextFormat(_Struct, tag_field="type", tag="text"):
    pass


class OpenAIJsonObjectFormat(_Struct, tag_field="type", tag="json_object"):
    pass


class OpenAIJsonSchemaFormat(_Struct, tag_field="type", tag="json_schema"):
    json_schema: OpenAIJsonSchema


OpenAIResponseFormat: TypeAlias = OpenAITextFormat | OpenAIJsonObjectFormat | OpenAIJsonSchemaFormat


class OpenAIStreamOptions(_Struct):
    include_usage: bool | None = None


class OpenAIChatCompletionRequest(_Struct):
    """POST /v1/chat/completions."""

    model: str
    messages: Annotated[list[OpenAIMessage], Meta(min_length=1)]
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: Choices | None = None
    stop: StopSequence | StopSequences | None = None
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    seed: Seed | None = None
    logprobs: bool | None = None
    top_logprobs: TopLogprobs | None = None
    stream: bool | None = None
    stream_options: OpenAIStreamOptions | None = None
    tools: list[OpenAITool] | None = None
    tool_choice: Literal["none", "auto", "required"] | OpenAINamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: OpenAIResponseFormat | None = None
    user: str | None = None


class OpenAICompletionRequest(_Struct):
    """POST /v1/completions (the legacy text completion)."""

    model: str
    prompt: str | list[str]
    max_tokens: MaxTokens | None = 16
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: Choices | None = None
    best_of: int | None = None
    stop: StopSequence | StopSequences | None = None
    echo: bool | None = None
    suffix: str | None = None
    logprobs: TopLogprobs | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    seed: Seed | None = None
    stream: bool | None = None
    stream_options: OpenAIStreamOptions | None = None
    user: str | None = None


# Texts to embed: one, or a list (token-id arrays decode, to be refused by name in openai.py).
EmbeddingsInput: TypeAlias = str | Annotated[list[str | int | list[int]], Meta(min_length=1, max_length=EMBEDDINGS_MAX_INPUTS)]


class OpenAIEmbeddingsRequest(_Struct):
    """POST /v1/embeddings."""

    model: str
    input: EmbeddingsInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    user: str | None = None
