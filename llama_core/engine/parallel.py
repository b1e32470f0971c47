"""Process-group set-up for fairscale's model-parallel layers, in one process or in each of N ranks.

fairscale's layers ask `get_model_parallel_world_size()` even when nothing is split, so a lone
process still needs a (1-process) torch.distributed group plus fairscale's model-parallel groups.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

import torch
import torch.distributed as dist
import fairscale.nn.model_parallel.initialize as fs_init


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_model_parallel(
    world_size: int = 1,
    rank: int = 0,
    init_method: str | None = None,
    backend: str | None = None,
) -> None:
    """Join (or create) the process group and fairscale's model-parallel groups; idempotent.

    With world_size 1 and no init_method, a private file:// rendezvous is used, so no port is taken.
    """
    if not dist.is_initialized():
        if init_method is None:
            if world_size != 1:
                raise ValueError("init_method is required for more than one process")
            init_method = "file://" + os.path.join(tempfile.mkdtemp(prefix="llama-pg-"), "rendezvous")
        dist.init_process_group(
            backend or default_backend(), init_method=init_method, world_size=world_size, rank=rank
        )
    if not fs_init.model_parallel_is_initialized():
        with contextlib.redirect_stdout(io.StringIO()):  # fairscale prints "> initializing ..." lines
            fs_init.initialize_model_parallel(world_size)


def model_parallel_size() -> int:
    return fs_init.get_model_parallel_world_size()


def model_parallel_rank() -> int:
    return fs_init.get_model_parallel_rank()

