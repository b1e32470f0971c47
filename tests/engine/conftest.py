"""Engine fixtures: model-parallel group, tiny checkpoints (written once per session), thread cap."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from llama_core.engine.parallel import init_model_parallel  # noqa: E402
from engine.tiny_checkpoint import write_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def model_parallel_group() -> None:
    torch.set_num_threads(1)  # two cores shared by everyone: OpenMP threads thrash when oversubscribed
    init_model_parallel()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "Llama3-tiny")


@pytest.fixture(scope="session")
def tiny_ckpt_mp2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-mp2") / "Llama3-tiny-mp2", model_parallel=2)
