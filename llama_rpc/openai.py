"""OpenAI-compatible routes, mapped onto the stack's own inference and models APIs.

    POST /v1/chat/completions   -> inference.chat_completion   (chat.completion / chat.completion.chunk)
    POST /v1/completions        -> inference.completion        (text_completion)
    POST /v1/embeddings         -> inference.embeddings        (list of embedding)
    GET  /v1/models[/<id>]      -> models.list_models / get_model

Each is also served under /v1/openai/v1/, where llama-stack serves them. Streams are SSE ending
with `data: [DONE]` under /v1, as OpenAI's do (SSE clients wait for it); under /v1/openai/v1 they
end without it, as llama-stack's do, since llama-stack-client cannot parse that line (the app's
`openai_done` sets it for both).

Every chat and completion answer has OpenAI's `usage` (prompt, completion and total tokens), from
the provider's `metrics`; a stream with `stream_options.include_usage` carries `usage: null` on each
chunk and ends with one chunk of `choices: []` and the usage. `max_tokens` is a promise here, as
OpenAI and vLLM keep it: a prompt that leaves less room in the context is a 400 before anything is
generated (llama_core.providers.inference.budget), where the native routes stop at the context.

The mapping is pure: OpenAI request -> our request, our response or chunk -> OpenAI's dict. A value
we cannot honour (penalties, logit_bias, token-id inputs, prompt logprobs, embeddings `dimensions`
other than the model's) is refused with a 400 naming the field, never silently ignored. Sampling
values are checked when the body is decoded, against the same limits as the native routes
(llama_core.types.common); `stop` goes into the core request, whose provider stops generating there.
`response_format` (json_object, json_schema) constrains the reply by the engine's grammar.

`n` > 1 asks the core for n choices at once (llama_core.choices: each its own sequence in the
engine's batch, seeds told apart); a stream interleaves their chunks, each with its choice's
`index`. `logprobs` (chat: `logprobs` and `top_logprobs`; completions: `logprobs` k) come from the
engine's own log-probabilities of each generated token, kept to the returned text (no end-of-turn
token, no stop sequence's tokens: llama_rpc/openai_logprobs.py), in OpenAI's shapes:
chat `{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}`, completions
`{tokens, token_logprobs, top_logprobs, text_offset}`.

Non-goals: no Responses, Assistants, files or vector-store APIs; no token-array prompts.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
from quart import Quart, Response

from llama_core.choices import all_choices, choice_requests, interleave
from llama_core.errors import InvalidRequestError, UnsupportedError, shown
from llama_core.providers.inference.budget import strict_max_tokens
from llama_core.providers.inference.usage import usage
from llama_core.types import (
    CompletionMessage,
    LogProbConfig,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    TextContentItem,
    TokenLogProbs,
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
from llama_rpc.openai_logprobs import Joined, joined
from llama_rpc.sse import closing, sse_stream

# Each prefix, and whether its streams end with `data: [DONE]`: OpenAI's path does, as OpenAI does;
# llama-stack's does not, as llama-stack does (llama-stack-client fails on that line).
DONE_LINE = {"/v1": True, "/v1/openai/v1": False}
PREFIXES = tuple(DONE_LINE)

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
    _refuse_unless(not req.presence_penalty, "presence_penalty", "no penalties")
    _refuse_unless(not req.frequency_penalty, "frequency_penalty", "no penalties")
    _refuse_unless(not req.logit_bias, "logit_bias", "no logit bias")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError("`stream_options` is only allowed when `stream` is true.", field="stream_options")


# Our completion's fields by /v1's names, for the `param` of an error the core raised.
PROMPT_FIELDS = {"content": "prompt"}


@contextlib.contextmanager
def fields_renamed(names: dict[str, str]) -> Iterator[None]:
    """Errors raised inside name their field as /v1 does (`content` -> `prompt`)."""
    try:
        yield
    except InvalidRequestError as error:
        head, dot, rest = (error.field or "").partition(".")
        if head in names:
            error.field = names[head] + dot + rest
        raise


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
            enum=prop.enum,
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
    if req.top_logprobs is not None and not req.logprobs:
        raise InvalidRequestError("`top_logprobs` needs `logprobs: true`", field="top_logprobs")
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
        logprobs=LogProbConfig(top_k=req.top_logprobs or 0) if req.logprobs else None,
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
    _refuse_unless(req.logprobs is None or not req.echo, "echo", "no log-probabilities of the prompt; drop `echo` or `logprobs`")
    _refuse_unless(not req.suffix, "suffix", "no insertion")
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    _refuse_unless(len(prompts) == 1, "prompt", "one prompt per request")
    return ours.CompletionRequest(
        model=req.model,
        content=prompts[0],
        sampling_params=sampling_params(req.temperature, req.top_p, req.max_tokens, req.seed, req.stop),
        stream=bool(req.stream),
        logprobs=LogProbConfig(top_k=req.logprobs) if req.logprobs is not None else None,
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
    """The id, timestamp and model every object of one answer shares; `include_usage`: a stream's
    chunks carry `usage: null`, and `usage_chunk` ends it (stream_options.include_usage)."""

    def __init__(self, model: str, id_prefix: str, stream_options: oa.OpenAIStreamOptions | None = None) -> None:
        self.id = f"{id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = bool(stream_options is not None and stream_options.include_usage)

    def wrap(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}

    def answer(self, kind: str, choices: list[dict[str, Any]], metrics: list[ours.Metrics]) -> dict[str, Any]:
        """A whole answer: its choices and their usage (null when the provider did not count)."""
        return {**self.wrap(kind, choices), "usage": choices_usage(metrics)}

    def chunk(self, kind: str, choice: dict[str, Any]) -> dict[str, Any]:
        """One chunk of a stream: one choice, and `usage: null` when the usage comes last."""
        out = self.wrap(kind, [choice])
        if self.include_usage:
            out["usage"] = None
        return out

    def usage_chunk(self, kind: str, metrics: list[ours.Metrics]) -> list[dict[str, Any]]:
        """The stream's last chunk, `choices: []` with the usage, if the client asked for it."""
        return [{**self.wrap(kind, []), "usage": choices_usage(metrics)}] if self.include_usage else []


