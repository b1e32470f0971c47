"""The `remote` distribution: a stack whose every API is another llama-toolchain server. Chained to a
second server (meta-reference on the tiny checkpoint), it answers exactly as that server does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from providers.fakes import FakeVendor, Reply, sample
from providers.fakes.stacks import running_stack
from rpc.server import free_port, running_server

from llama_core.client import StackClient
from llama_core.config import RemoteStackConfig, RunConfig
from llama_core.errors import NotConfiguredError, NotFoundError, UnavailableError
from llama_core.providers.remote import RemoteInference
from llama_core.types import SamplingParams, UserMessage
from llama_core.types.inference import (
    BatchCompletionRequest,
    ChatCompletionRequest,
    CompletionRequest,
)
from llama_core.types.safety import RunShieldsRequest

pytestmark = pytest.mark.anyio

MODEL = "Llama3.2-1B-Instruct"  # served from the tiny random checkpoint: gibberish, but deterministic
REMOTE_APIS = ("inference", "safety", "agentic_system", "memory")


def remote_config(url: str) -> RunConfig:
    return RunConfig(name="r", distribution_id="remote", providers={api: {"provider_id": "remote", "url": url} for api in REMOTE_APIS})


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("torch")
    from engine.tiny_checkpoint import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path_factory.mktemp("remote-tiny") / "tiny")
    config = RunConfig(name="tiny", distribution_id="local", providers={"inference": {
        "provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(ckpt), "max_seq_len": 128, "max_batch_size": 4}})  # fmt: skip
    with running_stack(config) as url:
        yield url


@pytest.fixture(scope="module")
def chained(upstream: str) -> Iterator[str]:
    with running_stack(remote_config(upstream)) as url:
        yield url


def chat(stream: bool = False, text: str = "hello") -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model=MODEL, messages=[UserMessage(content=text)], sampling_params=SamplingParams(max_tokens=6), stream=stream
    )


def encoded(value: object) -> object:
    return json.loads(msgspec.json.encode(value))


async def both(upstream: str, chained: str, call: str, request: object) -> tuple[object, object]:
    """`call(request)` answered by the upstream directly and through the chained stack (streams as lists)."""
    answers = []
    for url in (upstream, chained):
        async with StackClient(url) as client:
            answer = await getattr(client, call)(request)
            if hasattr(answer, "__aiter__"):
                answer = [chunk async for chunk in answer]
            answers.append(encoded(answer))
    return answers[0], answers[1]


@pytest.mark.parametrize(
    ("call", "request_"),
    [
        ("chat_completion", chat()),
        ("chat_completion", chat(stream=True)),
        ("completion", CompletionRequest(model=MODEL, content="The sky is", sampling_params=SamplingParams(max_tokens=5))),
        ("completion", CompletionRequest(model=MODEL, content="The sky is", sampling_params=SamplingParams(max_tokens=5), stream=True)),
        ("batch_completion", BatchCompletionRequest(model=MODEL, content_batch=["a", "b c"], sampling_params=SamplingParams(max_tokens=3))),
    ],
    ids=["chat", "chat-stream", "completion", "completion-stream", "batch-completion"],
)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the client's loop is not what is compared here
async def test_the_chained_stack_answers_as_the_upstream(upstream: str, chained: str, call: str, request_: object) -> None:
    direct, through = await both(upstream, chained, call, request_)
    assert through == direct
    assert direct  # a real answer, not two empty ones


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_stream_passes_through_the_meta_reference_sequence(upstream: str, chained: str) -> None:
    _, through = await both(upstream, chained, "chat_completion", chat(stream=True))
    assert isinstance(through, list)
    kinds = [c["event"]["event_type"] for c in through]
    assert kinds[0] == "start" and kinds[-1] == "complete" and set(kinds[1:-1]) <= {"progress"}
    assert through[-1]["event"]["stop_reason"] == "out_of_tokens"


async def test_errors_come_back_as_the_upstream_raised_them(upstream: str, chained: str) -> None:
    messages = []
    for url in (upstream, chained):
        async with StackClient(url) as client:
            with pytest.raises(NotFoundError) as e:
                await client.chat_completion(ChatCompletionRequest(model="Llama3.1-8B-Instruct", messages=[UserMessage(content="x")]))
            messages.append(str(e.value))
            with pytest.raises(NotConfiguredError, match=r"^The safety API has no provider in this stack \(distribution local\)"):
                await client.run_shields(RunShieldsRequest(messages=[UserMessage(content="x")], shields=[]))
    assert messages[0] == messages[1]


def test_raw_http_through_the_chain_is_the_same_json(upstream: str, chained: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 4}}
    answers = [httpx.post(url + "/inference/chat_completion", json=body, timeout=60) for url in (upstream, chained)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()


async def test_an_unreachable_upstream_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with RemoteInference(RemoteStackConfig(url=url)) as remote:
        with pytest.raises(UnavailableError, match=rf"^Cannot reach the stack at {url}: "):
            await remote.chat_completion(chat())


def test_provider_data_reaches_the_vendor_through_the_chain(tmp_path: Path) -> None:
    """client -> remote stack -> fireworks stack (no key configured) -> vendor: the request's key arrives."""
    vendor = FakeVendor({("POST", "/v1/chat/completions"): Reply(body=sample("fireworks/chat.json"))})
    with running_server(lambda: vendor) as vendor_url:
        fireworks = RunConfig(name="fw", distribution_id="local-plus-fireworks-inference", providers={
            "inference": {"provider_id": "remote::fireworks", "url": vendor_url, "api_key": ""}})  # fmt: skip
        with running_stack(fireworks) as fw_url, running_stack(remote_config(fw_url)) as url:
            body = {"model": "Llama3.1-8B-Instruct", "messages": [{"role": "user", "content": "Capital of France?"}]}
            headers = {"X-LlamaStack-ProviderData": '{"fireworks_api_key": "k-from-client"}'}
            answer = httpx.post(url + "/inference/chat_completion", json=body, headers=headers, timeout=30)
            assert answer.json()["completion_message"]["content"] == "The capital of France is Paris."
            missing = httpx.post(url + "/inference/chat_completion", json=body, timeout=30)
            bad = httpx.post(url + "/inference/chat_completion", json=body, headers={"X-LlamaStack-ProviderData": "[1]"}, timeout=30)
    assert [r.headers["authorization"] for r in vendor.requests] == ["Bearer k-from-client"]
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("No Fireworks API key: set api_key")
    assert missing.json()["error"]["field"] == "X-LlamaStack-ProviderData"
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "X-LlamaStack-ProviderData"


def test_models_list_through_the_chain_names_the_upstream_model(upstream: str, chained: str) -> None:
    lists = [httpx.get(url + "/models/list", timeout=60).json() for url in (upstream, chained)]
    assert [[m["descriptor"] for m in models] for models in lists] == [[MODEL], [MODEL]]
    assert [m["provider"] for m in lists[1]] == ["remote"]  # served here through the remote provider
