"""One rank of the worker process group: load a shard, then run the continuous-batching loop.

Rank 0 owns the pipe to the async core (group.py). Each loop turn it collects what arrived
(submits, cancels), broadcasts that list to the other ranks so every rank applies the same
changes to its batch, then all ranks run one batched step together; rank 0 sends back the tokens.
Idle, rank 0 blocks on the pipe, and the others block in the broadcast; with other ranks, rank 0
broadcasts an empty list every HEARTBEAT_S, so that a rank that died (another host's, say) is noticed
while idle, not by the next request, and an idle rank never reaches the collectives' timeout.

An exception while admitting or stepping one sequence fails that sequence only: it goes back as
its `Failed` (a LlamaError as itself; anything else as a one-line internal error, with the
traceback for the server's log), its slot is freed, and the loop goes on. A step whose forward
fails takes the rows of that forward with it (which row was at fault cannot be told); a sequence
whose sampling fails mid-batch leaves the others decoding. Only a failure outside any one sequence
(the pipe, the process group) ends the process, non-zero; the group then restarts it. Under model
parallel every rank runs the same inputs through the same code, so they fail alike and stay in step.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections import deque
from typing import Any

from llama_core.engine.messages import (
    TORCH_SEED_RANGE,
    Cancel,
    Failed,
    GenParams,
    Ready,
    Shutdown,
    Submit,
    Tokens,
    TokenOut,
    WorkerSpec,
)
from llama_core.errors import InvalidRequestError, LlamaError

HEARTBEAT_S = 5.0

# How long libgomp's threads spin at a barrier before they sleep, unless the user set a wait policy.
# The default (300,000 rounds) holds a core that a descheduled peer needs, at each of the decode
# step's ten barriers per layer: beside two busy processes on two cores, int8 decode fell from 214 to
# 45-56 tok/s; with 2000, 61-86, the same 214 when quiet (interleaved fresh processes, demo model).
OPENMP_DEFAULTS = {"GOMP_SPINCOUNT": "2000"}


def openmp_environment(environ: dict[str, str]) -> dict[str, str]:
    """The OpenMP settings a rank adds to `environ` before torch (and so libgomp) loads: none where
    the user chose a wait policy or a spin count."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return {}
    return dict(OPENMP_DEFAULTS)


def worker_main(rank: int, init_file: str, conn: Any, spec: WorkerSpec) -> None:
    """Entry point of one spawned rank. Never raises: failures go to the parent as `Failed`."""
    # A terminal's Ctrl-C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(openmp_environment(dict(os.environ)))  # before _load imports torch
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
    # Past here nothing is sent on a crash: the exception ends the process non-zero (multiprocessing
    # prints its traceback) and the group, seeing the death, restarts the workers.
    try:
        _loop(rank, conn, spec, batch)
    except Exception as e:
        if not _from_collective(e):
            raise
        # Another rank went away (its host, or a crash there): expected in a group across hosts, so
        # one line, not a traceback. The exit code tells the group (or ranks_host) to start again.
        raise SystemExit(f"model-parallel rank {rank}: lost the other ranks ({_one_line(e)[:160]})") from None
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
    init_model_parallel(spec.world_size, rank, spec.rendezvous or "file://" + init_file, backend=backend)
    model, _files = load_model(
        spec.ckpt_dir,
        device=device,
        dtype=spec.dtype,
        max_seq_len=spec.max_seq_len,
        max_batch_size=spec.max_batch_size,
    )
    model.warm_up()  # the CPU kernels' first build or the CUDA step's compile: at load, not in the first request
    return Batch(model, max_batch_size=spec.max_batch_size, max_seq_len=spec.max_seq_len, tokenizer_dir=spec.ckpt_dir)


