"""Stack test fixtures: one tiny random Llama 3 checkpoint per session (writing one takes ~5 s)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from engine.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("stack-tiny") / "Llama3-tiny")