def choices_usage(metrics: list[ours.Metrics]) -> dict[str, int] | None:
    """The usage of n choices of one prompt, as OpenAI and vLLM count it: the prompt once, every
    choice's completion; None unless each choice was counted."""
    counts = [usage(m) for m in metrics]
    if not counts or any(c is None for c in counts):
        return None
    prompt, completion = counts[0]["prompt_tokens"], sum(c["completion_tokens"] for c in counts)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def with_usage(
    env: Envelope, kind: str, chunks: AsyncIterator[dict[str, Any]], counts: list[ours.Metrics]
) -> AsyncIterator[dict[str, Any]]:
    """`chunks`, then the usage chunk of every choice's `counts` (filled as their streams end)."""
    async with closing(chunks):
        async for chunk in chunks:
            yield chunk
    for last in env.usage_chunk(kind, counts):
        yield last


def _token_logprob(lp: TokenLogProbs) -> tuple[str, float]:
    """The generated token's text and log-probability (a provider that gives only the original's
    `logprobs_by_token` puts the generated token first)."""
    if lp.token is not None and lp.logprob is not None:
        return lp.token, lp.logprob
    return next(iter(lp.logprobs_by_token.items()))


def _logprob_entry(lp: TokenLogProbs) -> dict[str, Any]:
    token, logprob = _token_logprob(lp)
    top = [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes} for t in lp.top_logprobs or []]
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()) if lp.bytes is None else lp.bytes, "top_logprobs": top}


def chat_logprobs(entries: list[TokenLogProbs] | None) -> dict[str, Any] | None:
    """Our per-token log-probabilities as a chat choice's `logprobs` (None when there are none)."""
    if not entries:
        return None
    return {"content": [_logprob_entry(lp) for lp in entries], "refusal": None}


