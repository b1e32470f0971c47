"""What `llama stack run` says while it starts and serves: the kernels' build before 'Listening', and
one line per request with --access-log (off by default)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from rpc.server import free_port

from .process import llama_stack_run

pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"  # the tiny random checkpoint


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.tiny_checkpoint import write_tiny_run_config

    return write_tiny_run_config(tmp_path_factory.mktemp("stack-log"), MODEL, max_seq_len=128, max_batch_size=2)


def test_access_log_is_one_line_per_request_when_asked(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # An empty extension cache and no compiler: the kernels' build is tried (and said) at once, and fails fast.
    env = {"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home"), "LLAMA_KERNELS_CACHE": str(tmp_path / "kernels"), "CXX": "false"}
    with llama_stack_run([str(config), "--access-log"], free_port(), log, env=env) as url:
        before = log.read_text()
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 2}}
        assert httpx.post(url + "/inference/chat_completion?x=secret", json=body, timeout=60).status_code == 200
        assert httpx.get(url + "/nope", timeout=10).status_code == 404
    lines = log.read_text().splitlines()
    building = "Compiling the CPU decode kernels once"
    at = next(i for i, line in enumerate(lines) if line.startswith(building))
    assert at < next(i for i, line in enumerate(lines) if line.startswith("Listening on "))  # before serving, not in a request
    assert before.count(building) == 1
    # Hypercorn's own prefix (time, pid, level), then client, request line, status, seconds
    access = re.compile(r'\[[^]]+\] \[\d+\] \[INFO\] 127\.0\.0\.1:\d+ "([^"]*)" (\d{3}) \d+\.\d{6}s')
    served = [m.groups() for line in lines if (m := access.fullmatch(line))]
    assert [s for s in served if "/health" not in s[0]] == [
        ("POST /inference/chat_completion 1.1", "200"),  # no query string: it may carry what a log must not
        ("GET /nope 1.1", "404"),
    ]


def test_no_access_log_by_default(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with llama_stack_run([str(config)], free_port(), log, env={"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home")}) as url:
        assert httpx.get(url + "/nope", timeout=10).status_code == 404
    text = log.read_text()
    assert '"GET /nope' not in text and '"GET /health' not in text
