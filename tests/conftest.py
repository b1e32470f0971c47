"""Shared fixtures: async tests run under both asyncio and trio; every test gets its own ~/.llama."""

from __future__ import annotations

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
