"""Random weights in a real model's shape, for speed runs where the real weights cannot travel.

Speed depends on shapes, not values: a Llama-3.2-1B-shaped checkpoint with seeded random weights
decodes exactly as fast as the real one. --like is a registry model id (its params.json, the
Llama 3 tokenizer from the llama-models wheel, tied embeddings where the HF release or the
registry's config ties them; a model of a smaller vocabulary, such as the demo model, gets a
byte-level tokenizer.json of 256 ids, enough to load) or a checkpoint directory (its params.json
and tokenizer files are copied).

    python benches/random_checkpoint.py --like Llama3.2-1B-Instruct DEST
    python benches/random_checkpoint.py --like SmolLM2-135M-Instruct DEST
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


LLAMA3_VOCAB = 128256


def args_like(like: str) -> tuple[ModelArgs, list[Path]]:
    """The shape and the tokenizer files to copy for `like` (a registry id or a checkpoint dir);
    no files where the Llama 3 tokenizer has more ids than the model (write_byte_tokenizer)."""
    path = Path(like).expanduser()
    if (path / "params.json").is_file():
        return ModelArgs.from_file(path / "params.json"), [path / f for f in TOKENIZER_FILES if (path / f).is_file()]
    from llama_core.models.registry import resolve_model

    model = resolve_model(like)
    tied = model.arch_args.get("tie_word_embeddings", False) or model.core_model_id.removesuffix("-Instruct") in TIED
    args = ModelArgs.from_params(model.arch_args, rope_scaling_factor=model.rope_scaling_factor,
                                 tie_word_embeddings=tied)
    return args, [llama3_tokenizer_model()] if args.vocab_size >= LLAMA3_VOCAB else []


def write_byte_tokenizer(dest: Path) -> None:
    """A byte-level BPE tokenizer.json of 256 ids and no merges, then <|endoftext|> (id 256, its
    end of sequence): loads, encodes any text, and fits any vocabulary (random weights need no
    real one)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    tokenizer.save(str(dest / "tokenizer.json"))


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
    if not tokenizer_files:
        write_byte_tokenizer(a.dest)
    n = sum(v.numel() for v in sd.values())
    print(f"{a.dest}: {n / 1e6:.0f}M random parameters shaped like {a.like}")


if __name__ == "__main__":
    main()
