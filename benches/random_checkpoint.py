"""Random weights in a real model's shape, for speed runs where the real weights cannot travel.

Speed depends on shapes, not values: a Llama-3.2-1B-shaped checkpoint with seeded random weights
decodes exactly as fast as the real one. --like is a registry model id (its params.json, the
Llama 3 tokenizer from the llama-models wheel, tied embeddings where the HF release ties them)
or a checkpoint directory (its params.json and tokenizer files are copied).

    python benches/random_checkpoint.py --like Llama3.2-1B-Instruct DEST
    python benches/random_checkpoint.py --like ~/.cache/llama-toolchain/SmolLM2-135M-Instruct DEST
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ helpers, run from anywhere

from llama_core.engine.args import ModelArgs  # noqa: E402
from llama_core.engine.checkpoint import TOKENIZER_FILES, save_checkpoint  # noqa: E402
from tests.engine.tiny_checkpoint import llama3_tokenizer_model, random_state_dict  # noqa: E402

TIED = {"Llama3.2-1B", "Llama3.2-3B"}  # their HF releases tie the LM head to the embedding


def args_like(like: str) -> tuple[ModelArgs, list[Path]]:
    """The shape and the tokenizer files to copy for `like` (a registry id or a checkpoint dir)."""
    path = Path(like).expanduser()
    if (path / "params.json").is_file():
        return ModelArgs.from_file(path / "params.json"), [path / f for f in TOKENIZER_FILES if (path / f).is_file()]
    from llama_core.models.registry import resolve_model

    model = resolve_model(like)
    tied = model.core_model_id.removesuffix("-Instruct") in TIED
    args = ModelArgs.from_params(model.arch_args, rope_scaling_factor=model.rope_scaling_factor,
                                 tie_word_embeddings=tied)
    return args, [llama3_tokenizer_model()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--like", required=True, help="a registry model id or a checkpoint directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("dest", type=Path)
    a = p.parse_args()
    args, tokenizer_files = args_like(a.like)
    sd = {k: v.to(torch.bfloat16) for k, v in random_state_dict(args, a.seed).items()}
    save_checkpoint(a.dest, args, sd)
    for f in tokenizer_files:
        shutil.copyfile(f, a.dest / f.name)
    n = sum(v.numel() for v in sd.values())
    print(f"{a.dest}: {n / 1e6:.0f}M random parameters shaped like {a.like}")


if __name__ == "__main__":
    main()
