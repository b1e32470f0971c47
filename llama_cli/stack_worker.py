"""`llama stack worker`: a further host's share of the model-parallel ranks, for a `llama stack run`.

    llama stack worker CONFIG.toml --node-rank 1 [--master-addr HOST] [--master-port PORT]
    llama stack worker DIST --name NAME --node-rank 1

It reads the server's run config (the same model, sizes and `nnodes`; meta-reference inference
with `nnodes` above 1), and needs the same checkpoint on this host (checkpoint_dir, or
~/.llama/checkpoints/<model>). Its ranks join host 0 at master_addr:master_port and serve with it;
when the server stops or restarts, or a rank dies, they join again (llama_core/engine/ranks_host.py).
It runs until Ctrl-C. NODE_RANK, MASTER_ADDR and MASTER_PORT in the environment stand in for the
options, as for torchrun.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from cyclopts import Parameter


def worker(
    config: Annotated[str, Parameter(help="The server's run config .toml, or its distribution ID (with --name).")],
    *,
    name: Annotated[str | None, Parameter(name=["--name", "-n"], help="Name of the build.")] = None,
    image_type: Annotated[
        Literal["venv", "conda", "container"] | None, Parameter(help="Image type of the build (default: the one that exists).")
    ] = None,
    node_rank: Annotated[int | None, Parameter(help="This host's number, from 1 to nnodes - 1 (default: $NODE_RANK, else 1).")] = None,
    master_addr: Annotated[str | None, Parameter(help="Where the server's host is reached (default: the config's, else $MASTER_ADDR).")] = None,
    master_port: Annotated[int | None, Parameter(help="Its rendezvous port (default: the config's, else $MASTER_PORT, else 29500).")] = None,
) -> None:
    """Run this host's share of a model split over several hosts, for `llama stack run` on host 0."""
    from llama_cli.stack_run import _maybe_reexec
    from llama_core.config import resolve_run_config

    path = resolve_run_config(config, name, image_type)
    assert path is not None  # `config` is required
    _maybe_reexec(path)
    spec = _spec(path, node_rank, master_addr, master_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    from llama_core.engine.ranks_host import serve_ranks

    serve_ranks(spec, lambda line: print(line, flush=True), stop)


def _spec(path: Path, node_rank: int | None, master_addr: str | None, master_port: int | None):  # noqa: ANN202 - WorkerSpec, imported late
    """The WorkerSpec of host `node_rank` for the run config at `path`; a LlamaError saying what is wrong."""
    from llama_core.errors import CheckpointError, InvalidRequestError
    from llama_core.providers.inference.local_model import LocalModel, worker_spec
    from llama_core.stack import Stack

    inference = Stack.from_config(path).provider_config("inference")
    if (getattr(inference, "nnodes", None) or 1) <= 1:
        raise InvalidRequestError(
            f"{path} does not split its model over several hosts: set the meta-reference inference "
            "provider's nnodes (and master_addr) there, e.g. `nnodes = 2`.",
            field="nnodes",
        )
    if node_rank is None:
        env = os.environ.get("NODE_RANK", "1")
        if not env.isdigit():
            raise InvalidRequestError(f"NODE_RANK must be a number, not {env[:20]!r}.", field="node_rank")
        node_rank = int(env)
    if node_rank == 0:
        raise InvalidRequestError("Node rank 0 is the server's host: run `llama stack run` there.", field="node_rank")
    if not 0 < node_rank < inference.nnodes:  # said here, not by the engine's check, whose range counts the server's host
        raise InvalidRequestError(
            f"Node rank must be from 1 to {inference.nnodes - 1} with nnodes {inference.nnodes} (0 is the server's host), "
            f"not {node_rank}.",
            field="node_rank",
        )
    if master_port is not None and not 0 < master_port < 65536:
        raise InvalidRequestError(f"--master-port must be from 1 to 65535, not {master_port}.", field="master_port")
    inference = msgspec.structs.replace(
        inference, master_addr=master_addr or inference.master_addr, master_port=master_port or inference.master_port
    )
    ckpt_dir = LocalModel(inference).ckpt_dir  # where the server's host looks for it too
    if not ckpt_dir.is_dir():
        raise CheckpointError(f"No checkpoint for {inference.model} on this host in {ckpt_dir}; copy or download it here first.")
    return worker_spec(inference, ckpt_dir, node_rank)

