"""OpenAI-compatible routes, mapped onto the stack's own inference and models APIs.

    POST /v1/chat/completions   -> inference.chat_completion   (chat.completion / chat.completion.chunk)
    POST /v1/completions        -> inference.completion        (text_completion)
    POST /v1/embeddings         -> inference.embeddings        (list of embedding)
    GET  /v1/models[/<id>]      -> models.list_models / get_model

Each is also served under /v1/openai/v1/, where llama-stack serves them. Streams are SSE with no
closing `data: [DONE]` unless the app was created with `openai_done=True`: llama-stack-client
cannot parse that line, and the openai client ends cleanly without it.

The mapping is pure: OpenAI request -> our request, our response or chunk -> OpenAI's dict. A value
we cannot honour (n > 1, penalties, logit_bias, logprobs, usage counts,
token-id inputs, embeddings `dimensions` other than the model's) is refused with a 400 naming the
field, never silently ignored. Sampling values are checked when the
body is decoded, against the same limits as the native routes (llama_core.types.common); `stop`
goes into the core request, whose provider stops generating there.

Non-goals: no Responses, Assistants, files or vector-store APIs; no token-array prompts.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response

from llama_core.errors import InvalidRequestError, UnsupportedError, shown
from llama_core.types import (
    CompletionMessage,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    TextContentItem,
    ToolCall,
    ToolDefinition,
    ToolParamDefinition,
    ToolResponseMessage,
    UserMessage,
    content_text,
)
from llama_core.types import inference as ours
from llama_core.types.models import ModelsGetRequest, ModelsListRequest
from llama_core.types.schema import MAX_JSON_DEPTH, decode_request, json_too_deep
from llama_rpc import openai_types as oa
from llama_rpc.errors import openai_error_body
from llama_rpc.sse import closing, sse_stream

PREFIXES = ("/v1", "/v1/openai/v1")

ROUTES: tuple[tuple[str, str], ...] = tuple(
    (verb, prefix + path)
    for prefix in PREFIXES
    for verb, path in (
        ("POST", "/chat/completions"),
        ("POST", "/completions"),
        ("POST", "/embeddings"),
        ("GET", "/models"),
        ("GET", "/models/{model_id}"),
    )
)

FINISH_REASONS = {
    StopReason.end_of_turn: "stop",
    StopReason.end_of_message: "stop",
    StopReason.out_of_tokens: "length",
}


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/")


# --- requests ---------------------------------------------------------------------------------


def _refuse_unless(ok: bool, field: str, what: str) -> None:
    if not ok:
        raise UnsupportedError(f"`{field}` is not supported here: {what}", field=field)


def _text(content: oa.OpenAIContent | None) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(part.text for part in content)


def sampling_params(
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None,
    stop: str | list[str] | None = None,
) -> SamplingParams:
    """OpenAI's knobs (already checked by the decoder) as ours: no temperature (or 0) is greedy, as
    llama-stack maps it; no max_tokens is "up to the context" (our 0)."""
    if not temperature:
        return SamplingParams(max_tokens=max_tokens or 0, seed=seed, stop=stop_list(stop))
    return SamplingParams(
        strategy=SamplingStrategy.top_p,
        temperature=temperature,
        top_p=1.0 if top_p is None else top_p,
        max_tokens=max_tokens or 0,
        seed=seed,
        stop=stop_list(stop),
    )


def _refuse_common(req: oa.OpenAIChatCompletionRequest | oa.OpenAICompletionRequest) -> None:
    _refuse_unless(req.n in (None, 1), "n", "one choice per request")
    _refuse_unless(not req.presence_penalty, "presence_penalty", "no penalties")
    _refuse_unless(not req.frequency_penalty, "frequency_penalty", "no penalties")
    _refuse_unless(not req.logit_bias, "logit_bias", "no logit bias")
    include_usage = req.stream_options is not None and req.stream_options.include_usage
    _refuse_unless(not include_usage, "stream_options.include_usage", "token counts are not reported")


def stop_list(stop: str | list[str] | None) -> list[str]:
    """OpenAI's `stop` (one string or a list) as our list."""
    return [stop] if isinstance(stop, str) else list(stop or [])


