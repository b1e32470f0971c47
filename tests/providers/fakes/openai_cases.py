"""Tests shared by the OpenAI-style vendors (Fireworks, Together): each test module names its Case,
and imports these tests, which run against a loopback server replaying that vendor's samples."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from providers.fakes import MODEL, PARIS, SSE, WEATHER, FakeVendor, Reply, chat, events, no_sleep, sample, serving, stream_of

from llama_core.errors import (
    InvalidRequestError,
    NotFoundError,
    ProviderError,
    UnavailableError,
    UnsupportedError,
)
from llama_core.providers.inference.openai_compat import OpenAIStyleInference
from llama_core.providers.inference.usage import token_metrics
from llama_core.providers.provider_data import provider_data_scope
from llama_core.providers.retry import RetryPolicy
from llama_core.types import (
    CompletionMessage,
    SamplingParams,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolDefinition,
    ToolResponseMessage,
    UserMessage,
)
from llama_core.types.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
)



@dataclass(frozen=True)
class Case:
    provider: type[OpenAIStyleInference]
    config: type
    samples: str  # folder under fakes/samples
    vendor_model: str  # MODEL's id at the vendor
    url_suffix: str  # what the config's url ends with ("" or "/v1")
    call_id: str  # the tool call id in the vendor's samples
    first_two: list[str]  # the deltas of chat_stream.sse's first two events


@pytest.fixture(scope="module")
def served(case: Case) -> Iterator[tuple[FakeVendor, str]]:
    with serving() as served:
        yield served


@pytest.fixture
async def provider(case: Case, served: tuple[FakeVendor, str], vendor: FakeVendor) -> AsyncIterator[OpenAIStyleInference]:
    async with case.provider(case.config(url=served[1] + case.url_suffix, api_key="k-config")) as p:
        p.retry = RetryPolicy(sleep=no_sleep)
        yield p


def json_reply(case: Case, name: str, **kw: Any) -> Reply:
    return Reply(body=sample(f"{case.samples}/{name}"), **kw)


def sse_reply(case: Case, name: str, keep: int | None = None, **kw: Any) -> Reply:
    return Reply(body=stream_of(sample(f"{case.samples}/{name}"), b"\n\n")[:keep], content_type=SSE, **kw)


async def test_chat_request_and_reply(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", json_reply(case, "chat.json"))
    request = ChatCompletionRequest(
        model=MODEL,
        messages=[
            SystemMessage(content="Be brief."),
            UserMessage(content="Weather in Paris?"),
            CompletionMessage(content="", stop_reason=StopReason.end_of_message,
                              tool_calls=[ToolCall(call_id="c1", tool_name="get_current_weather", arguments=PARIS)]),
            ToolResponseMessage(call_id="c1", tool_name="get_current_weather", content="18 C"),
        ],
        tools=[WEATHER],
        sampling_params=SamplingParams(strategy="top_p", temperature=0.6, top_p=0.9, max_tokens=100),
    )  # fmt: skip
    response = await provider.chat_completion(request)
    assert response == ChatCompletionResponse(
        completion_message=CompletionMessage(content="The capital of France is Paris.", stop_reason=StopReason.end_of_turn),
        metrics=token_metrics(18, 8),  # the vendor's usage
    )
    (sent,) = vendor.requests
    assert (sent.path, sent.headers["authorization"]) == ("/v1/chat/completions", "Bearer k-config")
    assert sent.json == {
        "model": case.vendor_model,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "get_current_weather", "arguments": '{"location": "Paris, FR", "format": "celsius"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
        ],
        "temperature": 0.6, "top_p": 0.9, "max_tokens": 100,
        "tools": [{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather",
                   "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "format": {"type": "string"}},
                                  "required": ["location"]}}}],
        "tool_choice": "auto",
    }  # fmt: skip


async def test_chat_stream_is_the_meta_reference_sequence(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse_reply(case, "chat_stream.sse"))
    assert await events(await provider.chat_completion(chat(stream=True))) == [
        ("start", "", None),
        ("progress", "The", None),
        ("progress", " capital of France is", None),
        ("progress", " Paris.", None),
        ("complete", "", "end_of_turn"),
    ]
    assert vendor.requests[0].json == {"model": case.vendor_model, "messages": [
        {"role": "user", "content": "What is the capital of France?"}], "temperature": 0.0, "stream": True}  # fmt: skip


async def test_streams_end_with_the_vendors_counts(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse_reply(case, "chat_stream.sse"))
    chunks = [c async for c in await provider.chat_completion(chat(stream=True))]
    assert chunks[-1].event.event_type == "complete" and chunks[-1].metrics == token_metrics(18, 8)
    assert all(c.metrics is msgspec.UNSET for c in chunks[:-1])
    vendor.then("/v1/completions", sse_reply(case, "completion_stream.sse"))
    pieces = [c async for c in await provider.completion(CompletionRequest(model=MODEL, content="The sky is", stream=True))]
    assert [(c.delta, c.stop_reason, c.metrics) for c in pieces] == [
        (" blue", None, msgspec.UNSET), (" because", None, msgspec.UNSET), (" of", StopReason.out_of_tokens, token_metrics(7, 3)),
    ]  # fmt: skip
    # Counts that come in an event of their own after the last choice (OpenAI's include_usage) count too.
    finish = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}\n\n'
    vendor.then("/v1/chat/completions", Reply(body=[finish, usage, b"data: [DONE]\n\n"], content_type=SSE))
    chunks = [c async for c in await provider.chat_completion(chat(stream=True))]
    assert (chunks[-1].event.stop_reason, chunks[-1].metrics) == (StopReason.end_of_turn, token_metrics(4, 2))


async def test_tool_calls_come_back(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", json_reply(case, "chat_tools.json"))
    response = await provider.chat_completion(chat(tools=[WEATHER]))
    assert isinstance(response, ChatCompletionResponse)
    assert response.completion_message == CompletionMessage(
        content="", stop_reason=StopReason.end_of_message,
        tool_calls=[ToolCall(call_id=case.call_id, tool_name="get_current_weather", arguments=PARIS)],
    )  # fmt: skip


async def test_tool_calls_stream_as_one_success_delta(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse_reply(case, "chat_tools_stream.sse"))
    assert await events(await provider.chat_completion(chat(stream=True, tools=[WEATHER]))) == [
        ("start", "", None),
        ("progress", ("success", (case.call_id, "get_current_weather", PARIS)), "end_of_message"),
        ("complete", "", "end_of_message"),
    ]


async def test_python_tag_text_streams_as_a_tool_call(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    def event(content: str, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
        return b"data: " + __import__("json").dumps({"object": "chat.completion.chunk", "choices": [choice]}).encode() + b"\n\n"

    body = [event("<|python_tag|>"), event('brave_search.call(query="Paris weather")'), event("", "stop"), b"data: [DONE]\n\n"]
    vendor.then("/v1/chat/completions", Reply(body=body, content_type=SSE))
    got = await events(await provider.chat_completion(chat(stream=True, tools=[ToolDefinition(tool_name="brave_search")])))
    assert [g[:2] for g in got[:3]] == [
        ("start", ""),
        ("progress", ("started", "")),
        ("progress", ("in_progress", 'brave_search.call(query="Paris weather")')),
    ]
    (kind, (status, (_, name, args)), stop) = got[3]
    assert (kind, status, name, args, stop) == ("progress", "success", "brave_search", {"query": "Paris weather"}, "end_of_turn")
    assert got[4] == ("complete", "", "end_of_turn")
    # brave_search not offered: the same answer is text, never a call (issue #16).
    vendor.then("/v1/chat/completions", Reply(body=body, content_type=SSE))
    got = await events(await provider.chat_completion(chat(stream=True)))
    assert got == [
        ("start", "", None),
        ("progress", 'brave_search.call(query="Paris weather")', None),
        ("complete", "", "end_of_turn"),
    ]


async def test_completion(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/completions", json_reply(case, "completion.json"))
    response = await provider.completion(CompletionRequest(model=MODEL, content="The sky is", sampling_params=SamplingParams(max_tokens=7)))
    assert response == CompletionResponse(
        content=" blue because of Rayleigh scattering.", stop_reason=StopReason.end_of_turn, metrics=token_metrics(7, 7)
    )
    assert vendor.requests[0].json == {"model": case.vendor_model, "prompt": "The sky is", "temperature": 0.0, "max_tokens": 7}


async def test_a_json_schema_goes_as_a_strict_response_format(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    vendor.then("/v1/chat/completions", json_reply(case, "chat.json"))
    vendor.then("/v1/completions", json_reply(case, "completion.json"))
    fmt = JsonSchemaResponseFormat(json_schema=schema)
    await provider.chat_completion(chat(response_format=fmt))
    await provider.completion(CompletionRequest(model=MODEL, content="x", response_format=fmt))
    wire = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": True}}
    assert [r.json["response_format"] for r in vendor.requests] == [wire, wire]
    with pytest.raises(UnsupportedError, match="not a grammar"):
        await provider.chat_completion(chat(response_format=GrammarResponseFormat(bnf={"lark": 'start: "a"'})))
    assert len(vendor.requests) == 2


async def test_completion_stream(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/completions", sse_reply(case, "completion_stream.sse"))
    stream = await provider.completion(CompletionRequest(model=MODEL, content="The sky is", stream=True))
    assert [(c.delta, c.stop_reason) async for c in stream] == [(" blue", None), (" because", None), (" of", StopReason.out_of_tokens)]


def test_unknown_names_pass_as_the_vendors_own_and_unserved_models_are_refused(case: Case) -> None:
    provider = case.provider(case.config(api_key="k"))
    assert provider.vendor_model("meta-llama/Llama-3.1-8B-Instruct") == case.vendor_model
    assert provider.vendor_model("some-org/some-model") == "some-org/some-model"
    with pytest.raises(UnsupportedError, match=rf"^Llama-2-7b is not served by {provider.vendor}; choose one of: Llama3.1-8B-Instruct, "):
        provider.vendor_model("Llama-2-7b")


async def test_api_key_from_provider_data(case: Case, served: tuple[FakeVendor, str], vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", json_reply(case, "chat.json"))
    async with case.provider(case.config(url=served[1] + case.url_suffix, api_key="")) as p:
        with provider_data_scope({p.key_name: "k-request"}):
            await p.chat_completion(chat())
        with pytest.raises(InvalidRequestError) as e:  # the request lacks its provider data: a 400, not a 401
            await p.chat_completion(chat())
    assert vendor.requests[0].headers["authorization"] == "Bearer k-request"
    assert str(e.value) == (
        f"No {p.vendor} API key: set api_key in the run config (`llama stack configure`), or send the header "
        f'X-LlamaStack-ProviderData: {{"{p.key_name}": "<your key>"}}.'
    )
    assert (e.value.field, len(vendor.requests)) == ("X-LlamaStack-ProviderData", 1)


async def test_401_is_a_provider_error_at_once(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    """Our config's key is wrong, not the client's: a 502 that says which key to check."""
    vendor.then("/v1/chat/completions", json_reply(case, "error_401.json", status=401))
    with pytest.raises(ProviderError) as e:
        await provider.chat_completion(chat(stream=True))
    assert (str(e.value), e.value.status) == (f"{provider.vendor} answered 401 Unauthorized: check the api_key in the run config", 502)
    assert len(vendor.requests) == 1


async def test_401_with_the_requests_key_names_the_provider_data(case: Case, served: tuple[FakeVendor, str], vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", json_reply(case, "error_401.json", status=401))
    async with case.provider(case.config(url=served[1] + case.url_suffix, api_key="")) as p:
        with provider_data_scope({p.key_name: "k-request"}), pytest.raises(ProviderError) as e:
            await p.chat_completion(chat())
    assert str(e.value) == f"{p.vendor} answered 401 Unauthorized: check the {p.key_name} in the request's X-LlamaStack-ProviderData header"


ERROR_404 = b'{"error": {"object": "error", "type": "invalid_request_error", "message": "Model not found, inaccessible, and/or not deployed"}}'

# name -> (replies to the request, whether it streams, error class, status, message with {v} for the vendor).
# The vendor echoes the request's Authorization (k-config) in each: no message or log line may carry it.
ECHO_CASES: dict[str, tuple[list[Reply], bool, type, int, str]] = {
    "401": ([Reply(status=401, body=sample("fireworks/error_401.json"))], False, ProviderError, 502,
            "{v} answered 401 Unauthorized: check the api_key in the run config"),
    "403": ([Reply(status=403, body=b'{"error": {"message": "forbidden"}}')], True, ProviderError, 502,
            "{v} answered 403 Forbidden: check the api_key in the run config (it may not have access to this model)"),
    "404": ([Reply(status=404, body=ERROR_404)], False, NotFoundError, 404,
            "{v} answered 404 Not Found: Model not found, inaccessible, and/or not deployed (you sent Authorization: Bearer ***)"),
    "400": ([Reply(status=400, body=b'{"error": {"message": "max_tokens is too large"}}')], False, InvalidRequestError, 400,
            "{v} refused the request (400 Bad Request): max_tokens is too large (you sent Authorization: Bearer ***)"),
    "429-after-retries": ([Reply(status=429, body=b'{"error": {"message": "slow down"}}', headers={"Retry-After": "0"})] * 3,
                          True, UnavailableError, 503,
                          "{v} is rate limiting requests (429 Too Many Requests); it asks to retry after 0 s: slow down (you sent Authorization: Bearer ***)"),
    "500-after-retries": ([Reply(status=500, body=b"upstream exploded")] * 3, False, ProviderError, 502,
                          "{v} answered 500 Internal Server Error: upstream exploded (you sent Authorization: Bearer ***)"),
    "malformed-body": ([Reply(body=b"<html>Bearer debug: {authorization}</html>", content_type="text/html")], False, ProviderError, 502,
                       "{v} answered with something that is not JSON."),
    "stream-error-event": ([Reply(body=[b'data: {"error": {"message": "overloaded; key {authorization}"}}\n\n'], content_type=SSE)],
                           True, ProviderError, 502, "{v} failed during the stream: overloaded; key Bearer ***"),
    "stream-bad-event": ([Reply(body=[b"data: <oops {authorization}>\n\n"], content_type=SSE)], True, ProviderError, 502,
                         "{v} sent a stream event that is not JSON: <oops Bearer ***>"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ECHO_CASES))
async def test_a_vendor_echoing_the_key_never_gets_it_out(
    case: Case, provider: OpenAIStyleInference, vendor: FakeVendor, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    replies, stream, cls, status, message = ECHO_CASES[name]
    vendor.echo_auth = True
    vendor.then("/v1/chat/completions", *replies)
    with caplog.at_level("WARNING"), pytest.raises(cls) as e:
        answer = await provider.chat_completion(chat(stream=stream))
        async for _ in answer:
            pass
    assert (type(e.value), e.value.status, str(e.value)) == (cls, status, message.format(v=provider.vendor))
    assert len(vendor.requests) == len(replies) and vendor.requests[0].headers["authorization"] == "Bearer k-config"
    assert "k-config" not in caplog.text
    if name not in ("401", "403", "malformed-body"):  # the vendor's reason is logged, redacted
        assert f"{provider.vendor} " in caplog.text and "Bearer ***" in caplog.text


async def test_429_waits_as_retry_after_says(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    provider.retry = RetryPolicy(sleep=sleep)
    vendor.then("/v1/chat/completions", json_reply(case, "error_429.json", status=429, headers={"Retry-After": "3"}),
                sse_reply(case, "chat_stream.sse"))  # fmt: skip
    got = await events(await provider.chat_completion(chat(stream=True)))
    assert (got[-1], waits, len(vendor.requests)) == (("complete", "", "end_of_turn"), [3.0], 2)


async def test_429_after_the_retries_is_unavailable(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", *[json_reply(case, "error_429.json", status=429, headers={"Retry-After": "1"})] * 3)
    with pytest.raises(UnavailableError, match=rf"^{provider.vendor} is rate limiting requests \(429 Too Many Requests\); it asks to retry after 1 s: \S"):
        await provider.chat_completion(chat())
    assert len(vendor.requests) == 3


async def test_429_with_a_long_retry_after_is_not_waited_for(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", json_reply(case, "error_429.json", status=429, headers={"Retry-After": "120"}))
    with pytest.raises(UnavailableError, match=r"it asks to retry after 120 s"):
        await provider.chat_completion(chat())
    assert len(vendor.requests) == 1


async def test_500_is_retried_then_a_provider_error(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", json_reply(case, "error_500.json", status=500), json_reply(case, "chat.json"))
    response = await provider.chat_completion(chat())
    assert isinstance(response, ChatCompletionResponse) and len(vendor.requests) == 2
    vendor.then("/v1/chat/completions", *[json_reply(case, "error_500.json", status=500)] * 3)
    with pytest.raises(ProviderError, match=rf"^{provider.vendor} answered 500 Internal Server Error: \S"):
        await provider.chat_completion(chat())
    assert len(vendor.requests) == 5


@pytest.mark.parametrize("cut", [True, False], ids=["connection-dropped", "ended-without-finish"])
async def test_stream_cut_midway_is_a_provider_error(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor, cut: bool) -> None:
    vendor.then("/v1/chat/completions", sse_reply(case, "chat_stream.sse", keep=2, cut=cut))
    seen = []
    message = rf"^{provider.vendor}'s stream was cut midway: " if cut else rf"^{provider.vendor}'s stream ended before the reply was complete.$"
    with pytest.raises(ProviderError, match=message):
        async for chunk in await provider.chat_completion(chat(stream=True)):
            seen.append(chunk.event.delta)
    assert (seen, len(vendor.requests)) == (["", *case.first_two], 1)


async def test_error_event_midway_is_a_provider_error(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    body = stream_of(sample(f"{case.samples}/chat_stream.sse"), b"\n\n")[:2] + [b'data: {"error": {"message": "model overloaded"}}\n\n']
    vendor.then("/v1/chat/completions", Reply(body=body, content_type=SSE))
    with pytest.raises(ProviderError, match=rf"^{provider.vendor} failed during the stream: model overloaded$"):
        async for _ in await provider.chat_completion(chat(stream=True)):
            pass


async def test_stop_sequences_are_sent_and_cut_here_too(case: Case, provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    # The vendor is asked to stop; these samples ran on regardless (as a vendor ignoring `stop` would),
    # and the answer is cut here all the same, as meta-reference cuts its own.
    vendor.then("/v1/completions", json_reply(case, "completion.json"))
    sampling = SamplingParams(max_tokens=7, stop=["Rayleigh"])
    response = await provider.completion(CompletionRequest(model=MODEL, content="The sky is", sampling_params=sampling))
    assert response == CompletionResponse(content=" blue because of ", stop_reason=StopReason.end_of_turn, metrics=token_metrics(7, 7))
    assert vendor.requests[0].json == {
        "model": case.vendor_model, "prompt": "The sky is", "temperature": 0.0, "max_tokens": 7, "stop": ["Rayleigh"]
    }  # fmt: skip
    vendor.then("/v1/completions", sse_reply(case, "completion_stream.sse"))
    request = CompletionRequest(model=MODEL, content="The sky is", stream=True, sampling_params=SamplingParams(stop=[" of"]))
    stream = await provider.completion(request)
    assert [(c.delta, c.stop_reason) async for c in stream] == [(" blue", None), (" because", None), ("", StopReason.end_of_turn)]
    vendor.then("/v1/chat/completions", json_reply(case, "chat.json"))
    reply = await provider.chat_completion(chat(sampling_params=SamplingParams(stop=["Paris"])))
    assert reply.completion_message == CompletionMessage(content="The capital of France is", stop_reason=StopReason.end_of_turn)
    assert vendor.requests[-1].json["stop"] == ["Paris"]


async def test_embeddings_of_a_local_model_are_answered_here(provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    import numpy as np

    from llama_core.embedding import embedder

    response = await provider.embeddings(EmbeddingsRequest(model="all-MiniLM-L6-v2", contents=["a", "b c"]))
    assert vendor.requests == []  # the vendor is not asked
    want = await (await embedder()).encode(["a", "b c"])
    assert np.array_equal(np.asarray(response.embeddings, dtype=np.float32), want)
    assert response.usage == EmbeddingsUsage(prompt_tokens=7, total_tokens=7)  # [CLS] a [SEP] + [CLS] b c [SEP]


async def test_embeddings_of_a_vendor_model_carry_its_usage(provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    body = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.5]}],"usage":{"prompt_tokens":3,"total_tokens":3}}'
    vendor.then("/v1/embeddings", Reply(body=body))
    response = await provider.embeddings(EmbeddingsRequest(model="nomic-ai/nomic-embed-text-v1.5", contents=["abc"]))
    assert response == EmbeddingsResponse(embeddings=[[0.5, -0.5]], usage=EmbeddingsUsage(prompt_tokens=3, total_tokens=3))
    assert vendor.requests[0].json == {"model": "nomic-ai/nomic-embed-text-v1.5", "input": ["abc"]}
