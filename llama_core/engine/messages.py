"""What crosses the pipe between the async core and rank 0 of the worker group.

Plain frozen dataclasses, pickled by multiprocessing.Connection; no torch, so the parent side can
import them without loading the engine. Token ids only: the parent owns the tokenizer and the
prompt format, the workers own the weights.

    parent -> rank 0:  Submit | Cancel | Shutdown
    rank 0 -> parent:  Ready | Tokens | Failed

DTYPES and DEVICES are what a user may ask the engine for (a run config, WorkerSpec): checked when
a config is written and again when the group starts, so a value the engine cannot run never
reaches a request.
"""

from __future__ import annotations

from dataclasses import dataclass

from llama_core.errors import CheckpointError, InvalidRequestError, LlamaError, UnavailableError

# Weights the engine runs on every device: the CPU kernels and the KV cache take float32 or
# bfloat16, and int8 is weight-only over the device's default compute dtype. (MPS computes in fp16
# by default; fp16 weights are not offered, as the CPU path cannot run them.)
DTYPES = ("fp32", "bf16", "int8", "gguf")  # gguf: the checkpoint's own GGUF blocks (engine/checkpoint.py)
DEVICES = ("cpu", "cuda", "mps")  # "cuda:N" names one GPU
TORCH_SEED_RANGE = (-(2**63), 2**64)  # what torch.Generator.manual_seed takes: [low, high)


def unsupported(dtype: str | None = None, device: str | None = None, **sizes: int | None) -> tuple[str, str] | None:
    """(field, one-line reason naming the choices) for the first value the engine cannot run, or None.

    `sizes` are counts that must be at least 1 (max_seq_len=..., threads=...); None means the default.
    """
    if dtype is not None and dtype not in DTYPES:
        return "dtype", f"dtype '{dtype[:40]}' is not supported; choose one of {', '.join(DTYPES)}"
    if device is not None:
        kind, colon, index = device.partition(":")
        if kind not in DEVICES or (colon and not (kind == "cuda" and index.isdigit())):
            return "device", f"device '{device[:40]}' is not supported; choose one of {', '.join(DEVICES)} (or cuda:N)"
    for name, value in sizes.items():
        if value is not None and value < 1:
            return name, f"{name} must be at least 1, got {value}"
    return None


@dataclass(frozen=True)
class GenParams:
    """How one sequence is sampled and when it stops (generation.Batch.add takes it as is). temperature 0 is greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    repetition_penalty: float = 1.0  # 1.0: off; HF's rule over prompt and generated ids
    seed: int | None = None  # None: a fresh random seed per sequence
    max_tokens: int = 0  # 0: up to the context length
    logprobs: int | None = None  # None: none; k: each token's log-probability and the top k ids'
    stop_tokens: frozenset[int] = frozenset()  # e.g. eot, eom, eos ids
    eom_tokens: frozenset[int] = frozenset()  # the stop tokens that mean end_of_message
    stop: tuple[str, ...] = ()  # stop sequences: the worker ends the sequence once its text holds one
    grammar: str | None = None  # llguidance's grammar the reply must match (llama_core.prompt.constraints)


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the group: which checkpoint, on what, how big."""

    ckpt_dir: str
    world_size: int = 1
    device: str | None = None  # "cpu", "cuda" or "mps"; None: the best present
    dtype: str | None = None  # "fp32", "bf16", "int8", "gguf"; None: bf16 on CUDA, else fp32
    max_seq_len: int = 4096
    max_batch_size: int = 8
    threads: int | None = None  # torch intra-op threads per rank; None = torch's default
    # Across hosts: the world_size ranks are spread evenly over `nnodes` hosts, and each host's
    # process tree starts its own share (`local_ranks`). Host 0 holds rank 0, which serves; the
    # others join it at `rendezvous` ("tcp://HOST:PORT", torch's MASTER_ADDR and MASTER_PORT).
    # One host: a private file rendezvous, no port taken.
    nnodes: int = 1
    node_rank: int = 0
    rendezvous: str | None = None

    def __post_init__(self) -> None:
        problem = unsupported(self.dtype, self.device, world_size=self.world_size, max_seq_len=self.max_seq_len,
                              max_batch_size=self.max_batch_size, threads=self.threads, nnodes=self.nnodes)  # fmt: skip
        if problem is None:
            problem = _across_hosts(self.world_size, self.nnodes, self.node_rank, self.rendezvous)
        if problem is not None:
            raise InvalidRequestError(problem[1] + ".", field=problem[0])

    @property
    def local_ranks(self) -> range:
        """The ranks this host's process tree runs: world_size // nnodes of them, host 0 first."""
        per_host = self.world_size // self.nnodes
        return range(self.node_rank * per_host, (self.node_rank + 1) * per_host)


