"""Request limits and stop sequences on the real engine (meta-reference on the tiny checkpoint).

Over a real HTTP server (native and /v1) and the real stdio process (JSON-RPC): a seed the torch
generator cannot take is a 400 / -32602 and the engine keeps serving; a stop sequence cuts the
greedy text where it first appears and the workers end the engine's sequence on that token (fewer
tokens generated, none past it, its batch slot freed); a prompt too long for the context in any tokenization is refused by its size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rpc.server import serving_spied

from llama_core.engine.messages import Cancel, Submit, Tokens
from llama_core.providers.inference.stops import cut_text
from llama_core.stack import Stack

pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"
MAX_SEQ_LEN = 512
MAX_TOKENS = 24
LONGEST_LLAMA3_TOKEN = 128  # bytes: a run of spaces
USER = [{"role": "user", "content": "Tell me a story."}]


@pytest.fixture(scope="module")
def run_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.tiny_checkpoint import write_tiny_run_config

    root = tmp_path_factory.mktemp("limits-engine")
    return write_tiny_run_config(root, MODEL, max_seq_len=MAX_SEQ_LEN, max_batch_size=2, device="cpu", dtype="fp32", threads=1)


@pytest.fixture(scope="module")
def served(run_config: Path) -> Iterator[tuple[str, Any, list[Any]]]:
    """(base URL, the worker group, every message the server sent to the workers)."""
    stack = Stack.from_config(run_config)
    with serving_spied(stack) as served:
        yield served


class Stdio:
    """`python -m llama_rpc CONFIG`, spoken to one JSON-RPC line at a time."""

    def __init__(self, config: Path, home: Path) -> None:
        env = {**os.environ, "LLAMA_STACK_CONFIG_DIR": str(home), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_rpc", str(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        self.ids = 0

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.ids += 1
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the stdio server exited"
            message = json.loads(line)
            if message.get("id") == self.ids:
                return message

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()  # EOF: the server finishes and exits
        self.proc.wait(60)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def stdio(run_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stdio]:
    server = Stdio(run_config, tmp_path_factory.mktemp("stdio-home"))
    try:
        yield server
    finally:
        server.close()


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def completion(stop: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    sampling: dict[str, Any] = {"max_tokens": MAX_TOKENS} | ({"stop": stop} if stop else {})
    return {"model": MODEL, "content": "Once upon a time", "sampling_params": sampling, "logprobs": {"top_k": 1}, **fields}


# --- a seed out of range -------------------------------------------------------------------------


def test_a_seed_out_of_range_is_refused_and_the_engine_keeps_serving(
    served: tuple[str, Any, list[Any]], stdio: Stdio
) -> None:
    # 2^70 reached the worker before and took the engine down until a restart (every later request 503).
    url, _, _ = served
    reply = httpx.post(url + "/inference/chat_completion", json=chat(sampling_params={"seed": 2**70}), timeout=60)
    assert (reply.status_code, reply.json()["error"]["field"]) == (400, "sampling_params.seed")
    reply = httpx.post(url + "/v1/chat/completions", json=chat(seed=2**70, temperature=0.5), timeout=60)
    assert (reply.status_code, reply.json()["error"]["param"]) == (400, "seed")
    answer = stdio.call("inference/chat_completion", chat(sampling_params={"seed": 2**70}))
    assert (answer["error"]["code"], answer["error"]["data"]["field"]) == (-32602, "sampling_params.seed")

    sampled = chat(sampling_params={"strategy": "top_p", "temperature": 1.0, "seed": 2**63 - 1, "max_tokens": 3})
    assert httpx.post(url + "/inference/chat_completion", json=sampled, timeout=60).status_code == 200
    assert "result" in stdio.call("inference/chat_completion", sampled)


# --- stop sequences ------------------------------------------------------------------------------


def greedy(url: str) -> tuple[str, list[Any]]:
    """The tiny model's greedy continuation of the completion prompt, and its per-token logprobs."""
    body = httpx.post(url + "/inference/completion", json=completion(), timeout=60).json()
    assert body["stop_reason"] == "out_of_tokens" and len(body["logprobs"]) == MAX_TOKENS
    return body["content"], body["logprobs"]