def _info(spec: WorkerSpec, batch: Any) -> dict[str, object]:
    weight = batch.model.tok_embeddings.weight
    return {
        "device": str(weight.device),
        "dtype": spec.dtype if spec.dtype in ("int8", "gguf") else str(weight.dtype).removeprefix("torch."),
        "world_size": spec.world_size,
        "nnodes": spec.nnodes,
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
            try:
                if len(batch) == 0 and not waiting and (spec.world_size == 1 or conn.poll(HEARTBEAT_S)):
                    commands.append(conn.recv())  # idle: block until there is work
                while conn.poll():
                    commands.append(conn.recv())
            except EOFError:  # the parent is gone (killed, or left before its Shutdown): so are we
                commands = [Shutdown()]
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
            _admit(rank, conn, batch, waiting.popleft(), spec.ckpt_dir)
        if len(batch):
            _step(rank, conn, batch)


def _admit(rank: int, conn: Any, batch: Any, cmd: Submit, ckpt_dir: str) -> None:
    """Prefill `cmd` into a free slot; its first token goes out at once (time to first token).

    If it fails, only `cmd` does: Batch.add leaves no slot taken behind an exception.
    """
    try:
        _check(cmd.params, batch.model.args.vocab_size)
        first = batch.add(cmd.seq_id, cmd.prompt, cmd.params, _stop_watch(ckpt_dir, cmd.params))
    except Exception as e:  # noqa: BLE001 - whatever it is, it is this request's error
        if _from_collective(e):
            raise  # a rank is gone: the group restarts, and every request in flight fails
        _fail(rank, conn, cmd.seq_id, e)
        return
    if rank == 0:
        conn.send(Tokens([_out(first)]))


def _step(rank: int, conn: Any, batch: Any) -> None:
    """One token for every live sequence; a sequence whose sampling fails is dropped alone."""
    failed: list[tuple[int, Exception]] = []
    try:
        outs = batch.step(on_error=lambda seq_id, e: failed.append((seq_id, e)))
    except Exception as e:  # noqa: BLE001 - the forward itself failed: every row of it did
        if _from_collective(e):
            raise
        outs = []
        for seq_id in [seq.seq_id for seq in batch.slots if seq is not None]:
            batch.cancel(seq_id)
            failed.append((seq_id, e))
    if rank == 0 and outs:
        conn.send(Tokens([_out(o) for o in outs]))
    for seq_id, e in failed:
        _fail(rank, conn, seq_id, e)


def _from_collective(e: BaseException) -> bool:
    """Whether `e` came out of torch.distributed (gloo says "Connection closed by peer" as a plain
    RuntimeError): the process group failed, not the request, and the ranks are no longer in step."""
    import torch.distributed as dist

    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    tb = e.__traceback__
    while tb is not None:
        if "torch/distributed/" in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False


def _check(params: GenParams, vocab_size: int) -> None:
    """Refuse what the engine cannot take before any work: torch's generators take 64-bit seeds,
    and there are only so many tokens to rank."""
    low, high = TORCH_SEED_RANGE
    if params.seed is not None and not low <= params.seed < high:
        raise InvalidRequestError(
            f"The seed does not fit in 64 bits; use an integer from {low} to {high - 1}.", field="sampling_params.seed"
        )
    if params.logprobs is not None and params.logprobs > vocab_size:
        raise InvalidRequestError(
            f"logprobs asks for the top {params.logprobs} tokens of a {vocab_size}-token vocabulary.",
            field="logprobs.top_k",
        )


def _stop_watch(ckpt_dir: str, params: GenParams) -> Any:
    """A watch over the sequence's text for its stop sequences (None without any). Every rank runs
    one over the same ids, so every rank frees the slot at the same step. The tokenizer is read from
    the checkpoint on the first request with stops (once per process)."""
    if not params.stop:
        return None
    from llama_core.providers.inference.stops import StopWatch
    from llama_core.tokenizer import Tokenizer

    return StopWatch(Tokenizer.from_file(ckpt_dir), params.stop)


def _fail(rank: int, conn: Any, seq_id: int, error: Exception) -> None:
    """Send sequence `seq_id`'s error (rank 0 only): a LlamaError as itself; anything else as our
    own one-line internal error, the traceback going to the server's log, never to the answer."""
    if rank != 0:
        return
    if isinstance(error, LlamaError):
        conn.send(Failed.of(seq_id, error))
        return
    detail = "".join(traceback.format_exception(error))
    message = f"The inference engine failed on this request ({type(error).__name__}); the server log has the details."
    conn.send(Failed(seq_id, message, kind="error", detail=detail))


def _out(r: Any) -> TokenOut:
    return TokenOut(r.seq_id, r.token, r.logprobs, str(r.stop_reason) if r.stop_reason is not None else None, r.logprob)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
