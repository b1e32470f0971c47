"""`llama stack run CONFIG.toml` as a user runs it: a real server process on the tiny checkpoint.

One server for the module (meta-reference provider, worker process, Hypercorn), driven by plain
HTTP, the `openai` package, llama_core.client and `python -m llama_cli.client.inference`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import openai
import pytest
from rpc.server import free_port

from .process import llama_stack_run

from llama_cli.app import main
from llama_core.client import StackClient
from llama_core.types import SamplingParams, UserMessage
from llama_core.types.inference import ChatCompletionRequest

pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"  # served from the tiny random checkpoint, so answers are gibberish
MAX_SEQ_LEN = 256


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def chat(self, text: str, max_tokens: int = 8, **extra: object) -> httpx.Response:
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "sampling_params": {"max_tokens": max_tokens}}
        return httpx.post(self.url + "/inference/chat_completion", json={**body, **extra}, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from engine.tiny_checkpoint import write_tiny_run_config

    root = tmp_path_factory.mktemp("stack-run")
    config = write_tiny_run_config(root, MODEL, max_seq_len=MAX_SEQ_LEN, max_batch_size=8)
    port, log = free_port(), root / "server.log"
    with llama_stack_run([str(config)], port, log, env={"LLAMA_STACK_CONFIG_DIR": str(root / "home")}) as url:
        yield Server(url, log)

def test_serving_lines(server: Server) -> None:
    lines = server.log.read_text().splitlines()
    serving = [line for line in lines if line.startswith("Serving ")]
    assert serving[:7] == [
        "Serving POST /inference/chat_completion",
        "Serving POST /inference/completion",
        "Serving POST /inference/batch_chat_completion",
        "Serving POST /inference/batch_completion",
        "Serving POST /inference/embeddings",
        "Serving GET /models/list",
        "Serving GET /models/get",
    ]
    assert "Serving POST /v1/chat/completions" in serving
    assert f"Listening on {server.url.removeprefix('http://')}" in lines


def test_chat_json_and_stream_agree(server: Server) -> None:
    reply = server.chat("hello")
    assert reply.headers["content-type"] == "application/json"
    message = reply.json()["completion_message"]
    assert message["stop_reason"] == "out_of_tokens" and message["content"]
    streamed = server.chat("hello", stream=True)
    assert streamed.headers["content-type"] == "text/event-stream"
    events = [json.loads(line[6:])["event"] for line in streamed.text.split("\n\n") if line]
    assert [e["event_type"] for e in events[:1] + events[-1:]] == ["start", "complete"]
    assert "".join(e["delta"] for e in events) == message["content"]  # greedy: the same text both ways
    assert events[-1]["stop_reason"] == "out_of_tokens"


def test_openai_client(server: Server) -> None:
    expected = server.chat("hello").json()["completion_message"]["content"]
    messages = [{"role": "user", "content": "hello"}]
    with openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0) as client:
        reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)  # type: ignore[arg-type]
        assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == (expected, "length")
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected


def test_inference_client_prints_the_answer(server: Server) -> None:
    expected = server.chat("hello world, troll me in two-paragraphs about 42").json()["completion_message"]["content"]
    port = server.url.rsplit(":", 1)[1]
    for flag in ("--stream", "--no-stream"):
        done = subprocess.run(
            [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", port, flag, "--max-tokens", "8"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            f"Initializing client for http://127.0.0.1:{port}\n"
            "User>hello world, troll me in two-paragraphs about 42\n\n"
            f"Assistant> {expected}\n"
        )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(b'{"model": ', 400, None, id="malformed-json"),
        pytest.param(json.dumps({"model": MODEL}).encode(), 400, "messages", id="missing-field"),
        pytest.param(json.dumps({"model": MODEL, "messages": "hi"}).encode(), 400, "messages", id="wrong-type"),
        pytest.param(
            json.dumps({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}).encode(), 400, "messages[0].role", id="bad-role"
        ),
        pytest.param(json.dumps({"model": "Llama3.1-8B", "messages": [{"role": "user", "content": "hi"}]}).encode(), 404, None, id="unknown-model"),
        pytest.param(
            json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "word " * MAX_SEQ_LEN}]}).encode(),
            400, "messages", id="prompt-over-max-seq-len",
        ),
    ],
)
def test_bad_input(server: Server, body: bytes, status: int, field: str | None) -> None:
    response = httpx.post(server.url + "/inference/chat_completion", content=body, timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert error.get("field") == field and error["message"]
    assert "Traceback" not in response.text
    assert server.chat("still there?", max_tokens=2).status_code == 200


@pytest.mark.anyio
async def test_32_concurrent_streams(server: Server) -> None:
    prompts = [f"tell me about {n}" for n in ("cats", "dogs", "rain", "42")]
    expected = {p: server.chat(p).json()["completion_message"]["content"] for p in prompts}
    got: list[tuple[str, str, str]] = []

    async def one(client: StackClient, prompt: str) -> None:
        request = ChatCompletionRequest(
            model=MODEL, messages=[UserMessage(content=prompt)], sampling_params=SamplingParams(max_tokens=8), stream=True
        )
        chunks = [c async for c in await client.chat_completion(request)]
        text = "".join(c.event.delta for c in chunks if isinstance(c.event.delta, str))
        got.append((prompt, text, chunks[-1].event.event_type))

    async with StackClient(server.url) as client, anyio.create_task_group() as tg:
        for i in range(32):
            tg.start_soon(one, client, prompts[i % 4])
    assert len(got) == 32
    assert all(kind == "complete" for _, _, kind in got)
    assert all(text == expected[prompt] for prompt, text, _ in got)


def test_disconnect_mid_stream_keeps_serving(server: Server) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "go on"}], "stream": True}
    for _ in range(3):
        with httpx.stream("POST", server.url + "/inference/chat_completion", json=body, timeout=30) as response:
            assert next(response.iter_lines()).startswith('data: {"event":{"event_type":"start"')
    assert server.chat("and now?", max_tokens=2).status_code == 200


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["nosuch"], "Error: Unknown distribution", id="unknown-distribution"),
        pytest.param(["local"], "Error: Which build of local? Add --name NAME", id="no-name"),
        pytest.param(["local", "--name", "nope"], "Error: Could not find", id="not-built"),
        pytest.param(["missing.toml"], "Error: File missing.toml does not exist", id="no-config-file"),
        pytest.param(["--port", "70000"], "Error: --port must be between 1 and 65535", id="bad-port"),
    ],
)
def test_run_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", "run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