def _param_type(json_type: str | list[str] | None) -> str:
    return "string" if json_type is None else json_type if isinstance(json_type, str) else " | ".join(json_type)


def _tool_definition(tool: oa.OpenAITool) -> ToolDefinition:
    schema = tool.function.parameters or oa.OpenAIFunctionParameters()
    required = set(schema.required)
    params = {
        name: ToolParamDefinition(
            param_type=_param_type(prop.type),
            description=prop.description,
            required=name in required,
            default=prop.default,
        )
        for name, prop in schema.properties.items()
    }
    return ToolDefinition(tool_name=tool.function.name, description=tool.function.description, parameters=params)


def _tool_call(call: oa.OpenAIToolCall, field: str) -> ToolCall:
    text = call.function.arguments or "{}"
    if json_too_deep(text.encode()):  # json.loads recurses once per level
        raise InvalidRequestError(f"`{field}` is nested deeper than {MAX_JSON_DEPTH} levels", field=field)
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"`{field}` must be a JSON object", field=field)
    return ToolCall(call_id=call.id, tool_name=call.function.name, arguments=arguments)


def chat_messages(messages: list[oa.OpenAIMessage]) -> list[Any]:
    """OpenAI's messages as ours; a tool result takes its tool's name from the call it answers."""
    out: list[Any] = []
    tool_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        if isinstance(m, (oa.OpenAISystemMessage, oa.OpenAIDeveloperMessage)):
            out.append(SystemMessage(content=_text(m.content)))
        elif isinstance(m, oa.OpenAIUserMessage):
            content = m.content if isinstance(m.content, str) else [TextContentItem(text=p.text) for p in m.content]
            out.append(UserMessage(content=content))
        elif isinstance(m, oa.OpenAIAssistantMessage):
            calls = [
                _tool_call(c, f"messages[{i}].tool_calls[{j}].function.arguments")
                for j, c in enumerate(m.tool_calls or [])
            ]
            tool_names.update((c.call_id, c.tool_name) for c in calls)
            stop = StopReason.end_of_message if calls else StopReason.end_of_turn
            out.append(CompletionMessage(content=_text(m.content), stop_reason=stop, tool_calls=calls))
        else:
            name = tool_names.get(m.tool_call_id, "")
            out.append(ToolResponseMessage(call_id=m.tool_call_id, tool_name=name, content=_text(m.content)))
    return out


def chat_request(req: oa.OpenAIChatCompletionRequest) -> ours.ChatCompletionRequest:
    """An OpenAI chat request as ours."""
    _refuse_common(req)
    _refuse_unless(not req.logprobs, "logprobs", "log-probabilities are served by /inference/chat_completion")
    tools = [_tool_definition(t) for t in req.tools or []]
    choice = ours.ToolChoice.auto
    if req.tool_choice == "none":
        tools = []
    elif req.tool_choice == "required":
        choice = ours.ToolChoice.required
    elif isinstance(req.tool_choice, oa.OpenAINamedToolChoice):
        tools = [t for t in tools if t.tool_name == req.tool_choice.function.name]
        if not tools:
            raise InvalidRequestError("`tool_choice` names no tool of `tools`", field="tool_choice.function.name")
        choice = ours.ToolChoice.required
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    return ours.ChatCompletionRequest(
        model=req.model,
        messages=chat_messages(req.messages),
        sampling_params=sampling_params(req.temperature, req.top_p, max_tokens, req.seed, req.stop),
        tools=tools,
        tool_choice=choice,
        stream=bool(req.stream),
        response_format=response_format(req.response_format),
    )


def response_format(fmt: oa.OpenAIResponseFormat | None) -> ours.ResponseFormat | None:
    """OpenAI's response_format as ours: json_object is a schema of any object; text is none."""
    if isinstance(fmt, oa.OpenAIJsonObjectFormat):
        return ours.JsonSchemaResponseFormat(json_schema={"type": "object"})
    if isinstance(fmt, oa.OpenAIJsonSchemaFormat):
        return ours.JsonSchemaResponseFormat(json_schema=fmt.json_schema.schema)
    return None


