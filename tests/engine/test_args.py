"""ModelArgs: the FFN size rule, RoPE scale factor by model, params.json reading and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llama_core.engine.args import ModelArgs
from llama_core.errors import CheckpointError

# (dim, n_layers, n_heads, n_kv_heads, ffn_dim_multiplier, multiple_of) of Meta's arch_args
META_SHAPES = {
    "8B": (4096, 32, 32, 8, 1.3, 1024),
    "70B": (8192, 80, 64, 8, 1.3, 4096),
    "405B": (16384, 126, 128, 8, 1.2, 4096),
    "3.2-1B": (2048, 16, 32, 8, 1.5, 256),
    "3.2-3B": (3072, 28, 24, 8, 1.0, 256),
}
# id: (ffn hidden dim, head_dim, rope scale factor)
EXPECTED = {
    "8B": (14336, 128, 8.0),
    "70B": (28672, 128, 8.0),
    "405B": (53248, 128, 8.0),
    "3.2-1B": (8192, 64, 32.0),
    "3.2-3B": (8192, 128, 32.0),
}


@pytest.mark.parametrize("name", list(META_SHAPES), ids=list(META_SHAPES))
def test_derived_sizes_of_meta_shapes(name: str) -> None:
    dim, n_layers, n_heads, n_kv, mult, multiple_of = META_SHAPES[name]
    args = ModelArgs.from_params({
        "dim": dim, "n_layers": n_layers, "n_heads": n_heads, "n_kv_heads": n_kv, "vocab_size": 128256,
        "ffn_dim_multiplier": mult, "multiple_of": multiple_of, "norm_eps": 1e-5, "rope_theta": 500000.0,
        "use_scaled_rope": True, "vision_chunk_size": -1,  # unknown keys are ignored
    })
    assert (args.ffn_hidden_dim, args.head_dim, args.rope_scale) == EXPECTED[name]


def test_explicit_hidden_dim_and_scale_factor_win() -> None:
    args = ModelArgs.from_params({"dim": 2048, "n_layers": 16, "n_heads": 32, "hidden_dim": 6400,
                                  "rope_freq_base": 10000.0, "rope_scaling_factor": 8.0})
    assert (args.ffn_hidden_dim, args.rope_theta, args.rope_scale, args.n_kv_heads) == (6400, 10000.0, 8.0, 32)


def test_hf_style_rope_scaling_block() -> None:
    args = ModelArgs.from_params({"dim": 64, "n_layers": 1, "n_heads": 4, "rope_scaling": {
        "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}})
    assert args.use_scaled_rope and args.rope_scale == 32.0


def test_params_round_trip(tmp_path: Path) -> None:
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=96, tie_word_embeddings=True)
    (tmp_path / "params.json").write_text(json.dumps(args.to_params()))
    assert ModelArgs.from_file(tmp_path / "params.json") == args
    assert args.to_params() == {
        "dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 128256, "multiple_of": 256,
        "norm_eps": 1e-5, "rope_theta": 500000.0, "use_scaled_rope": False, "hidden_dim": 96,
        "tie_word_embeddings": True,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"dim": 64, "n_heads": 3}, "dim 64 is not a multiple of n_heads 3"),
        ({"dim": 64, "n_heads": 4, "n_kv_heads": 3}, "n_heads 4 is not a multiple of n_kv_heads 3"),
        ({"dim": 64, "n_heads": 4, "vocab_size": -1}, "vocab_size must be positive"),
    ],
    ids=["heads", "kv-heads", "vocab"],
)
def test_bad_args_are_checkpoint_errors(params: dict, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        ModelArgs.from_params(params)


def test_missing_and_bad_params_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="Missing params.json"):
        ModelArgs.from_file(tmp_path / "params.json")
    (tmp_path / "params.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        ModelArgs.from_file(tmp_path / "params.json")
