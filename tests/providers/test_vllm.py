"""remote::vllm against a loopback vLLM OpenAI-compatible server: /v1/models, /v1/chat/completions and
/v1/completions as vLLM documents them (its ModelCard list, OpenAI chunks, tool calls from its
llama3_json parser, its ErrorResponse), replayed from samples written out from that documentation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from providers.fakes import PARIS, SSE, WEATHER, FakeVendor, Reply, chat, events, no_sleep, sample, serving, stream_of
from rpc.server import free_port, running_server

from llama_core.config import VLLMImplConfig
from llama_core.errors import InvalidRequestError, NotFoundError, ProviderError, UnavailableError
from llama_core.providers.inference.vllm import VLLMInference
from llama_core.providers.retry import RetryPolicy
from llama_core.types import (
    CompletionMessage,
    SamplingParams,
    StopReason,
    ToolCall,
)
from llama_core.types.inference import ChatCompletionResponse, CompletionRequest, CompletionResponse

pytestmark = pytest.mark.anyio

SERVED = "meta-llama/Llama-3.1-8B-Instruct"
TOKEN = "vllm-secret-token-1"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeVendor, str]]:
    with serving({("GET", "/v1/models"): Reply(body=sample("vllm/models.json"))}) as served:
        yield served


@pytest.fixture
async def vllm(served: tuple[FakeVendor, str], vendor: FakeVendor) -> AsyncIterator[VLLMInference]:
    async with VLLMInference(VLLMImplConfig(url=served[1], api_token=TOKEN)) as provider:
        provider.retry = RetryPolicy(sleep=no_sleep)
        assert [(r.path, r.headers["authorization"]) for r in vendor.requests] == [("/v1/models", f"Bearer {TOKEN}")]
        vendor.requests.clear()
        yield provider


def sse(name: str, keep: int | None = None, **kw: Any) -> Reply:
    return Reply(body=stream_of(sample(f"vllm/{name}"), b"\n\n")[:keep], content_type=SSE, **kw)


async def test_served_models_are_what_vllm_lists(vllm: VLLMInference, vendor: FakeVendor) -> None:
    assert await vllm.served_models() == ["Llama3.1-8B-Instruct"]
    assert vendor.paths() == ["/v1/models"]


@pytest.mark.parametrize("model", ["Llama3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", "Meta-Llama3.1-8B-Instruct"])
async def test_each_name_of_the_model_is_sent_as_vllms(vllm: VLLMInference, vendor: FakeVendor, model: str) -> None:
    vendor.then("/v1/chat/completions", Reply(body=sample("vllm/chat.json")))
    response = await vllm.chat_completion(chat(model))
    assert isinstance(response, ChatCompletionResponse)
    assert response.completion_message == CompletionMessage(content="The capital of France is Paris.", stop_reason=StopReason.end_of_turn)
    (sent,) = vendor.requests
    assert (sent.path, sent.headers["authorization"], sent.json) == ("/v1/chat/completions", f"Bearer {TOKEN}", {
        "model": SERVED, "messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0.0})  # fmt: skip


async def test_a_model_vllm_does_not_serve_is_a_404_naming_what_it_serves(vllm: VLLMInference, vendor: FakeVendor, served: tuple) -> None:
    with pytest.raises(NotFoundError) as e:
        await vllm.chat_completion(chat("Llama3.1-70B-Instruct"))
    assert str(e.value) == (
        f"vLLM at {served[1]} serves meta-llama/Llama-3.1-8B-Instruct, not 'Llama3.1-70B-Instruct': "
        "ask for that model, or start vLLM with this one."
    )
    assert vendor.paths() == ["/v1/models"]  # asked again (a restarted vLLM may serve another), nothing generated


async def test_a_served_model_name_and_a_restart_with_another_model(vllm: VLLMInference, vendor: FakeVendor) -> None:
    """`--served-model-name llama-70b` over /models/Llama-3.3-70B-Instruct: asked for by descriptor,
    sent by its served name; found after vLLM came back with it."""
    vendor.then("/v1/models", Reply(body=sample("vllm/models_renamed.json")))
    vendor.then("/v1/completions", Reply(body=sample("vllm/completion.json")))
    response = await vllm.completion(CompletionRequest(model="Llama3.3-70B-Instruct", content="The sky is"))
    assert isinstance(response, CompletionResponse)
    assert (response.content, response.stop_reason) == (" blue because of Rayleigh scattering.", StopReason.out_of_tokens)
    assert vendor.paths() == ["/v1/models", "/v1/completions"]
    assert vendor.requests[1].json == {"model": "llama-70b", "prompt": "The sky is", "temperature": 0.0}
    vendor.then("/v1/models", Reply(body=sample("vllm/models_renamed.json")))
    assert await vllm.served_models() == ["Llama3.3-70B-Instruct"]


async def test_chat_with_tools_and_sampling(vllm: VLLMInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", Reply(body=sample("vllm/chat_tools.json")))
    sampling = SamplingParams(strategy="top_k", temperature=0.7, top_k=40, max_tokens=64, repetition_penalty=1.1, seed=3)
    response = await vllm.chat_completion(chat(tools=[WEATHER], sampling_params=sampling))
    assert isinstance(response, ChatCompletionResponse)
    assert response.completion_message == CompletionMessage(
        content="", stop_reason=StopReason.end_of_message,
        tool_calls=[ToolCall(call_id="chatcmpl-tool-3b7e1f9c2d4a", tool_name="get_current_weather", arguments=PARIS)])  # fmt: skip
    assert vendor.requests[0].json == {
        "model": SERVED, "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0.7, "top_k": 40, "max_tokens": 64, "seed": 3, "repetition_penalty": 1.1,
        "tools": [{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather",
                   "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "format": {"type": "string"}},
                                  "required": ["location"]}}}],
        "tool_choice": "auto",
    }  # fmt: skip


async def test_chat_stream_is_the_meta_reference_sequence(vllm: VLLMInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse("chat_stream.sse"))
    assert await events(await vllm.chat_completion(chat(stream=True))) == [
        ("start", "", None),
        ("progress", "The", None),
        ("progress", " capital of France is", None),
        ("progress", " Paris.", None),
        ("complete", "", "end_of_turn"),
    ]
    assert vendor.requests[0].json["stream"] is True and vendor.requests[0].headers["accept"] == SSE


async def test_streamed_tool_calls_are_one_success_delta(vllm: VLLMInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse("chat_tools_stream.sse"))
    assert await events(await vllm.chat_completion(chat(stream=True, tools=[WEATHER]))) == [
        ("start", "", None),
        ("progress", ("success", ("chatcmpl-tool-9c4d2e7f1a3b", "get_current_weather", PARIS)), "end_of_message"),
        ("complete", "", "end_of_message"),
    ]


async def test_completion_stream(vllm: VLLMInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/completions", sse("completion_stream.sse"))
    stream = await vllm.completion(CompletionRequest(model="Llama3.1-8B-Instruct", content="The sky is", stream=True))
    assert [(c.delta, c.stop_reason) async for c in stream] == [(" blue", None), (" because", None), (" of", StopReason.out_of_tokens)]


async def test_without_a_token_no_authorization_is_sent(served: tuple[FakeVendor, str], vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", Reply(body=sample("vllm/chat.json")))
    async with VLLMInference(VLLMImplConfig(url=served[1] + "/v1/")) as provider:  # the /v1 of a pasted base URL is fine
        await provider.chat_completion(chat())
    assert [(r.path, "authorization" in r.headers) for r in vendor.requests] == [("/v1/models", False), ("/v1/chat/completions", False)]


# name -> (replies, streams, error class, our status, message). vLLM echoes the Authorization it got in
# each (echo_auth): the token must reach neither the message nor the log.
ERRORS: dict[str, tuple[list[Reply], bool, type, int, str]] = {
    "401-wrong-token": ([Reply(status=401, body=sample("vllm/error_401.json"))], False, ProviderError, 502,
                        "vLLM answered 401 Unauthorized: check the api_token in the run config (vLLM's --api-key)"),
    "400-tools-not-enabled": ([Reply(status=400, body=sample("vllm/error_400_tools.json"))], False, InvalidRequestError, 400,
                              'vLLM refused the request (400 Bad Request): "auto" tool choice requires --enable-auto-tool-choice and '
                              "--tool-call-parser to be set (you sent Authorization: Bearer ***)"),
    "404-model-gone": ([Reply(status=404, body=sample("vllm/error_404.json"))], False, NotFoundError, 404,
                       "vLLM answered 404 Not Found: The model `Llama3.1-70B-Instruct` does not exist. (you sent Authorization: Bearer ***)"),
    "500-after-retries": ([Reply(status=500, body=b"Internal Server Error")] * 3, True, ProviderError, 502,
                          "vLLM answered 500 Internal Server Error: Internal Server Error (you sent Authorization: Bearer ***)"),
    "stream-error-event": ([Reply(body=stream_of(sample("vllm/stream_error.sse"), b"\n\n"), content_type=SSE)], True, ProviderError, 502,
                           "vLLM failed during the stream: The engine is dead: CUDA error: an illegal memory access was encountered"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ERRORS))
async def test_errors_are_clear_and_never_carry_the_token(
    vllm: VLLMInference, vendor: FakeVendor, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    replies, stream, cls, status, message = ERRORS[name]
    vendor.echo_auth = True
    vendor.then("/v1/chat/completions", *replies)
    with caplog.at_level("WARNING"), pytest.raises(cls) as e:
        async for _ in await vllm.chat_completion(chat(stream=stream, tools=[WEATHER])):
            pass
    assert (type(e.value), e.value.status, str(e.value)) == (cls, status, message)
    assert len(vendor.requests) == len(replies) and TOKEN not in caplog.text


@pytest.mark.parametrize("cut", [True, False], ids=["connection-dropped", "ended-without-finish"])
async def test_a_stream_cut_midway_is_a_provider_error(vllm: VLLMInference, vendor: FakeVendor, cut: bool) -> None:
    vendor.then("/v1/chat/completions", sse("chat_stream.sse", keep=3, cut=cut))
    seen = []
    message = r"^vLLM's stream was cut midway: " if cut else r"^vLLM's stream ended before the reply was complete.$"
    with pytest.raises(ProviderError, match=message):
        async for chunk in await vllm.chat_completion(chat(stream=True)):
            seen.append(chunk.event.delta)
    assert seen == ["", "The", " capital of France is"]


async def test_a_vllm_that_is_not_up_fails_the_start_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UnavailableError, match=rf"^vLLM is not answering at {url}: start it with `vllm serve MODEL` and wait until it has loaded the model \("):
        async with VLLMInference(VLLMImplConfig(url=url, api_token=TOKEN)):
            pass


async def test_a_vllm_that_goes_down_is_a_503_and_comes_back(served: tuple[FakeVendor, str], vendor: FakeVendor) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server(lambda: vendor, port=port):
        provider = VLLMInference(VLLMImplConfig(url=url))
        await provider.__aenter__()
    try:
        provider.retry = RetryPolicy(sleep=no_sleep)
        with pytest.raises(UnavailableError, match=rf"^vLLM is not answering at {url}: "):
            await provider.chat_completion(chat())
        vendor.then("/v1/chat/completions", Reply(body=sample("vllm/chat.json")))
        with running_server(lambda: vendor, port=port):
            response = await provider.chat_completion(chat())
        assert response.completion_message.content == "The capital of France is Paris."
    finally:
        await provider.__aexit__()
