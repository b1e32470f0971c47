"""ModelArgs: the architecture of one Llama-family transformer, read from a checkpoint's params.json.

Pure Python (no torch), so the registry and the CLI can read a checkpoint's shape cheaply.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from llama_core.errors import CheckpointError

# Llama 3.2 1B/3B use RoPE scale factor 32, yet Meta's params.json carries only `use_scaled_rope`
# (llama-models #166, #241). Known shapes, (dim, n_layers) -> factor, fill the gap; 8 otherwise.
ROPE_SCALE_BY_SHAPE: dict[tuple[int, int], float] = {
    (2048, 16): 32.0,  # Llama-3.2-1B
    (3072, 28): 32.0,  # Llama-3.2-3B
}
DEFAULT_ROPE_SCALE = 8.0  # Llama 3.1, 3.2-Vision, 3.3

# Other spellings of the same field seen in params.json files, mapped to our name.
ALIASES: dict[str, str] = {
    "rope_freq_base": "rope_theta",
    "rope_scale_factor": "rope_scaling_factor",
    "tie_embeddings": "tie_word_embeddings",
}


@dataclasses.dataclass(frozen=True)
class ModelArgs:
    """The shape of a Llama 3 transformer; field names follow Meta's params.json."""

    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None  # None -> n_heads (plain multi-head attention); an int once built (__post_init__)
    vocab_size: int = 128256
    multiple_of: int = 256  # SwiGLU hidden size is rounded up to a multiple of this
    ffn_dim_multiplier: float | None = None
    hidden_dim: int | None = None  # explicit FFN size; overrides the rule (pruned / non-Meta models)
    norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    use_scaled_rope: bool = False
    rope_scaling_factor: float | None = None  # None -> by shape (ROPE_SCALE_BY_SHAPE), else 8
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192  # Llama 3's pre-scaling context length
    tie_word_embeddings: bool = False  # output.weight is tok_embeddings.weight
    max_seq_len: int = 2048
    max_batch_size: int = 1

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        problems = [
            (self.dim <= 0 or self.n_layers <= 0 or self.n_heads <= 0, "dim, n_layers and n_heads must be positive"),
            (self.vocab_size <= 0, f"vocab_size must be positive, got {self.vocab_size}"),
            (self.dim % self.n_heads != 0, f"dim {self.dim} is not a multiple of n_heads {self.n_heads}"),
            (self.n_heads % self.n_kv_heads != 0, f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"),
            (self.head_dim % 2 != 0, f"head_dim {self.head_dim} must be even for RoPE"),
        ]
        for bad, message in problems:
            if bad:
                raise CheckpointError(f"Bad model args: {message}.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        """SwiGLU width: explicit `hidden_dim`, else 2/3·4·dim, times the multiplier, rounded up."""
        if self.hidden_dim is not None:
            return self.hidden_dim
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    @property
    def rope_scale(self) -> float:
        """The Llama 3.1 RoPE scale factor in effect (only used when `use_scaled_rope`)."""
        if self.rope_scaling_factor is not None:
            return self.rope_scaling_factor
        return ROPE_SCALE_BY_SHAPE.get((self.dim, self.n_layers), DEFAULT_ROPE_SCALE)

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> ModelArgs:
        """Build from a params.json dict; unknown keys (vision, quantization, lora) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            key = ALIASES.get(key, key)
            if key in known:
                kwargs[key] = value
        scaling = params.get("rope_scaling")  # HF-style {"factor": 32.0, "low_freq_factor": ...}
        if isinstance(scaling, dict) and scaling.get("rope_type", scaling.get("type")) == "llama3":
            kwargs["use_scaled_rope"] = True
            kwargs.setdefault("rope_scaling_factor", scaling.get("factor"))
            kwargs.setdefault("rope_low_freq_factor", scaling.get("low_freq_factor", 1.0))
            kwargs.setdefault("rope_high_freq_factor", scaling.get("high_freq_factor", 4.0))
            kwargs.setdefault("rope_original_max_position", scaling.get("original_max_position_embeddings", 8192))
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise CheckpointError(f"Bad model args: {e}.") from None

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> ModelArgs:
        """Read params.json; a missing or unreadable file is a CheckpointError."""
        path = Path(path)
        try:
            params = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"Missing {path.name} in {path.parent}.") from None
        except (OSError, ValueError) as e:
            raise CheckpointError(f"Cannot read {path}: {e}.") from None
        if not isinstance(params, dict):
            raise CheckpointError(f"{path} is not a JSON object.")
        return cls.from_params(params, **overrides)

    def to_params(self) -> dict[str, Any]:
        """The params.json dict: Meta's keys, plus ours only where they differ from the defaults."""
        meta_keys = ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of",
                     "ffn_dim_multiplier", "norm_eps", "rope_theta", "use_scaled_rope")
        out: dict[str, Any] = {k: getattr(self, k) for k in meta_keys}
        default = ModelArgs()
        for f in dataclasses.fields(self):
            if f.name not in out and f.name not in ("max_seq_len", "max_batch_size"):
                if getattr(self, f.name) != getattr(default, f.name):
                    out[f.name] = getattr(self, f.name)
        return {k: v for k, v in out.items() if v is not None}