def a_stop_in(text: str) -> str:
    """Four characters from the middle of `text` (the tiny model's text is gibberish, but fixed)."""
    stop = text[len(text) // 2 : len(text) // 2 + 4]
    assert len(stop) == 4 and text.find(stop) > 0
    return stop


def test_a_stop_sequence_ends_the_engine_sequence_early(served: tuple[str, Any, list[Any]]) -> None:
    url, group, sent = served
    text, logprobs = greedy(url)
    stop = a_stop_in(text)
    expected, found = cut_text(text, [stop])
    assert found and expected == text[: text.find(stop)]

    before, received = len(sent), []
    dispatch = group._dispatch
    group._dispatch = lambda msg: (received.append(msg), dispatch(msg))[-1]  # what the workers send back
    try:
        body = httpx.post(url + "/inference/completion", json=completion([stop]), timeout=60).json()
    finally:
        group._dispatch = dispatch
    assert (body["content"], body["stop_reason"]) == (expected, "end_of_turn")
    # The same greedy tokens, but only up to the one that completed the stop: fewer than max_tokens.
    n = len(body["logprobs"])
    assert 0 < n < MAX_TOKENS and body["logprobs"] == logprobs[:n]
    # The workers themselves ended the sequence on that token: no step past it, nothing to cancel.
    (submit,) = [m for m in sent[before:] if isinstance(m, Submit)]
    assert submit.params.stop == (stop,) and not any(isinstance(m, Cancel) for m in sent[before:])
    made = [out for m in received if isinstance(m, Tokens) for out in m.items if out.seq_id == submit.seq_id]
    assert [out.stop_reason for out in made] == [None] * (n - 1) + ["end_of_turn"]
    assert group._inflight == {}


def test_a_stop_sequence_on_every_route(served: tuple[str, Any, list[Any]], stdio: Stdio) -> None:
    url, group, _ = served
    text, _ = greedy(url)
    stop = a_stop_in(text)
    expected = text[: text.find(stop)]

    # A native completion stream: the pieces add up to the cut text; the last says end_of_turn.
    lines = httpx.post(url + "/inference/completion", json=completion([stop], stream=True), timeout=60).text.split("\n\n")
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines if line]
    assert "".join(c["delta"] for c in chunks) == expected
    assert [c["stop_reason"] for c in chunks][-1] == "end_of_turn"

    # /v1/completions, plain and streamed: finish_reason "stop".
    v1 = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": MAX_TOKENS, "stop": stop}
    choice = httpx.post(url + "/v1/completions", json=v1, timeout=60).json()["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == (expected, "stop")
    lines = httpx.post(url + "/v1/completions", json={**v1, "stream": True}, timeout=60).text.split("\n\n")
    choices = [json.loads(line.removeprefix("data: "))["choices"][0] for line in lines if line.startswith("data: {")]
    assert ("".join(c["text"] for c in choices), choices[-1]["finish_reason"]) == (expected, "stop")

    # JSON-RPC on the stdio process: the same engine, the same cut; and as an MCP tool there.
    answer = stdio.call("inference/completion", completion([stop]))["result"]
    assert (answer["content"], answer["stop_reason"]) == (expected, "end_of_turn")
    tool = stdio.call("tools/call", {"name": "inference_completion", "arguments": completion([stop])})["result"]
    assert tool["isError"] is False and tool["structuredContent"] == answer
    assert group._inflight == {}


def test_a_stop_sequence_in_a_chat(served: tuple[str, Any, list[Any]], stdio: Stdio) -> None:
    url, _, _ = served
    sampling = {"max_tokens": MAX_TOKENS}
    message = httpx.post(url + "/inference/chat_completion", json=chat(sampling_params=sampling), timeout=60).json()
    text = message["completion_message"]["content"]
    stop = a_stop_in(text)
    expected = text[: text.find(stop)].strip(" ")  # the chat format trims the reply's spaces

    cut = chat(sampling_params={**sampling, "stop": [stop]})
    reply = httpx.post(url + "/inference/chat_completion", json=cut, timeout=60).json()["completion_message"]
    assert (reply["content"], reply["stop_reason"]) == (expected, "end_of_turn")
    events = [
        json.loads(line.removeprefix("data: "))["event"]
        for line in httpx.post(url + "/inference/chat_completion", json={**cut, "stream": True}, timeout=60).text.split("\n\n")
        if line
    ]
    assert "".join(e["delta"] for e in events).strip(" ") == expected
    assert (events[-1]["event_type"], events[-1]["stop_reason"]) == ("complete", "end_of_turn")
    v1 = httpx.post(url + "/v1/chat/completions", json=chat(max_tokens=MAX_TOKENS, stop=[stop]), timeout=60).json()
    assert (v1["choices"][0]["message"]["content"], v1["choices"][0]["finish_reason"]) == (expected, "stop")
    assert stdio.call("inference/chat_completion", cut)["result"]["completion_message"] == reply


# --- prompts too long for the context ------------------------------------------------------------


def test_a_prompt_that_cannot_fit_is_refused_by_its_size(served: tuple[str, Any, list[Any]], stdio: Stdio) -> None:
    url, _, _ = served
    cap = MAX_SEQ_LEN * LONGEST_LLAMA3_TOKEN
    too_long = "x" * (cap + 1)
    message = (
        f"The prompt is {cap + 1} bytes, more than this model's context (max_seq_len {MAX_SEQ_LEN} tokens) can hold: "
        f"at most {cap} bytes. Shorten it."
    )
    reply = httpx.post(url + "/inference/completion", json={"model": MODEL, "content": too_long}, timeout=60)
    assert (reply.status_code, reply.json()["error"]) == (
        400, {"message": message, "type": "invalid_request", "status": 400, "field": "content"}
    )  # fmt: skip
    reply = httpx.post(url + "/inference/chat_completion", json=chat(messages=[{"role": "user", "content": too_long}]), timeout=60)
    assert (reply.status_code, reply.json()["error"]["field"]) == (400, "messages")
    answer = stdio.call("inference/chat_completion", chat(messages=[{"role": "user", "content": too_long}]))
    assert (answer["error"]["code"], answer["error"]["message"]) == (-32602, message)
    # A run of spaces is the most a token holds: the cap's worth of them fits, and is refused by tokens.
    spaces = " " * cap
    reply = httpx.post(url + "/inference/completion", json={"model": MODEL, "content": spaces}, timeout=60)
    assert (reply.status_code, reply.json()["error"]["field"]) == (400, "content")
    assert reply.json()["error"]["message"].startswith("The prompt has ")