def completion_request(req: oa.OpenAICompletionRequest) -> ours.CompletionRequest:
    _refuse_common(req)
    _refuse_unless(req.best_of in (None, 1), "best_of", "one candidate per request")
    _refuse_unless(req.logprobs is None, "logprobs", "log-probabilities are served by /inference/completion")
    _refuse_unless(not req.suffix, "suffix", "no insertion")
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    _refuse_unless(len(prompts) == 1, "prompt", "one prompt per request")
    return ours.CompletionRequest(
        model=req.model,
        content=prompts[0],
        sampling_params=sampling_params(req.temperature, req.top_p, req.max_tokens, req.seed, req.stop),
        stream=bool(req.stream),
    )


def embeddings_request(req: oa.OpenAIEmbeddingsRequest) -> ours.EmbeddingsRequest:
    """OpenAI's `input` (one text or a list) as our `contents`; token ids are refused: our models'
    tokenizers are not OpenAI's, so ids from tiktoken would mean other words here."""
    inputs = [req.input] if isinstance(req.input, str) else req.input
    _refuse_unless(all(isinstance(item, str) for item in inputs), "input", "token ids; send the text")
    return ours.EmbeddingsRequest(model=req.model, contents=[item for item in inputs if isinstance(item, str)])


# --- responses --------------------------------------------------------------------------------


def openai_tool_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """Our ToolCall as OpenAI's, arguments as a JSON string (with `index` inside a stream)."""
    out: dict[str, Any] = {} if index is None else {"index": index}
    out.update(id=call.call_id, type="function", function={"name": str(call.tool_name), "arguments": json.dumps(call.arguments)})
    return out


