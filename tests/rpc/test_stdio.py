"""Line framing on injected streams, and the real process: only protocol on stdout, exit on EOF."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import anyio
import pytest

from llama_rpc.stdio import TooLong, read_lines

pytestmark = pytest.mark.anyio


async def framed(chunks: list[bytes], max_line: int = 1000) -> list[bytes]:
    send, receive = anyio.create_memory_object_stream[bytes](len(chunks) + 1)
    async with send, receive:
        for chunk in chunks:
            send.send_nowait(chunk)
        send.close()
        return [line async for line in read_lines(receive, max_line)]


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b'{"a":1}\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}']),
        ([b'{"a"', b":1}\n{", b'"b":2}\n'], [b'{"a":1}', b'{"b":2}']),
        ([b"one\r\n", b"\n", b"  \n", b"two"], [b"one", b"two"]),  # CRLF, blank lines, no final newline
        ([b"\xc3", b"\xa9\n"], ["é".encode()]),  # a character split across reads
        ([], []),
    ],
    ids=["whole", "split", "crlf-blank-unterminated", "utf8-split", "empty"],
)
async def test_read_lines(chunks: list[bytes], lines: list[bytes]) -> None:
    assert await framed(chunks) == lines


async def test_a_line_over_the_limit_is_reported_once_and_skipped() -> None:
    lines = await framed([b"short\n", b"x" * 8, b"y" * 8, b"z" * 8, b"\nnext\n", b"a" * 12 + b"\n"], max_line=10)
    assert lines == [b"short", b"xxxxxxxxyyyyyyyy", b"next", b"a" * 12]
    assert [type(line) for line in lines] == [bytes, TooLong, bytes, TooLong]


SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys
    from llama_rpc.stdio import process_stdio

    if __name__ == "__main__":
        with process_stdio() as (receiver, sender):
            print("a stray print")
            os.system("echo from a shell child")
            worker = multiprocessing.get_context("spawn").Process(target=print, args=("from a spawned worker",))
            worker.start(); worker.join()
            os.write(sender.fd, b'{"jsonrpc":"2.0","method":"only/this"}\\n')
    """
)


def test_only_protocol_reaches_stdout(tmp_path: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout == b'{"jsonrpc":"2.0","method":"only/this"}\n'
    assert done.stderr.decode().splitlines() == ["a stray print", "from a shell child", "from a spawned worker"]


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    config = tmp_path / "empty.toml"
    config.write_text('name = "empty"\ndistribution_id = "local"\n')
    return config


PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n{"jsonrpc":"2.0","id":2,"method":"models/list"}\n'


@pytest.mark.parametrize(
    "command",
    [["-m", "llama_rpc"], ["-m", "llama_cli", "stack", "run"]],
    ids=["python-m-llama_rpc", "llama-stack-run-stdio"],
)
def test_both_entry_points_answer_and_exit_on_eof(empty_config: Path, command: list[str]) -> None:
    extra = ["--stdio"] if "llama_cli" in command else []
    done = subprocess.run([sys.executable, *command, str(empty_config), *extra], input=PING, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    answers = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda m: m["id"])
    assert answers == [{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": 2, "result": []}]


def test_a_bad_config_is_one_line_on_stderr(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "llama_rpc", str(tmp_path / "missing.toml")], capture_output=True, timeout=30)
    assert (done.returncode, done.stdout) == (1, b"")
    assert len(done.stderr.decode().splitlines()) == 1 and done.stderr.startswith(b"Error: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["local"], "Error: Which build of local? Add --name NAME (see `llama stack build local --name NAME`).\n"),
        ([f"builds{os.sep}x"], f"Error: File builds{os.sep}x does not exist. Did you run `llama stack build`?\n"),
    ],
    ids=["dist-without-name", "path-without-toml"],
)
def test_arguments_name_a_config_as_llama_stack_run_does(tmp_path: Path, argv: list[str], message: str) -> None:
    """Both entry points resolve `CONFIG.toml | DIST --name NAME` in one core function, so they agree."""
    rpc = subprocess.run([sys.executable, "-m", "llama_rpc", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    cli = subprocess.run([sys.executable, "-m", "llama_cli", "stack", "run", *argv, "--stdio"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=30)  # fmt: skip
    assert (rpc.returncode, rpc.stdout, rpc.stderr) == (1, "", message)
    assert (cli.returncode, cli.stdout, cli.stderr) == (2, "", message)


def test_a_progress_call_is_answered_without_further_input(tiny_config: Path) -> None:
    """Issue 16's probe: a `tools/call` with a progressToken, streamed or not, must end with its result
    (and every progress notification) while the host sends nothing more; a host waits on that answer.
    stdin stays open until the answers are read, so nothing but the call can wake the server."""
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    arguments = {"model": "Llama3.2-1B-Instruct", "content": "hi", "sampling_params": {"max_tokens": 8}}
    calls = [
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
         "params": {"name": "inference_completion", "arguments": {**arguments, **extra}, "_meta": {"progressToken": 7}}}
        for extra in ({}, {"stream": True})
    ]  # fmt: skip
    command = [sys.executable, "-m", "llama_cli", "stack", "run", str(tiny_config), "--stdio"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as server:
        assert server.stdin is not None and server.stdout is not None
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in server.stdout], daemon=True).start()  # type: ignore[union-attr]

        def answer() -> dict:
            return json.loads(lines.get(timeout=120))  # generous: a withheld answer fails here, not hangs

        try:
            server.stdin.write(json.dumps(init).encode() + b"\n")
            server.stdin.flush()
            assert answer()["id"] == 1
            for call in calls:
                server.stdin.write(json.dumps(call).encode() + b"\n")
                server.stdin.flush()
                progress = []
                while (message := answer()).get("id") != 9:
                    progress.append(message["params"]["progress"])
                assert message["result"]["isError"] is False
                assert progress == list(range(1, len(progress) + 1)) and len(progress) >= 2  # the last one came too
        finally:
            server.stdin.close()
            server.wait(timeout=60)
