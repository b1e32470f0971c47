"""One rank of the worker process group: load a shard, then run the continuous-batching loop.

Rank 0 owns the pipe to the async core (group.py). Each loop turn it collects what arrived
(submits, cancels), broadcasts that list to the other ranks so every rank applies the same
changes to its batch, then all ranks run one batched step together; rank 0 sends back the tokens.
Idle, rank 0 blocks on the pipe, and the others block in the broadcast.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import deque
from typing import Any

from llama_core.engine.messages import (
    Cancel,
    Failed,
    Ready,
    Shutdown,
    Submit,
    Tokens,
    TokenOut,
    WorkerSpec,
)


def worker_main(rank: int, init_file: str, conn: Any, spec: WorkerSpec) -> None:
    """Entry point of one spawned rank. Never raises: failures go to the parent as `Failed`."""
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - one rank speaks
    try:
        batch = _load(rank, init_file, spec)
    except Exception as e:  # a bad checkpoint must reach the user as one line, not a dead pipe
        if conn is not None:
            conn.send(Failed(None, _one_line(e), kind="checkpoint"))
            conn.close()
        return
    if conn is not None:
        conn.send(Ready(_info(spec, batch)))
    try:
        _loop(rank, conn, spec, batch)
    except Exception:
        traceback.print_exc()
        if conn is not None:
            try:
                conn.send(Failed(None, "the inference worker crashed", kind="error"))
            except OSError:
                pass
        raise
    _leave_process_group()


def _leave_process_group() -> None:
    """On a clean shutdown: nccl warns of leaked resources when a rank exits still in its group."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _load(rank: int, init_file: str, spec: WorkerSpec) -> Any:
    import torch

    from llama_core.engine.checkpoint import default_device, load_model
    from llama_core.engine.generation import Batch
    from llama_core.engine.parallel import init_model_parallel

    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = torch.device(spec.device) if spec.device else default_device()
    if device.type == "cuda":
        torch.cuda.set_device(rank % torch.cuda.device_count())
        device = torch.device("cuda", rank % torch.cuda.device_count())
    backend = "nccl" if device.type == "cuda" else "gloo"
    init_model_parallel(spec.world_size, rank, "file://" + init_file, backend=backend)
    model, _files = load_model(
        spec.ckpt_dir,
        device=device,
        dtype=spec.dtype,
        max_seq_len=spec.max_seq_len,
        max_batch_size=spec.max_batch_size,
    )
    return Batch(model, max_batch_size=spec.max_batch_size, max_seq_len=spec.max_seq_len)


def _info(spec: WorkerSpec, batch: Any) -> dict[str, object]:
    weight = batch.model.tok_embeddings.weight
    return {
        "device": str(weight.device),
        "dtype": "int8" if spec.dtype == "int8" else str(weight.dtype).removeprefix("torch."),
        "world_size": spec.world_size,
        "max_seq_len": spec.max_seq_len,
        "max_batch_size": spec.max_batch_size,
        "pid": os.getpid(),
    }


def _loop(rank: int, conn: Any, spec: WorkerSpec, batch: Any) -> None:
    import torch.distributed as dist

    waiting: deque[Submit] = deque()  # arrived while every slot was busy; admitted as slots free up
    while True:
        commands: list[object] = []
        if rank == 0:
            if len(batch) == 0 and not waiting:
                commands.append(conn.recv())  # idle: block until there is work
            while conn.poll():
                commands.append(conn.recv())
        if spec.world_size > 1:
            box = [commands]
            dist.broadcast_object_list(box, src=0)
            commands = box[0]
        for cmd in commands:
            if isinstance(cmd, Shutdown):
                return
            if isinstance(cmd, Submit):
                waiting.append(cmd)
            elif isinstance(cmd, Cancel):
                batch.cancel(cmd.seq_id)
                waiting = deque(s for s in waiting if s.seq_id != cmd.seq_id)
        while waiting and batch.has_free_slot:
            _admit(rank, conn, batch, waiting.popleft())
        if len(batch):
            outs = batch.step()
            if rank == 0 and outs:
                conn.send(Tokens([_out(o) for o in outs]))


def _admit(rank: int, conn: Any, batch: Any, cmd: Submit) -> None:
    """Prefill `cmd` into a free slot; its first token goes out at once (time to first token)."""
    from llama_core.errors import InvalidRequestError, LlamaError

    try:
        first = batch.add(cmd.seq_id, cmd.prompt, cmd.params)
    except LlamaError as e:
        if rank == 0:
            kind = "invalid" if isinstance(e, InvalidRequestError) else "error"
            conn.send(Failed(cmd.seq_id, e.message, kind=kind))
        return
    if rank == 0:
        conn.send(Tokens([_out(first)]))


def _out(r: Any) -> TokenOut:
    return TokenOut(r.seq_id, r.token, r.logprobs, str(r.stop_reason) if r.stop_reason is not None else None)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