def finish_reason(stop_reason: StopReason | None, tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason is not None else "stop"


class Envelope:
    """The id, timestamp and model every object of one answer shares."""

    def __init__(self, model: str, id_prefix: str) -> None:
        self.id = f"{id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def wrap(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}


def chat_response(env: Envelope, response: ours.ChatCompletionResponse) -> dict[str, Any]:
    message = response.completion_message
    content = content_text(message.content)
    calls = [openai_tool_call(c) for c in message.tool_calls]
    out: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    reason = finish_reason(message.stop_reason, bool(calls))
    return env.wrap("chat.completion", [{"index": 0, "message": out, "logprobs": None, "finish_reason": reason}])


async def chat_chunks(
    env: Envelope, chunks: AsyncIterator[ours.ChatCompletionResponseStreamChunk]
) -> AsyncIterator[dict[str, Any]]:
    """Our chat stream as `chat.completion.chunk`s: role first, content pieces, tool calls, finish."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return env.wrap("chat.completion.chunk", [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])

    n_calls, raw_call = 0, ""
    async with closing(chunks):
        async for item in chunks:
            event = item.event
            if event.event_type == ours.ChatCompletionResponseEventType.start:
                yield chunk({"role": "assistant", "content": ""})
            elif event.event_type == ours.ChatCompletionResponseEventType.complete:
                yield chunk({}, finish_reason(event.stop_reason, n_calls > 0))
                return
            elif isinstance(event.delta, str):
                if event.delta:
                    yield chunk({"content": event.delta})
            elif event.delta.parse_status == ours.ToolCallParseStatus.success and isinstance(event.delta.content, ToolCall):
                yield chunk({"tool_calls": [openai_tool_call(event.delta.content, n_calls)]})
                n_calls += 1
            elif event.delta.parse_status == ours.ToolCallParseStatus.in_progress:
                raw_call += str(event.delta.content)
            elif event.delta.parse_status == ours.ToolCallParseStatus.failure and raw_call:
                yield chunk({"content": raw_call})  # an unparsed call is text after all
    yield chunk({}, "stop")  # a stream that ended without `complete`


def completion_response(env: Envelope, response: ours.CompletionResponse, prompt: str, echo: bool) -> dict[str, Any]:
    reason = finish_reason(response.stop_reason, False)
    choice = {"text": (prompt if echo else "") + response.content, "index": 0, "logprobs": None, "finish_reason": reason}
    return env.wrap("text_completion", [choice])


async def completion_chunks(
    env: Envelope, chunks: AsyncIterator[ours.CompletionResponseStreamChunk], prompt: str, echo: bool
) -> AsyncIterator[dict[str, Any]]:
    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        return env.wrap("text_completion", [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}])

    if echo:
        yield chunk(prompt)
    async with closing(chunks):
        async for item in chunks:
            if item.stop_reason is not None:
                yield chunk(item.delta, finish_reason(item.stop_reason, False))
                return
            if item.delta:
                yield chunk(item.delta)
    yield chunk("", "stop")


def embedding_item(index: int, vector: list[float], encoding: str) -> dict[str, Any]:
    """One vector, as floats or as base64 of little-endian float32 (the openai client's default)."""
    data: Any = vector
    if encoding == "base64":
        data = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return {"object": "embedding", "index": index, "embedding": data}


def embeddings_response(req: oa.OpenAIEmbeddingsRequest, result: ours.EmbeddingsResponse) -> dict[str, Any]:
    """OpenAI's `list` of `embedding`s, in `req.encoding_format`, with usage when the provider counted.
    `dimensions` other than the model's size is refused (MiniLM's vectors cannot be shortened)."""
    vectors = result.embeddings
    if req.dimensions is not None and vectors and len(vectors[0]) != req.dimensions:
        raise UnsupportedError(
            f"`dimensions` must be {len(vectors[0])} for {shown(req.model)}: its vectors cannot be shortened.",
            field="dimensions",
        )
    data = [embedding_item(i, v, req.encoding_format) for i, v in enumerate(vectors)]
    out: dict[str, Any] = {"object": "list", "data": data, "model": req.model}
    if result.usage is not None:
        out["usage"] = {"prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens}
    return out


def model_object(model: Any) -> dict[str, Any]:
    return {"id": model.descriptor, "object": "model", "created": 0, "owned_by": model.provider or "llama-toolchain"}


# --- routes -----------------------------------------------------------------------------------


def register(app: Quart, stack: Any, *, done: bool = False) -> None:
    """Add the OpenAI-compatible routes, under each of PREFIXES, to `app`."""
    from llama_rpc.http import json_response, request_data, sse_response

    def stream(items: AsyncIterator[Any]) -> Response:
        return sse_response(sse_stream(items, openai_error_body, done=done))

    async def chat_completions() -> Response:
        inference = stack.api("inference")
        req = decode_request(oa.OpenAIChatCompletionRequest, await request_data())
        ours_req, env = chat_request(req), Envelope(req.model, "chatcmpl")
        if req.stream:
            return stream(chat_chunks(env, await inference.chat_completion(ours_req)))
        return json_response(chat_response(env, await inference.chat_completion(ours_req)))

    async def completions() -> Response:
        inference = stack.api("inference")
        req = decode_request(oa.OpenAICompletionRequest, await request_data())
        ours_req, env = completion_request(req), Envelope(req.model, "cmpl")
        prompt, echo = str(ours_req.content), bool(req.echo)
        if req.stream:
            return stream(completion_chunks(env, await inference.completion(ours_req), prompt, echo))
        return json_response(completion_response(env, await inference.completion(ours_req), prompt, echo))

    async def embeddings() -> Response:
        inference = stack.api("inference")
        req = decode_request(oa.OpenAIEmbeddingsRequest, await request_data())
        result = await inference.embeddings(embeddings_request(req))
        return json_response(embeddings_response(req, result))

    async def list_models() -> Response:
        models = await stack.api("models").list_models(ModelsListRequest())
        return json_response({"object": "list", "data": [model_object(m) for m in models]})

    async def get_model(model_id: str) -> Response:
        model = await stack.api("models").get_model(ModelsGetRequest(core_model_id=model_id))
        return json_response(model_object(model))

    for prefix in PREFIXES:
        name = "openai" + prefix.replace("/", "_")
        app.add_url_rule(prefix + "/chat/completions", name + "_chat", chat_completions, methods=["POST"])
        app.add_url_rule(prefix + "/completions", name + "_completions", completions, methods=["POST"])
        app.add_url_rule(prefix + "/embeddings", name + "_embeddings", embeddings, methods=["POST"])
        app.add_url_rule(prefix + "/models", name + "_models", list_models, methods=["GET"])
        app.add_url_rule(prefix + "/models/<path:model_id>", name + "_model", get_model, methods=["GET"])
