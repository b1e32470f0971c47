"""remote::ollama against a loopback Ollama: requests as Ollama documents them, its sample answers
replayed (NDJSON streams, tool calls, tags, embeddings), and each failure as one clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import msgspec
import pytest
from providers.fakes import FakeVendor, Reply, no_sleep, sample, serving, stream_of
from providers.fakes import chat as vendor_chat
from providers.fakes import events as stream_events
from rpc.server import free_port

from llama_core.config import OllamaImplConfig
from llama_core.errors import NotFoundError, ProviderError, UnavailableError, UnsupportedError
from llama_core.providers.inference.ollama import OllamaInference, ollama_tag
from llama_core.providers.inference.usage import token_metrics
from llama_core.providers.retry import RetryPolicy
from llama_core.types import (
    CompletionMessage,
    SamplingParams,
    StopReason,
    SystemMessage,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    ToolParamDefinition,
    ToolResponseMessage,
    UserMessage,
)
from llama_core.types.inference import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    EmbeddingsRequest,
    GrammarResponseFormat,
    JsonSchemaResponseFormat,
    EmbeddingsUsage,
)

pytestmark = pytest.mark.anyio

MODEL = "Llama3.2-1B-Instruct"
TAG = "llama3.2:1b-instruct-fp16"
NDJSON = "application/x-ndjson"
WEATHER = ToolDefinition(
    tool_name="get_current_weather",
    description="Get the current weather",
    parameters={
        "location": ToolParamDefinition(param_type="string", description="The city, e.g. Paris, FR"),
        "format": ToolParamDefinition(param_type="string", required=False, default="celsius"),
    },
)
PARIS_CALL = ToolCall(call_id="ignored", tool_name="get_current_weather", arguments={"format": "celsius", "location": "Paris, FR"})


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeVendor, str]]:
    with serving({("GET", "/api/tags"): Reply(body=sample("ollama/tags.json"))}) as served:
        yield served


@pytest.fixture
async def ollama(served: tuple[FakeVendor, str], vendor: FakeVendor) -> AsyncIterator[OllamaInference]:
    async with OllamaInference(OllamaImplConfig(url=served[1] + "/")) as provider:
        provider.retry = RetryPolicy(retry_connect_errors=False, sleep=no_sleep)
        assert vendor.paths() == ["/api/tags"]  # entering checks that Ollama runs
        vendor.requests.clear()
        yield provider


def chat(stream: bool = False, **fields: Any) -> ChatCompletionRequest:
    return vendor_chat(MODEL, stream, **fields)


async def events(stream: Any) -> list[tuple[str, Any, str | None]]:
    return await stream_events(stream, call_ids=False)  # Ollama sends no call id; ours is random


async def test_chat_maps_messages_tools_and_options(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=sample("ollama/chat.json")))
    request = ChatCompletionRequest(
        model=MODEL,
        messages=[
            SystemMessage(content="Be brief."),
            UserMessage(content="Weather?", context="We are in Paris."),
            CompletionMessage(content="", stop_reason=StopReason.end_of_message, tool_calls=[PARIS_CALL]),
            ToolResponseMessage(call_id="ignored", tool_name="get_current_weather", content="18 C"),
        ],
        tools=[WEATHER],
        sampling_params=SamplingParams(strategy="top_p", temperature=0.7, top_p=0.9, max_tokens=64, repetition_penalty=1.1, seed=7),
    )
    response = await ollama.chat_completion(request)
    assert response == ChatCompletionResponse(
        completion_message=CompletionMessage(content="The capital of France is Paris.", stop_reason=StopReason.end_of_turn),
        metrics=token_metrics(31, 8),  # its prompt_eval_count and eval_count
    )
    assert vendor.paths() == ["/api/chat"]
    assert vendor.requests[0].json == {
        "model": TAG,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?\n\nWe are in Paris."},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_current_weather", "arguments": {"format": "celsius", "location": "Paris, FR"}}}]},
            {"role": "tool", "content": "18 C", "tool_name": "get_current_weather"},
        ],
        "options": {"temperature": 0.7, "top_p": 0.9, "num_predict": 64, "seed": 7, "repeat_penalty": 1.1},
        "stream": False,
        "tools": [{"type": "function", "function": {
            "name": "get_current_weather", "description": "Get the current weather",
            "parameters": {"type": "object", "properties": {
                "location": {"type": "string", "description": "The city, e.g. Paris, FR"},
                "format": {"type": "string", "default": "celsius"}}, "required": ["location"]}}}],
    }  # fmt: skip


async def test_greedy_and_top_k_options(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=sample("ollama/chat.json")), Reply(body=sample("ollama/chat.json")))
    await ollama.chat_completion(chat())
    await ollama.chat_completion(chat(sampling_params=SamplingParams(strategy="top_k", temperature=0.5, top_k=40)))
    assert [r.json["options"] for r in vendor.requests] == [{"temperature": 0.0}, {"temperature": 0.5, "top_k": 40}]


async def test_chat_stream_is_the_meta_reference_sequence(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_stream.ndjson")), content_type=NDJSON))
    assert await events(await ollama.chat_completion(chat(stream=True))) == [
        ("start", "", None),
        ("progress", "The", None),
        ("progress", " capital", None),
        ("progress", " of France is", None),
        ("progress", " Paris.", None),
        ("complete", "", "end_of_turn"),
    ]
    assert vendor.requests[0].json["stream"] is True


async def test_chat_stream_out_of_tokens(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_length_stream.ndjson")), content_type=NDJSON))
    got = await events(await ollama.chat_completion(chat(stream=True, sampling_params=SamplingParams(max_tokens=2))))
    assert got[-1] == ("complete", "", "out_of_tokens")
    assert "".join(d for _, d, _ in got) == "Once upon"
    assert vendor.requests[0].json["options"] == {"temperature": 0.0, "num_predict": 2}


async def test_stop_sequences_are_sent_and_cut_here_too(ollama: OllamaInference, vendor: FakeVendor) -> None:
    # Ollama takes `stop` in its options; these samples ran on regardless, and are cut here as well.
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_stream.ndjson")), content_type=NDJSON))
    got = await events(await ollama.chat_completion(chat(stream=True, sampling_params=SamplingParams(stop=[" France"]))))
    assert got == [("start", "", None), ("progress", "The", None), ("progress", " capital", None),
                   ("progress", " of", None), ("complete", "", "end_of_turn")]  # fmt: skip
    assert vendor.requests[0].json["options"] == {"temperature": 0.0, "stop": [" France"]}
    vendor.then("/api/generate", Reply(body=sample("ollama/generate.json")))
    sampling = SamplingParams(stop=["Rayleigh", "blue"])
    response = await ollama.completion(CompletionRequest(model=MODEL, content="The sky is", sampling_params=sampling))
    assert (response.content, response.stop_reason) == (" ", StopReason.end_of_turn)
    assert vendor.requests[1].json["options"]["stop"] == ["Rayleigh", "blue"]


async def test_a_json_schema_goes_as_ollamas_format(ollama: OllamaInference, vendor: FakeVendor) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    vendor.then("/api/chat", Reply(body=sample("ollama/chat.json")))
    vendor.then("/api/generate", Reply(body=sample("ollama/generate.json")))
    await ollama.chat_completion(chat(response_format=JsonSchemaResponseFormat(json_schema=schema)))
    await ollama.completion(CompletionRequest(model=MODEL, content="x", response_format=JsonSchemaResponseFormat(json_schema=schema)))
    assert [r.json["format"] for r in vendor.requests] == [schema, schema]


async def test_what_ollama_cannot_enforce_is_refused_before_sending(ollama: OllamaInference, vendor: FakeVendor) -> None:
    with pytest.raises(UnsupportedError, match="not a grammar") as e:
        await ollama.chat_completion(chat(response_format=GrammarResponseFormat(bnf={"gbnf": 'root ::= "a"'})))
    assert e.value.field == "response_format"
    with pytest.raises(UnsupportedError, match="tool_choice 'required'") as e:
        await ollama.chat_completion(chat(tools=[WEATHER], tool_choice=ToolChoice.required))
    assert e.value.field == "tool_choice"
    assert vendor.requests == []


async def test_tool_choice_none_sends_no_tools(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=sample("ollama/chat.json")))
    await ollama.chat_completion(chat(tools=[WEATHER], tool_choice=ToolChoice.none))
    assert "tools" not in vendor.requests[0].json


async def test_tool_calls_come_back(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=sample("ollama/chat_tools.json")))
    response = await ollama.chat_completion(chat(tools=[WEATHER]))
    assert isinstance(response, ChatCompletionResponse)
    message = response.completion_message
    assert (message.content, message.stop_reason) == ("", StopReason.end_of_turn)
    assert [(c.tool_name, c.arguments) for c in message.tool_calls] == [(PARIS_CALL.tool_name, PARIS_CALL.arguments)]
    assert message.tool_calls[0].call_id  # Ollama gives no id: one is made


async def test_tool_calls_stream_as_success_deltas(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_tools_stream.ndjson")), content_type=NDJSON))
    assert await events(await ollama.chat_completion(chat(stream=True, tools=[WEATHER]))) == [
        ("start", "", None),
        ("progress", ("success", (PARIS_CALL.tool_name, PARIS_CALL.arguments)), "end_of_turn"),
        ("complete", "", "end_of_turn"),
    ]


async def test_completion_is_raw_generate(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/generate", Reply(body=sample("ollama/generate.json")))
    response = await ollama.completion(CompletionRequest(model=MODEL, content="The sky is"))
    assert response == CompletionResponse(
        content=" blue because of Rayleigh scattering.", stop_reason=StopReason.end_of_turn, metrics=token_metrics(7, 7)
    )
    assert vendor.requests[0].json == {"model": TAG, "prompt": "The sky is", "raw": True, "options": {"temperature": 0.0}, "stream": False}


async def test_completion_stream(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/generate", Reply(body=stream_of(sample("ollama/generate_stream.ndjson")), content_type=NDJSON))
    stream = await ollama.completion(CompletionRequest(model=MODEL, content="The sky is", stream=True))
    chunks = [(c.delta, c.stop_reason, c.metrics) async for c in stream]
    assert chunks == [(" blue", None, msgspec.UNSET), (" because", None, msgspec.UNSET), (" of", None, msgspec.UNSET),
                      ("", StopReason.out_of_tokens, token_metrics(7, 3))]  # fmt: skip
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_stream.ndjson")), content_type=NDJSON))
    chat_chunks = [c async for c in await ollama.chat_completion(chat(stream=True))]
    assert [c.metrics for c in chat_chunks] == [msgspec.UNSET] * (len(chat_chunks) - 1) + [token_metrics(31, 8)]


async def test_embeddings(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/embed", Reply(body=sample("ollama/embed.json")))
    response = await ollama.embeddings(EmbeddingsRequest(model="all-minilm", contents=["a", "b"]))
    assert [v[:2] for v in response.embeddings] == [[0.010071029, -0.0017594862], [-0.0098027075, 0.06042469]]
    assert response.usage == EmbeddingsUsage(prompt_tokens=8, total_tokens=8)  # its prompt_eval_count
    assert vendor.requests[0].json == {"model": "all-minilm", "input": ["a", "b"]}


async def test_embeddings_of_a_local_model_are_answered_here(ollama: OllamaInference, vendor: FakeVendor) -> None:
    import numpy as np

    from llama_core.embedding import embedder

    response = await ollama.embeddings(EmbeddingsRequest(model="all-MiniLM-L6-v2", contents=["a", "b c"]))
    assert vendor.requests == []  # Ollama is not asked
    want = await (await embedder()).encode(["a", "b c"])
    assert np.array_equal(np.asarray(response.embeddings, dtype=np.float32), want)
    assert response.usage == EmbeddingsUsage(prompt_tokens=7, total_tokens=7)  # [CLS] a [SEP] + [CLS] b c [SEP]


async def test_pulled_tags(ollama: OllamaInference) -> None:
    assert await ollama.pulled_tags() == [TAG, "all-minilm:latest"]


@pytest.mark.parametrize(
    ("model", "tag"),
    [
        ("Llama3.1-8B-Instruct", "llama3.1:8b-instruct-fp16"),
        ("Meta-Llama3.1-70B-Instruct", "llama3.1:70b-instruct-fp16"),
        ("meta-llama/Llama-3.2-3B-Instruct", "llama3.2:3b-instruct-fp16"),
        ("Llama-Guard-3-8B:int8", "llama-guard3:8b"),
        ("Llama3.2-11B-Vision-Instruct", "x/llama3.2-vision:11b-instruct-fp16"),
        ("mistral:7b", "mistral:7b"),
    ],
    ids=lambda v: v,
)
def test_model_map(model: str, tag: str) -> None:
    assert ollama_tag(model) == tag


def test_a_registry_model_without_an_ollama_build_is_refused() -> None:
    with pytest.raises(UnsupportedError, match=r"^Llama3.1-8B has no Ollama build here; choose one of: Llama3.1-8B-Instruct, ") as e:
        ollama_tag("Llama3.1-8B")
    assert e.value.field == "model"


async def test_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UnavailableError) as e:
        async with OllamaInference(OllamaImplConfig(url=url)):
            pass
    assert str(e.value) == f"Ollama is not running at {url}: start it with `ollama serve` in a separate terminal."


async def test_model_not_pulled(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(status=404, body=sample("ollama/not_found.json")))
    with pytest.raises(NotFoundError) as e:
        await ollama.chat_completion(chat(stream=True))
    assert str(e.value) == f"Model {TAG} is not pulled in Ollama at {ollama.url}: run `ollama pull {TAG}` first."


async def test_error_line_midway_is_a_provider_error(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/stream_error.ndjson")), content_type=NDJSON))
    seen = []
    with pytest.raises(ProviderError, match=r"^Ollama failed during the stream: an error was encountered while running the model: unexpected EOF$"):
        async for chunk in await ollama.chat_completion(chat(stream=True)):
            seen.append(chunk.event.delta)
    assert seen == ["", "The"]


@pytest.mark.parametrize("cut", [True, False], ids=["connection-dropped", "ended-without-done"])
async def test_stream_cut_midway_is_a_provider_error(ollama: OllamaInference, vendor: FakeVendor, cut: bool) -> None:
    lines = stream_of(sample("ollama/chat_stream.ndjson"))[:2]
    vendor.then("/api/chat", Reply(body=lines, content_type=NDJSON, cut=cut))
    seen = []
    message = r"^Ollama's stream was cut midway: " if cut else r"^Ollama's stream ended before the reply was complete.$"
    with pytest.raises(ProviderError, match=message):
        async for chunk in await ollama.chat_completion(chat(stream=True)):
            seen.append(chunk.event.delta)
    assert seen == ["", "The", " capital"]
    assert len(vendor.requests) == 1  # never retried once chunks were given out


async def test_closing_a_stream_early_closes_the_answer(ollama: OllamaInference, vendor: FakeVendor) -> None:
    lines = stream_of(sample("ollama/chat_stream.ndjson"))[:2]
    vendor.then("/api/chat", Reply(body=lines, content_type=NDJSON, hold=2.0))  # still generating
    stream = await ollama.chat_completion(chat(stream=True))
    first = [(await stream.__anext__()).event.delta for _ in range(2)]
    with anyio.fail_after(2):  # not waiting for the vendor to finish
        await stream.aclose()  # a client that went away
    assert first == ["", "The"]
    vendor.then("/api/chat", Reply(body=sample("ollama/chat.json")))
    assert isinstance(await ollama.chat_completion(chat()), ChatCompletionResponse)  # the connection pool is fine


async def test_500_is_retried_before_the_stream_starts(ollama: OllamaInference, vendor: FakeVendor) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    ollama.retry = RetryPolicy(retry_connect_errors=False, sleep=sleep)
    vendor.then(
        "/api/chat",
        Reply(status=500, body=b'{"error":"llama runner process has terminated"}'),
        Reply(status=503, body=b'{"error":"server busy"}', headers={"Retry-After": "2"}),
        Reply(body=stream_of(sample("ollama/chat_stream.ndjson")), content_type=NDJSON),
    )
    got = await events(await ollama.chat_completion(chat(stream=True)))
    assert got[-1] == ("complete", "", "end_of_turn")
    assert (len(vendor.requests), waits) == (3, [0.5, 2.0])


async def test_500_after_the_retries_is_a_provider_error(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", *[Reply(status=500, body=b'{"error":"llama runner process has terminated"}')] * 3)
    with pytest.raises(ProviderError, match=r"^Ollama answered 500 Internal Server Error: llama runner process has terminated$"):
        await ollama.chat_completion(chat())
    assert len(vendor.requests) == 3


async def test_401_from_a_proxy_in_front_is_a_provider_error(ollama: OllamaInference, vendor: FakeVendor) -> None:
    vendor.then("/api/chat", Reply(status=401, body=b"<html>401 Authorization Required</html>", content_type="text/html"))
    with pytest.raises(ProviderError) as e:
        await ollama.chat_completion(chat())
    assert (e.value.status, str(e.value)) == (
        502, f"Ollama answered 401 Unauthorized: check what is in front of Ollama at {ollama.url} (this stack sends it no credentials)")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"error":"proxy said: token=ol-secret-1 expired"}\n', "Ollama failed during the stream: proxy said: token=*** expired"),
        (b"<html>Authorization: Bearer ol-secret-1</html>\n", "Ollama sent a stream line that is not JSON: <html>Authorization: Bearer ***</html>"),
    ],
    ids=["error-line", "not-json"],
)
async def test_stream_failures_are_redacted(ollama: OllamaInference, vendor: FakeVendor, line: bytes, message: str,
                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    vendor.then("/api/chat", Reply(body=[*stream_of(sample("ollama/chat_stream.ndjson"))[:1], line], content_type=NDJSON))
    with caplog.at_level("WARNING"), pytest.raises(ProviderError) as e:
        async for _ in await ollama.chat_completion(chat(stream=True)):
            pass
    assert (e.value.status, str(e.value)) == (502, message)
    assert "ol-secret-1" not in caplog.text
