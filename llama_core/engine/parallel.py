"""Process-group set-up for fairscale's model-parallel layers: one process, or N spawned ranks.

fairscale's layers ask `get_model_parallel_world_size()` even when nothing is split, so a lone
process still needs a (1-process) torch.distributed group plus fairscale's model-parallel groups.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import fairscale.nn.model_parallel.initialize as fs_init


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _rank_main(rank: int, world_size: int, init_method: str, fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    torch.set_num_threads(1)
    try:
        init_model_parallel(world_size, rank, init_method, backend="gloo")
        queue.put((rank, "ok", fn(*args)))
    except BaseException as e:  # report to the parent instead of dying silently
        queue.put((rank, "error", f"{type(e).__name__}: {e}"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_model_parallel(fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 120.0) -> list[Any]:
    """Run `fn(*args)` on `world_size` fresh CPU processes joined over gloo; return each rank's result.

    `fn` must be importable (a module-level function) and its result picklable. A rank that fails
    raises RuntimeError here with its message; a hang past `timeout` seconds kills the group.
    """
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    init_method = f"tcp://127.0.0.1:{free_port()}"
    procs = [
        ctx.Process(target=_rank_main, args=(r, world_size, init_method, fn, args, queue), daemon=True)
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    try:
        for _ in range(world_size):
            rank, status, value = queue.get(timeout=timeout)
            if status != "ok":
                raise RuntimeError(f"model-parallel rank {rank} failed: {value}")
            results[rank] = value
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return [results[r] for r in range(world_size)]
