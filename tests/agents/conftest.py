"""Agent stacks for the tests: the tiny tool-using model (trained once per run) served with every API.

`agent_stack_config(root, vendors_url)` writes a run config: meta-reference inference on the trained
checkpoint, meta-reference safety (third-party shields only), meta-reference-faiss memory and the
agentic system with its Brave and Wolfram URLs on the loopback vendors (banks stored under `storage`).
`agent_url` serves it over HTTP for the session; `turn(url, body)` posts a turn and parses its events.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from .agent_checkpoint import MODEL
from .vendors import BRAVE_KEY, Vendors, serving_vendors

MAX_SEQ_LEN = 1024  # the longest lesson prompt is about 300 tokens


def write_agent_config(path: Path, ckpt: Path, model: str, vendors_url: str, storage: Path) -> Path:
    import tomli_w

    inference = {"provider_id": "meta-reference", "model": model, "checkpoint_dir": str(ckpt),
                 "max_seq_len": MAX_SEQ_LEN, "max_batch_size": 8, "device": "cpu", "dtype": "fp32", "threads": 1}  # fmt: skip
    agents = {"provider_id": "meta-reference", "brave_search_url": vendors_url, "wolfram_alpha_url": vendors_url,
              "brave_search_api_key": BRAVE_KEY}  # fmt: skip
    providers = {
        "inference": inference,
        "safety": {"provider_id": "meta-reference"},
        "memory": {"provider_id": "meta-reference-faiss", "storage_dir": str(storage / "memory")},
        "agentic_system": agents,
    }
    path.write_text(tomli_w.dumps({"name": path.stem, "distribution_id": "local", "providers": providers}))
    return path


def serve(config: Path, model: str) -> Iterator[str]:
    """`config`'s stack over HTTP on loopback, once its engine answers."""
    from rpc.server import running_server

    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    stack = Stack.from_config(config)
    with running_server(lambda: create_app(stack), timeout=180, stack=stack) as url:
        warm = {"model": model, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 1}}
        # The first request may build the CPU kernels (minutes, when another checkout's build replaced them).
        assert httpx.post(url + "/inference/chat_completion", json=warm, timeout=600).status_code == 200
        yield url


def events(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON of each `data:` line of an SSE answer."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.text
    return [msgspec.json.decode(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


def post(url: str, route: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/agentic_system/{route}", json=body, timeout=300)


def new_session(url: str, agent_config: dict[str, Any]) -> tuple[str, str]:
    agent = post(url, "create", {"agent_config": agent_config})
    assert agent.status_code == 200, agent.text
    agent_id = agent.json()["agent_id"]
    session = post(url, "session/create", {"agent_id": agent_id, "session_name": "test"})
    assert session.status_code == 200, session.text
    return agent_id, session.json()["session_id"]


@pytest.fixture(scope="session")
def agent_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tool-using model, trained once per test run."""
    pytest.importorskip("torch")
    from .agent_checkpoint import train_agent_model

    return train_agent_model(tmp_path_factory.mktemp("agent-model") / MODEL)


@pytest.fixture(scope="session")
def vendors() -> Iterator[Vendors]:
    with serving_vendors() as v:
        yield v


@pytest.fixture(scope="session")
def agent_url(agent_ckpt: Path, vendors: Vendors, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("agent-run")
    yield from serve(write_agent_config(root / "agents.toml", agent_ckpt, MODEL, vendors.url, root), MODEL)
