"""remote::tgi against a loopback Text Generation Inference server: /info, /generate, /generate_stream and
/v1/chat/completions as TGI's OpenAPI document describes them (its StreamResponse events with
`data:` and no space, special tokens, `{"error", "error_type"}` bodies and events, tool calls with
their arguments as an object), replayed from samples written out from that document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from providers.fakes import MODEL, PARIS, SSE, WEATHER, FakeVendor, Reply, chat, events, no_sleep, sample, serving, stream_of
from rpc.server import free_port

from llama_core.config import TGIImplConfig
from llama_core.errors import InvalidRequestError, NotFoundError, ProviderError, UnavailableError, UnsupportedError
from llama_core.providers.inference.tgi import TGIInference
from llama_core.providers.retry import RetryPolicy
from llama_core.types import (
    CompletionMessage,
    SamplingParams,
    StopReason,
    ToolCall,
)
from llama_core.types.inference import ChatCompletionResponse, CompletionRequest, CompletionResponse, EmbeddingsRequest

pytestmark = pytest.mark.anyio

SERVED = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeVendor, str]]:
    with serving({("GET", "/info"): Reply(body=sample("tgi/info.json"))}) as served:
        yield served


@pytest.fixture
async def tgi(served: tuple[FakeVendor, str], vendor: FakeVendor) -> AsyncIterator[TGIInference]:
    async with TGIInference(TGIImplConfig(url=served[1] + "/")) as provider:
        provider.retry = RetryPolicy(sleep=no_sleep)
        assert [(r.path, "authorization" in r.headers) for r in vendor.requests] == [("/info", False)]
        vendor.requests.clear()
        yield provider


def sse(name: str, **kw: Any) -> Reply:
    return Reply(body=stream_of(sample(f"tgi/{name}"), b"\n\n"), content_type=SSE, **kw)


def complete(stream: bool = False, **sampling: Any) -> CompletionRequest:
    return CompletionRequest(model=MODEL, content="The sky is", stream=stream, sampling_params=SamplingParams(**sampling))


async def test_served_models_are_what_info_says(tgi: TGIInference, vendor: FakeVendor) -> None:
    assert await tgi.served_models() == ["Llama3.1-8B-Instruct"]
    assert vendor.paths() == ["/info"]


async def test_another_model_is_a_404_naming_the_served_one(tgi: TGIInference, vendor: FakeVendor, served: tuple) -> None:
    with pytest.raises(NotFoundError) as e:
        await tgi.completion(CompletionRequest(model="Llama3.2-3B-Instruct", content="x"))
    assert str(e.value) == (
        f"TGI at {served[1]} serves meta-llama/Llama-3.1-8B-Instruct, not 'Llama3.2-3B-Instruct': ask for that model, or start TGI with this one."
    )
    assert vendor.paths() == ["/info"]  # asked again; nothing generated


async def test_chat_goes_to_the_messages_api(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", Reply(body=sample("tgi/chat.json")))
    sampling = SamplingParams(strategy="top_p", temperature=0.6, top_p=1.0, max_tokens=32, seed=5, stop=["\n\n"])
    response = await tgi.chat_completion(chat("meta-llama/Llama-3.1-8B-Instruct", sampling_params=sampling))
    assert isinstance(response, ChatCompletionResponse)
    assert response.completion_message == CompletionMessage(content="The capital of France is Paris.", stop_reason=StopReason.end_of_turn)
    assert vendor.requests[0].json == {
        "model": SERVED, "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0.6, "max_tokens": 32, "seed": 5, "stop": ["\n\n"],  # a top_p of 1 is no nucleus: not sent
    }  # fmt: skip


async def test_chat_stream_is_the_meta_reference_sequence(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse("chat_stream.sse"))
    assert await events(await tgi.chat_completion(chat(stream=True))) == [
        ("start", "", None),
        ("progress", "The", None),
        ("progress", " capital of France is", None),
        ("progress", " Paris.", None),
        ("complete", "", "end_of_turn"),
    ]


async def test_tool_calls_come_back_with_their_arguments_object(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", Reply(body=sample("tgi/chat_tools.json")))
    response = await tgi.chat_completion(chat(tools=[WEATHER]))
    assert isinstance(response, ChatCompletionResponse)
    assert response.completion_message == CompletionMessage(
        content="", stop_reason=StopReason.end_of_turn,
        tool_calls=[ToolCall(call_id="0", tool_name="get_current_weather", arguments=PARIS)])  # fmt: skip
    assert vendor.requests[0].json["tools"][0]["function"]["name"] == "get_current_weather"
    assert vendor.requests[0].json["tool_choice"] == "auto"


async def test_streamed_tool_calls_are_one_success_delta(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/chat/completions", sse("chat_tools_stream.sse"))
    got = await events(await tgi.chat_completion(chat(stream=True, tools=[WEATHER])))
    assert [g[0] for g in got] == ["start", "progress", "complete"]
    kind, (status, (_, name, args)), stop = got[1]
    assert (status, name, args, stop) == ("success", "get_current_weather", PARIS, "end_of_turn")


@pytest.mark.parametrize(
    ("sampling", "field", "message"),
    [
        ({"strategy": "top_k", "temperature": 0.7, "top_k": 40}, "sampling_params.strategy",
         "TGI's chat API has no top_k: use the greedy or top_p strategy, or /inference/completion."),
        ({"repetition_penalty": 1.2}, "sampling_params.repetition_penalty",
         "TGI's chat API has no repetition_penalty: leave it at 1.0, or use /inference/completion."),
    ],
    ids=["top_k", "repetition_penalty"],
)  # fmt: skip
async def test_chat_sampling_tgi_cannot_do_is_refused(tgi: TGIInference, vendor: FakeVendor, sampling: dict, field: str, message: str) -> None:
    with pytest.raises(UnsupportedError) as e:
        await tgi.chat_completion(chat(sampling_params=SamplingParams(**sampling)))
    assert (str(e.value), e.value.field, e.value.status, vendor.requests) == (message, field, 400, [])


@pytest.mark.parametrize(
    ("sampling", "parameters"),
    [
        ({}, {"do_sample": False, "details": True}),
        ({"strategy": "top_p", "temperature": 0.0, "top_p": 0.9}, {"do_sample": False, "details": True}),
        ({"strategy": "top_p", "temperature": 0.7, "top_p": 0.9, "max_tokens": 7, "seed": 11, "stop": ["\n"]},
         {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 7, "seed": 11, "stop": ["\n"], "details": True}),
        ({"strategy": "top_k", "temperature": 1.0, "top_k": 40, "repetition_penalty": 1.1},
         {"do_sample": True, "temperature": 1.0, "top_k": 40, "repetition_penalty": 1.1, "details": True}),
    ],
    ids=["greedy", "temperature-0-is-greedy", "top_p", "top_k"],
)  # fmt: skip
async def test_completion_sends_tgis_parameters(tgi: TGIInference, vendor: FakeVendor, sampling: dict, parameters: dict) -> None:
    vendor.then("/generate", Reply(body=sample("tgi/generate.json")))
    response = await tgi.completion(complete(**sampling))
    assert response == CompletionResponse(content=" blue because of Rayleigh scattering.", stop_reason=StopReason.out_of_tokens)
    assert (vendor.paths(), vendor.requests[0].json) == (["/generate"], {"inputs": "The sky is", "parameters": parameters})


async def test_an_eom_token_ends_the_message(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/generate", Reply(body=sample("tgi/generate_eom.json")))
    response = await tgi.completion(complete())
    assert response == CompletionResponse(content='<|python_tag|>brave_search.call(query="Paris weather")', stop_reason=StopReason.end_of_message)


async def test_completion_stream(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/generate_stream", sse("generate_stream.sse"))
    stream = await tgi.completion(complete(stream=True))
    assert [(c.delta, c.stop_reason) async for c in stream] == [(" blue", None), (" because", None), (" of", StopReason.out_of_tokens)]
    assert (vendor.paths(), vendor.requests[0].headers["accept"]) == (["/generate_stream"], SSE)


async def test_a_special_token_is_not_text(tgi: TGIInference, vendor: FakeVendor) -> None:
    vendor.then("/generate_stream", sse("generate_stream_eos.sse"))
    stream = await tgi.completion(complete(stream=True))
    assert [(c.delta, c.stop_reason) async for c in stream] == [("The", None), (" end.", None), ("", StopReason.end_of_turn)]


# name -> (path, replies, streams, error class, our status, message).
ERRORS: dict[str, tuple[str, list[Reply], bool, type, int, str]] = {
    "422-validation": ("/generate", [Reply(status=422, body=sample("tgi/error_422.json"))], False, InvalidRequestError, 400,
                       "TGI refused the request (422 Unprocessable Entity): Input validation error: `inputs` tokens + `max_new_tokens` "
                       "must be <= 8192. Given: 4 `inputs` tokens and 9000 `max_new_tokens`"),
    "424-generation": ("/generate", [Reply(status=424, body=sample("tgi/error_424.json"))], False, ProviderError, 502,
                       "TGI answered 424 Failed Dependency: Request failed during generation: Server error: CUDA out of memory. "
                       "Tried to allocate 2.00 GiB"),
    "429-overloaded": ("/generate_stream", [Reply(status=429, body=sample("tgi/error_429.json"))] * 3, True, UnavailableError, 503,
                       "TGI is rate limiting requests (429 Too Many Requests): Model is overloaded"),
    "stream-validation-event": ("/generate_stream", [sse("stream_error_validation.sse")], True, InvalidRequestError, 400,
                                "TGI refused the request: Input validation error: `stop` supports up to 4 stop sequences. Given: 5"),
    "stream-generation-event": ("/generate_stream", [sse("stream_error_generation.sse")], True, ProviderError, 502,
                                "TGI failed during the stream: Request failed during generation: Server error: CUDA out of memory"),
    "chat-422": ("/v1/chat/completions", [Reply(status=422, body=b'{"error":"Template error: template not found","error_type":"template_error"}')],
                 False, InvalidRequestError, 400, "TGI refused the request (422 Unprocessable Entity): Template error: template not found"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ERRORS))
async def test_errors_are_clear(tgi: TGIInference, vendor: FakeVendor, name: str) -> None:
    path, replies, stream, cls, status, message = ERRORS[name]
    vendor.then(path, *replies)
    with pytest.raises(cls) as e:
        if path == "/v1/chat/completions":
            await tgi.chat_completion(chat(stream=stream))
        else:
            async for _ in await tgi.completion(complete(stream=stream)):
                pass
    assert (type(e.value), e.value.status, str(e.value)) == (cls, status, message)
    assert len(vendor.requests) == len(replies)


async def test_a_bearer_token_is_sent_and_never_shown(served: tuple[FakeVendor, str], vendor: FakeVendor, caplog: pytest.LogCaptureFixture) -> None:
    vendor.echo_auth = True
    vendor.then("/generate", Reply(status=401, body=b'{"error":"Authorization header is incorrect","error_type":"unauthorized"}'))
    async with TGIInference(TGIImplConfig(url=served[1], api_token="hf_endpoint_token_42")) as provider:
        with caplog.at_level("WARNING"), pytest.raises(ProviderError) as e:
            await provider.completion(complete())
    assert str(e.value) == "TGI answered 401 Unauthorized: check the api_token in the run config"
    assert [r.headers["authorization"] for r in vendor.requests] == ["Bearer hf_endpoint_token_42"] * 2
    assert "hf_endpoint_token_42" not in caplog.text


async def test_embeddings_of_a_model_tgi_cannot_embed_are_refused(tgi: TGIInference, vendor: FakeVendor) -> None:
    with pytest.raises(UnsupportedError, match=r"^TGI serves no embeddings; ask for a local embedding model \(all-MiniLM-L6-v2\), not 'bge-large'.$"):
        await tgi.embeddings(EmbeddingsRequest(model="bge-large", contents=["a"]))
    assert vendor.requests == []


async def test_a_tgi_that_is_not_up_fails_the_start_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UnavailableError, match=rf"^TGI is not answering at {url}: start it \(`text-generation-launcher --model-id MODEL`, or its container\)"):
        async with TGIInference(TGIImplConfig(url=url)):
            pass
