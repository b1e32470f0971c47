"""`llama stack run CONFIG.toml` as a user runs it: a real server process on the tiny checkpoint.

One server for the module (meta-reference provider, worker process, Hypercorn), driven by plain
HTTP, the `openai` package, llama_core.client and `python -m llama_cli.client.inference`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
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
CONFIG_ORIGIN, CLI_ORIGIN = "https://config.example", "http://cli.example:8080"  # both allowed to call it (CORS)


class Server:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def chat(self, text: str, max_tokens: int = 8, **extra: object) -> httpx.Response:
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "sampling_params": {"max_tokens": max_tokens}}
        return httpx.post(self.url + "/inference/chat_completion", json={**body, **extra}, timeout=60)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.tiny_checkpoint import write_tiny_run_config

    config = write_tiny_run_config(tmp_path_factory.mktemp("stack-run"), MODEL, max_seq_len=MAX_SEQ_LEN, max_batch_size=8)
    config.write_text(f'cors_origins = ["{CONFIG_ORIGIN}"]\n' + config.read_text())  # beside --cors-origin (server)
    return config


@pytest.fixture(scope="module")
def server(config: Path) -> Iterator[Server]:
    root = config.parent
    port, log = free_port(), root / "server.log"
    args = [str(config), "--cors-origin", CLI_ORIGIN]
    with llama_stack_run(args, port, log, env={"LLAMA_STACK_CONFIG_DIR": str(root / "home")}) as url:
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


def test_cors_origins_of_the_config_and_the_option(server: Server) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    for origin in (CONFIG_ORIGIN, CLI_ORIGIN):
        response = httpx.options(server.url + "/v1/chat/completions", headers={"Origin": origin, **preflight})
        assert response.status_code == 200
        assert (response.headers["access-control-allow-origin"], response.headers["access-control-allow-headers"]) == (origin, "content-type")
    other = httpx.options(server.url + "/v1/chat/completions", headers={"Origin": "https://other.example", **preflight})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers


def test_inference_client_prints_the_answer(server: Server) -> None:
    expected = server.chat("hello world, troll me in two-paragraphs about 42").json()["completion_message"]["content"]
    port = server.url.rsplit(":", 1)[1]
    for flag in ("--stream", "--no-stream"):
        done = subprocess.run(
            [sys.executable, "-m", "llama_cli.client.inference", "127.0.0.1", port, flag, "--max-tokens", "8", "--temperature", "0"],
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
        pytest.param(["--cors-origin", "app.example"], "Error: 'app.example' is not an origin for --cors-origin", id="bad-cors-origin"),
    ],
)
def test_run_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", "run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_busy_port_is_one_line_before_anything_starts(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["stack", "run", str(config), "--port", str(port)]) == 1  # not a usage error: the machine's state
    captured = capsys.readouterr()
    assert captured.err == f"Error: 127.0.0.1:{port} is already in use by another program; pick another --port.\n"
    assert "Listening" not in captured.out


def _loading_workers(pid: int) -> list[int]:
    """The inference workers of `pid` past their interpreter's start-up (they ignore SIGINT from
    worker_main on), loading the model or serving. Linux /proc."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
            worker = b"spawn_main" in (proc / "cmdline").read_bytes()  # not multiprocessing's resource tracker
        except OSError:
            continue  # gone meanwhile
        if worker and int(fields["PPid"]) == pid and int(fields["SigIgn"], 16) & 1 << (signal.SIGINT - 1):
            found.append(int(proc.name))
    return found


def test_ctrl_c_while_the_engine_loads_stops_the_server(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cli", "stack", "run", str(config), "--port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _loading_workers(proc.pid):  # the engine loads
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        assert "Listening" not in log.read_text()
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "Listening" not in text and "Traceback" not in text, text