def _across_hosts(world_size: int, nnodes: int, node_rank: int, rendezvous: str | None) -> tuple[str, str] | None:
    """(field, reason) when the ranks cannot be spread over the hosts as asked, else None."""
    if world_size % nnodes:
        return "nnodes", f"{world_size} model-parallel ranks cannot be spread evenly over {nnodes} hosts"
    if not 0 <= node_rank < nnodes:
        return "node_rank", f"node_rank must be from 0 to {nnodes - 1} with {nnodes} hosts, got {node_rank}"
    if nnodes > 1 and not (rendezvous or "").startswith("tcp://"):
        return "master_addr", f"{nnodes} hosts need the address rank 0 listens on (master_addr, or MASTER_ADDR)"
    return None


@dataclass(frozen=True)
class Submit:
    seq_id: int
    prompt: list[int]
    params: GenParams


@dataclass(frozen=True)
class Cancel:
    seq_id: int


@dataclass(frozen=True)
class Shutdown:
    pass


@dataclass(frozen=True)
class Ready:
    """Rank 0 loaded its shard; `info` says what it runs on (device, dtype, sizes)."""

    info: dict[str, object]


@dataclass(frozen=True)
class TokenOut:
    """One generated token. `stop_reason` is set on the last token of a sequence (which may be a stop token).

    With GenParams.logprobs: `logprob` is this token's log-probability, `logprobs` the top ids' (most likely first).
    """

    seq_id: int
    token: int
    logprobs: dict[int, float] | None = None
    stop_reason: str | None = None
    logprob: float | None = None


@dataclass(frozen=True)
class Tokens:
    """Everything one batched step produced, in one message."""

    items: list[TokenOut]


# Failed.kind -> the error it stands for on the parent's side. A worker names an error by the first
# class it is an instance of, so the more specific come first.
FAILURE_KINDS: dict[str, type[LlamaError]] = {
    "invalid": InvalidRequestError,  # a bad request
    "unavailable": UnavailableError,
    "checkpoint": CheckpointError,  # cannot load
    "error": LlamaError,  # ours
}


@dataclass(frozen=True)
class Failed:
    """A request failed (`seq_id` set: the worker goes on), or loading did (`seq_id` None: it exits).

    `detail` is the traceback of an unexpected failure, for the server's log only: never an answer.
    """

    seq_id: int | None
    message: str
    kind: str = "error"  # a key of FAILURE_KINDS
    field: str | None = None  # the request's field at fault, for "invalid"
    detail: str | None = None

    @classmethod
    def of(cls, seq_id: int | None, error: LlamaError) -> Failed:
        """`error` as it crosses the pipe: its kind, message and field."""
        kind = next(k for k, error_class in FAILURE_KINDS.items() if isinstance(error, error_class))
        field = error.field if isinstance(error, InvalidRequestError) else None
        return cls(seq_id, error.message, kind=kind, field=field)

    def error(self) -> LlamaError:
        """The error this stands for, as the worker raised it (its class by `kind`, its field)."""
        error_class = FAILURE_KINDS.get(self.kind, LlamaError)
        if issubclass(error_class, InvalidRequestError):
            return error_class(self.message, field=self.field)
        return error_class(self.message)
