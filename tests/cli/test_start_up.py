"""What `llama stack run` says while it starts and while a first request loads something: no wait of
seconds without a line saying what is happening."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from rpc.server import free_port  # noqa: E402
from stack.process import llama_stack_run  # noqa: E402

pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"  # the tiny random checkpoint


def test_the_load_and_a_first_embedding_are_said(tmp_path: Path) -> None:
    from engine.tiny_checkpoint import write_tiny_run_config

    config = write_tiny_run_config(tmp_path, MODEL, max_seq_len=64, max_batch_size=1)
    log = tmp_path / "server.log"
    env = {"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home"), "LLAMA_CPU_KERNELS": "0"}
    with llama_stack_run([str(config)], free_port(), log, env=env) as url:
        before = log.read_text()
        for _ in range(2):
            body = {"model": "all-MiniLM-L6-v2", "contents": ["the first request loads the embedding model"]}
            assert httpx.post(url + "/inference/embeddings", json=body, timeout=120).status_code == 200
    lines = log.read_text().splitlines()
    assert lines[0] == f"Loading {MODEL} ..."  # before the routes, which come once it has loaded
    assert lines.index(f"Loading {MODEL} ...") < next(i for i, line in enumerate(lines) if line.startswith("Serving "))
    said = "Loading the embedding model all-MiniLM-L6-v2 (on its first use) ..."
    assert said not in before and lines.count(said) == 1  # with the first request that needs it, once
