"""Safety stacks for the tests: the shields without an engine, and the tiny trained Llama Guard.

`safety_stack()` is a stack serving safety alone (third-party shields need no model). The guard
fixtures train the tiny guard once per run (guard_checkpoint.py) and serve it as Llama-Guard-3-1B
on meta-reference inference, with the llama_guard shield pointing at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_core.config import RunConfig
from llama_core.stack import Stack

from .endpoint import Endpoint, serving_endpoint

GUARD_MODEL = "Llama-Guard-3-1B"
MAX_SEQ_LEN = 512  # the guard prompt is about 250 tokens


def safety_stack(**safety: Any) -> Stack:
    """A stack serving only safety (meta-reference, with these config fields)."""
    providers = {"safety": {"provider_id": "meta-reference", **safety}}
    return Stack.from_config(RunConfig(name="shields", distribution_id="local", providers=providers))


def write_guard_config(path: Path, ckpt: Path, **shield: Any) -> Path:
    """A run config serving `ckpt` as the guard model, and the llama_guard shield on it."""
    import tomli_w

    inference = {"provider_id": "meta-reference", "model": GUARD_MODEL, "checkpoint_dir": str(ckpt),
                 "max_seq_len": MAX_SEQ_LEN, "max_batch_size": 2, "device": "cpu", "dtype": "fp32", "threads": 1}  # fmt: skip
    safety = {"provider_id": "meta-reference", "llama_guard_shield": {"model": GUARD_MODEL, **shield}}
    config = {"name": path.stem, "distribution_id": "local", "providers": {"inference": inference, "safety": safety}}
    path.write_text(tomli_w.dumps(config))
    return path


def serve(config: Path) -> Iterator[str]:
    """`config`'s stack over HTTP on loopback, once its engine answers."""
    from rpc.server import running_server

    from llama_rpc.http import create_app

    stack = Stack.from_config(config)
    with running_server(lambda: create_app(stack), timeout=120, stack=stack) as url:
        warm = {"model": GUARD_MODEL, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 1}}
        assert httpx.post(url + "/inference/chat_completion", json=warm, timeout=60).status_code == 200
        yield url


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    with serving_endpoint() as e:
        yield e


@pytest.fixture(scope="session")
def guard_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny trained guard, once per test run."""
    pytest.importorskip("torch")
    from .guard_checkpoint import train_guard

    return train_guard(tmp_path_factory.mktemp("guard") / "Llama-Guard-3-1B")


@pytest.fixture(scope="session")
def guard_url(guard_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stack serving the trained guard, the llama_guard shield on it at its defaults."""
    yield from serve(write_guard_config(tmp_path_factory.mktemp("guard-run") / "guard.toml", guard_ckpt))
