"""`llama stack run local-ollama --name NAME` as a user runs it, against a loopback Ollama: a real
server process whose inference is Ollama's, answering chat completions over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from providers.fakes import FakeVendor, Reply, sample, stream_of
from rpc.server import free_port, running_server
from stack.process import llama_stack_run

from llama_core.config import RunConfig, save_run_config

TAG = "llama3.2:1b-instruct-fp16"
BODY = {"model": "Llama3.2-1B-Instruct", "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "sampling_params": {"max_tokens": 16}}  # fmt: skip


def write_build(home: Path, ollama_url: str) -> None:
    """The run config `llama stack build local-ollama --name box` would leave, inference only (the other
    APIs' local providers need models of their own)."""
    config = RunConfig(name="box", distribution_id="local-ollama",
                       providers={"inference": {"provider_id": "remote::ollama", "url": ollama_url}})  # fmt: skip
    save_run_config(config, home / "builds" / "local-ollama" / "venv" / "box.toml")  # run_config_path under `home`


@pytest.fixture(scope="module")
def ollama() -> Iterator[tuple[FakeVendor, str]]:
    vendor = FakeVendor({
        ("GET", "/api/tags"): Reply(body=sample("ollama/tags.json")),
        ("POST", "/api/chat"): Reply(body=sample("ollama/chat.json")),
    })  # fmt: skip
    with running_server(lambda: vendor) as url:
        yield vendor, url


@pytest.fixture(scope="module")
def stack_url(ollama: tuple[FakeVendor, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ollama-home")
    write_build(home, ollama[1])
    port, log = free_port(), home / "server.log"
    with llama_stack_run(["local-ollama", "--name", "box"], port, log, env={"LLAMA_STACK_CONFIG_DIR": str(home)}) as url:
        yield url

def test_chat_completion_over_http(ollama: tuple[FakeVendor, str], stack_url: str) -> None:
    vendor = ollama[0]
    vendor.requests.clear()
    answer = httpx.post(stack_url + "/inference/chat_completion", json=BODY, timeout=30)
    assert (answer.status_code, answer.json()) == (200, {
        "completion_message": {"role": "assistant", "content": "The capital of France is Paris.", "stop_reason": "end_of_turn",
                               "tool_calls": []}, "logprobs": None,
        "metrics": [{"metric": "prompt_tokens", "value": 31, "unit": None}, {"metric": "completion_tokens", "value": 8, "unit": None},
                    {"metric": "total_tokens", "value": 39, "unit": None}]})  # fmt: skip
    (sent,) = vendor.requests
    assert (sent.path, sent.json["model"], sent.json["options"]) == ("/api/chat", TAG, {"temperature": 0.0, "num_predict": 16})


def test_streamed_chat_over_http(ollama: tuple[FakeVendor, str], stack_url: str) -> None:
    vendor = ollama[0]
    vendor.then("/api/chat", Reply(body=stream_of(sample("ollama/chat_stream.ndjson")), content_type="application/x-ndjson"))
    answer = httpx.post(stack_url + "/inference/chat_completion", json={**BODY, "stream": True}, timeout=30)
    assert answer.headers["content-type"] == "text/event-stream"
    events = [json.loads(e.removeprefix("data: "))["event"] for e in answer.text.split("\n\n") if e]
    assert [(e["event_type"], e["delta"], e["stop_reason"]) for e in events] == [
        ("start", "", None),
        ("progress", "The", None),
        ("progress", " capital", None),
        ("progress", " of France is", None),
        ("progress", " Paris.", None),
        ("complete", "", "end_of_turn"),
    ]


def test_a_model_not_pulled_is_a_404_saying_what_to_run(ollama: tuple[FakeVendor, str], stack_url: str) -> None:
    ollama[0].then("/api/chat", Reply(status=404, body=sample("ollama/not_found.json")))
    answer = httpx.post(stack_url + "/inference/chat_completion", json=BODY, timeout=30)
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == f"Model {TAG} is not pulled in Ollama at {ollama[1]}: run `ollama pull {TAG}` first."


def test_openai_route_through_ollama(ollama: tuple[FakeVendor, str], stack_url: str) -> None:
    body = {"model": "Llama3.2-1B-Instruct", "messages": [{"role": "user", "content": "Capital of France?"}]}
    answer = httpx.post(stack_url + "/v1/chat/completions", json=body, timeout=30).json()
    assert (answer["choices"][0]["message"]["content"], answer["choices"][0]["finish_reason"]) == ("The capital of France is Paris.", "stop")


def test_run_without_ollama_says_it_is_not_running(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    write_build(tmp_path, url)
    argv = [sys.executable, "-m", "llama_cli", "stack", "run", "local-ollama", "--name", "box", "--port", str(free_port())]
    env = {**os.environ, "LLAMA_STACK_CONFIG_DIR": str(tmp_path)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[-1] == f"Error: Ollama is not running at {url}: start it with `ollama serve` in a separate terminal."


def test_models_list_is_what_ollama_has_pulled(stack_url: str) -> None:
    answer = httpx.get(stack_url + "/models/list", timeout=30)
    assert answer.status_code == 200
    assert [(m["descriptor"], m["provider"]) for m in answer.json()] == [
        ("Llama3.2-1B-Instruct", "remote::ollama"),  # llama3.2:1b-instruct-fp16, one of our builds
        ("all-minilm:latest", "remote::ollama"),  # a tag we do not know is listed as itself
    ]