def completion_logprobs(entries: list[TokenLogProbs] | None, offset: int = 0) -> dict[str, Any] | None:
    """Our per-token log-probabilities as a legacy completion choice's `logprobs`; `offset` is where
    the first token's text starts in the choice's text."""
    if not entries:
        return None
    tokens, values = zip(*(_token_logprob(lp) for lp in entries))
    return {
        "tokens": list(tokens),
        "token_logprobs": list(values),
        "top_logprobs": [lp.logprobs_by_token for lp in entries],  # the generated token and the top k
        "text_offset": list(itertools.accumulate((len(t) for t in tokens[:-1]), initial=offset)),
    }


def chat_choice(index: int, response: ours.ChatCompletionResponse) -> dict[str, Any]:
    message = response.completion_message
    content = content_text(message.content)
    calls = [openai_tool_call(c) for c in message.tool_calls]
    out: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    reason = finish_reason(message.stop_reason, bool(calls))
    logprobs = response.logprobs if calls else joined(content, response.logprobs)  # a call's entries are its text's
    return {"index": index, "message": out, "logprobs": chat_logprobs(logprobs), "finish_reason": reason}


def chat_response(env: Envelope, responses: list[ours.ChatCompletionResponse]) -> dict[str, Any]:
    """One `chat.completion` holding each response as the choice of its index, and their usage."""
    choices = [chat_choice(i, r) for i, r in enumerate(responses)]
    return env.answer("chat.completion", choices, [r.metrics for r in responses])


async def chat_chunks(
    env: Envelope, chunks: AsyncIterator[ours.ChatCompletionResponseStreamChunk], index: int, counts: list[ours.Metrics]
) -> AsyncIterator[dict[str, Any]]:
    """Our chat stream as `chat.completion.chunk`s of choice `index`: role first, content pieces,
    tool calls, finish. The provider's token counts go into `counts` (the usage comes last, once,
    for every choice: see with_usage)."""

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: list[TokenLogProbs] | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": chat_logprobs(logprobs), "finish_reason": finish}
        return env.chunk("chat.completion.chunk", choice)

    # Raw tool-call text (in_progress) is never sent: a reply is content or calls, and the core's
    # stream gives the text of a call that did not parse as content (llama_core.providers.inference.stream).
    n_calls = 0
    text = Joined()  # the content's entries, without the end-of-turn token's and a stop sequence's
    async with closing(chunks):
        async for item in chunks:
            event = item.event
            if event.event_type == ours.ChatCompletionResponseEventType.start:
                yield chunk({"role": "assistant", "content": ""})
            elif event.event_type == ours.ChatCompletionResponseEventType.complete:
                logprobs = event.logprobs if n_calls else text.take("", event.logprobs, last=True)
                yield chunk({}, finish_reason(event.stop_reason, n_calls > 0), logprobs)
                counts.append(item.metrics)
                return
            elif isinstance(event.delta, str):
                if event.delta:
                    yield chunk({"content": event.delta}, logprobs=text.take(event.delta, event.logprobs))
            elif event.delta.parse_status == ours.ToolCallParseStatus.success and isinstance(event.delta.content, ToolCall):
                yield chunk({"tool_calls": [openai_tool_call(event.delta.content, n_calls)]}, logprobs=event.logprobs)
                n_calls += 1
    counts.append(msgspec.UNSET)
    yield chunk({}, "stop")  # a stream that ended without `complete`


def completion_choice(index: int, response: ours.CompletionResponse, prompt: str, echo: bool) -> dict[str, Any]:
    reason = finish_reason(response.stop_reason, False)
    text = (prompt if echo else "") + response.content
    logprobs = completion_logprobs(joined(response.content, response.logprobs))
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": reason}


def completion_response(env: Envelope, responses: list[ours.CompletionResponse], prompt: str, echo: bool) -> dict[str, Any]:
    """One `text_completion` holding each response as the choice of its index, and their usage."""
    choices = [completion_choice(i, r, prompt, echo) for i, r in enumerate(responses)]
    return env.answer("text_completion", choices, [r.metrics for r in responses])


