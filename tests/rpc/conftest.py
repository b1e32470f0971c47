"""A real stack for hostile-input tests: meta-reference on the tiny random checkpoint, written once.

`tiny_config` is its run config (for `python -m llama_rpc CONFIG`); `tiny_url` serves it over HTTP
(Hypercorn on loopback, in this process), started on first use and shared by the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TINY_MODEL = "Llama3.2-1B-Instruct"  # served from random weights: answers are gibberish
MAX_SEQ_LEN = 128  # so that a request that does generate is short


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from engine.tiny_checkpoint import write_tiny_run_config

    return write_tiny_run_config(tmp_path_factory.mktemp("rpc-tiny"), TINY_MODEL, max_seq_len=MAX_SEQ_LEN, max_batch_size=2)


@pytest.fixture(scope="session")
def tiny_url(tiny_config: Path) -> Iterator[str]:
    from rpc.server import running_server

    from llama_core.config import load_run_config
    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    stack = Stack.from_config(load_run_config(tiny_config))
    with running_server(lambda: create_app(stack), timeout=120, stack=stack) as url:
        warm = {"model": TINY_MODEL, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 1}}
        assert httpx.post(url + "/inference/chat_completion", json=warm, timeout=60).status_code == 200  # the engine is up
        yield url
