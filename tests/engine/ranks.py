"""`run_model_parallel`: a function on N fresh CPU processes joined over gloo, as model-parallel ranks.

The library starts its ranks through engine/group.py and worker.py; tests use this to compare what
each rank computes with the single-process result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from llama_core.engine.parallel import init_model_parallel


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
    from rpc.server import free_port  # here, not at the top: the spawned ranks need no HTTP server

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
