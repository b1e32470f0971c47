"""The ~/.llama layout. `LLAMA_STACK_CONFIG_DIR` overrides the root."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    """The root of everything we write: `$LLAMA_STACK_CONFIG_DIR`, else `~/.llama`."""
    env = os.environ.get("LLAMA_STACK_CONFIG_DIR")
    return Path(env).expanduser() if env else Path.home() / ".llama"


def checkpoints_dir() -> Path:
    return config_dir() / "checkpoints"


def model_checkpoint_dir(descriptor: str) -> Path:
    """Where one model's files live: the descriptor with ':' replaced by '-'."""
    return checkpoints_dir() / descriptor.replace(":", "-")


def builds_dir() -> Path:
    return config_dir() / "builds"

