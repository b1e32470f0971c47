"""local-plus-vllm-inference and local-plus-tgi-inference served over HTTP, as a client sees them: a real
stack whose inference is a loopback vLLM or TGI, answering the native and the OpenAI routes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from providers.fakes import FakeVendor, Reply, sample, stream_of
from providers.fakes.stacks import running_stack
from rpc.server import running_server

from llama_core.config import RunConfig

# engine -> (distribution, provider id, what it answers with at start, the path of its chat API).
ENGINES = {
    "vllm": ("local-plus-vllm-inference", "remote::vllm", ("GET", "/v1/models", "vllm/models.json"), "/v1/chat/completions"),
    "tgi": ("local-plus-tgi-inference", "remote::tgi", ("GET", "/info", "tgi/info.json"), "/v1/chat/completions"),
}
CHAT = {"model": "Llama3.1-8B-Instruct", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


@pytest.fixture(scope="module", params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeVendor, str, str]]:
    name = request.param
    dist, provider_id, (verb, path, answer), _ = ENGINES[name]
    vendor = FakeVendor({(verb, path): Reply(body=sample(answer))})
    with running_server(lambda: vendor) as vendor_url:
        config = RunConfig(name="box", distribution_id=dist, providers={"inference": {"provider_id": provider_id, "url": vendor_url}})
        with running_stack(config) as url:
            yield name, vendor, vendor_url, url


def test_native_chat_completion(engine: tuple[str, FakeVendor, str, str]) -> None:
    name, vendor, _, url = engine
    vendor.reset()
    vendor.then(ENGINES[name][3], Reply(body=sample(f"{name}/chat.json")))
    answer = httpx.post(url + "/inference/chat_completion", json=CHAT, timeout=30)
    assert (answer.status_code, answer.json()["completion_message"]) == (200, {
        "role": "assistant", "content": "The capital of France is Paris.", "stop_reason": "end_of_turn", "tool_calls": []})  # fmt: skip
    assert vendor.requests[-1].json["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_openai_stream_through_the_engine(engine: tuple[str, FakeVendor, str, str]) -> None:
    name, vendor, _, url = engine
    vendor.reset()
    vendor.then(ENGINES[name][3], Reply(body=stream_of(sample(f"{name}/chat_stream.sse"), b"\n\n"), content_type="text/event-stream"))
    answer = httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30)
    assert answer.status_code == 200
    chunks = [json.loads(e.removeprefix("data: ")) for e in answer.text.split("\n\n") if e.strip() and e.strip() != "data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert (text, finish) == ("The capital of France is Paris.", ["stop"])


def test_models_list_is_what_the_engine_serves(engine: tuple[str, FakeVendor, str, str]) -> None:
    name, _, _, url = engine
    answer = httpx.get(url + "/models/list", timeout=30)
    assert [(m["descriptor"], m["provider"]) for m in answer.json()] == [("Llama3.1-8B-Instruct", ENGINES[name][1])]


def test_a_model_the_engine_does_not_serve_is_a_404(engine: tuple[str, FakeVendor, str, str]) -> None:
    name, vendor, vendor_url, url = engine
    answer = httpx.post(url + "/inference/chat_completion", json={**CHAT, "model": "Llama3.3-70B-Instruct"}, timeout=30)
    engine_name = {"vllm": "vLLM", "tgi": "TGI"}[name]
    assert (answer.status_code, answer.json()["error"]["message"]) == (404, (
        f"{engine_name} at {vendor_url} serves meta-llama/Llama-3.1-8B-Instruct, not 'Llama3.3-70B-Instruct': "
        f"ask for that model, or start {engine_name} with this one."))  # fmt: skip
