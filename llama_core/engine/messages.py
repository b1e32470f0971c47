"""What crosses the pipe between the async core and rank 0 of the worker group.

Plain frozen dataclasses, pickled by multiprocessing.Connection; no torch, so the parent side can
import them without loading the engine. Token ids only: the parent owns the tokenizer and the
prompt format, the workers own the weights.

    parent -> rank 0:  Submit | Cancel | Shutdown
    rank 0 -> parent:  Ready | Tokens | Failed
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenParams:
    """How one sequence is sampled and when it stops (generation.Batch.add takes it as is). temperature 0 is greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    repetition_penalty: float = 1.0  # 1.0: off; HF's rule over prompt and generated ids
    seed: int | None = None  # None: a fresh random seed per sequence
    max_tokens: int = 0  # 0: up to the context length
    logprobs: int = 0  # how many top tokens' log-probabilities to return per step; 0 = none
    stop_tokens: frozenset[int] = frozenset()  # e.g. eot, eom, eos ids
    eom_tokens: frozenset[int] = frozenset()  # the stop tokens that mean end_of_message


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the group: which checkpoint, on what, how big."""

    ckpt_dir: str
    world_size: int = 1
    device: str | None = None  # "cpu", "cuda" or "mps"; None: the best present
    dtype: str | None = None  # "fp32", "bf16", "int8"; None: bf16 on CUDA, else fp32
    max_seq_len: int = 4096
    max_batch_size: int = 8
    threads: int | None = None  # torch intra-op threads per rank; None = torch's default


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
    """One generated token. `stop_reason` is set on the last token of a sequence (which may be a stop token)."""

    seq_id: int
    token: int
    logprobs: dict[int, float] | None = None
    stop_reason: str | None = None


@dataclass(frozen=True)
class Tokens:
    """Everything one batched step produced, in one message."""

    items: list[TokenOut]


@dataclass(frozen=True)
class Failed:
    """A request failed (`seq_id` set), or the whole worker did (`seq_id` None: it exits after this)."""

    seq_id: int | None
    message: str
    kind: str = "error"  # "invalid" (bad request), "checkpoint" (cannot load), "error"