async def completion_chunks(
    env: Envelope,
    chunks: AsyncIterator[ours.CompletionResponseStreamChunk],
    prompt: str,
    echo: bool,
    index: int,
    counts: list[ours.Metrics],
) -> AsyncIterator[dict[str, Any]]:
    """Our completion stream as `text_completion` chunks of choice `index` (the prompt first with
    `echo`); the token counts go into `counts`, as chat_chunks."""
    offset = 0  # where the next piece starts in the choice's text (echo and logprobs never go together)

    def chunk(text: str, finish: str | None = None, logprobs: list[TokenLogProbs] | None = None) -> dict[str, Any]:
        choice = {"text": text, "index": index, "logprobs": completion_logprobs(logprobs, offset), "finish_reason": finish}
        return env.chunk("text_completion", choice)

    if echo:
        yield chunk(prompt)
    text = Joined()  # the entries of the text, without the end-of-turn token's and a stop sequence's
    async with closing(chunks):
        async for item in chunks:
            if item.stop_reason is not None:
                yield chunk(item.delta, finish_reason(item.stop_reason, False), text.take(item.delta, item.logprobs, last=True))
                counts.append(item.metrics)
                return
            if item.delta or item.logprobs:
                logprobs = text.take(item.delta, item.logprobs)
                yield chunk(item.delta, logprobs=logprobs)
                offset += sum(len(_token_logprob(lp)[0]) for lp in logprobs or [])
    counts.append(msgspec.UNSET)
    yield chunk("", "stop")


async def choices_stream(streams: list[AsyncIterator[dict[str, Any]]]) -> AsyncIterator[dict[str, Any]]:
    """The chunks of every choice's stream as one stream, taking turns (each chunk names its index)."""
    async with closing(interleave(streams)) as merged:
        async for _, chunk in merged:
            yield chunk


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


def register(app: Quart, stack: Any, *, done: bool | None = None) -> None:
    """Add the OpenAI-compatible routes, under each of PREFIXES, to `app`.

    `done`: whether streams end with `data: [DONE]` under every prefix; None: as DONE_LINE says.
    """
    for prefix, done_line in DONE_LINE.items():
        _register_prefix(app, stack, prefix, done_line if done is None else done)


def _register_prefix(app: Quart, stack: Any, prefix: str, done: bool) -> None:
    from llama_rpc.http import json_response, request_data, sse_response

    def stream(items: AsyncIterator[Any]) -> Response:
        return sse_response(sse_stream(items, openai_error_body, done=done))

    async def chat_completions() -> Response:
        inference = stack.api("inference")
        req = decode_request(oa.OpenAIChatCompletionRequest, await request_data())
        requests = choice_requests(chat_request(req), req.n or 1)
        env, counts = Envelope(req.model, "chatcmpl", req.stream_options), []
        with strict_max_tokens():
            if req.stream:
                streams = [chat_chunks(env, await inference.chat_completion(r), i, counts) for i, r in enumerate(requests)]
                return stream(with_usage(env, "chat.completion.chunk", choices_stream(streams), counts))
            return json_response(chat_response(env, await all_choices(inference.chat_completion, requests)))

    async def completions() -> Response:
        inference = stack.api("inference")
        req = decode_request(oa.OpenAICompletionRequest, await request_data())
        requests = choice_requests(completion_request(req), req.n or 1)
        env, counts = Envelope(req.model, "cmpl", req.stream_options), []
        prompt, echo = str(requests[0].content), bool(req.echo)
        with strict_max_tokens(), fields_renamed(PROMPT_FIELDS):
            if req.stream:
                streams = [completion_chunks(env, await inference.completion(r), prompt, echo, i, counts)
                           for i, r in enumerate(requests)]  # fmt: skip
                return stream(with_usage(env, "text_completion", choices_stream(streams), counts))
            return json_response(completion_response(env, await all_choices(inference.completion, requests), prompt, echo))

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

    name = "openai" + prefix.replace("/", "_")
    app.add_url_rule(prefix + "/chat/completions", name + "_chat", chat_completions, methods=["POST"])
    app.add_url_rule(prefix + "/completions", name + "_completions", completions, methods=["POST"])
    app.add_url_rule(prefix + "/embeddings", name + "_embeddings", embeddings, methods=["POST"])
    app.add_url_rule(prefix + "/models", name + "_models", list_models, methods=["GET"])
    app.add_url_rule(prefix + "/models/<path:model_id>", name + "_model", get_model, methods=["GET"])
