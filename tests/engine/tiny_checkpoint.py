"""Write tiny random Llama 3 checkpoints in the Meta layout, with the real Llama 3 tokenizer.model."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import Tensor

from llama_core.engine.args import ModelArgs
from llama_core.engine.checkpoint import save_checkpoint

# dim 64, 2 layers, 4 heads over 2 kv heads (GQA), the real 128256-token vocab, Llama 3.1 RoPE scaling.
TINY_ARGS = ModelArgs(
    dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=128256, multiple_of=32,
    ffn_dim_multiplier=1.3, norm_eps=1e-5, rope_theta=500000.0, use_scaled_rope=True,
)


def llama3_tokenizer_model() -> Path:
    """The tokenizer.model shipped inside the llama-models wheel (never copied into the repo)."""
    import llama_models

    return Path(llama_models.__file__).parent / "llama3" / "api" / "tokenizer.model"


def random_state_dict(args: ModelArgs, seed: int = 0) -> dict[str, Tensor]:
    """Seeded random weights with Meta's names, scaled so logits are spread (greedy text varies)."""
    g = torch.Generator().manual_seed(seed)
    hd, ffn = args.head_dim, args.ffn_hidden_dim

    def w(rows: int, cols: int) -> Tensor:
        return torch.randn(rows, cols, generator=g) / cols**0.5

    def norm() -> Tensor:
        return 1.0 + 0.1 * torch.randn(args.dim, generator=g)

    sd = {"tok_embeddings.weight": torch.randn(args.vocab_size, args.dim, generator=g)}
    for i in range(args.n_layers):
        p = f"layers.{i}."
        sd[p + "attention.wq.weight"] = w(args.n_heads * hd, args.dim)
        sd[p + "attention.wk.weight"] = w(args.n_kv_heads * hd, args.dim)
        sd[p + "attention.wv.weight"] = w(args.n_kv_heads * hd, args.dim)
        sd[p + "attention.wo.weight"] = w(args.dim, args.n_heads * hd)
        sd[p + "feed_forward.w1.weight"] = w(ffn, args.dim)
        sd[p + "feed_forward.w2.weight"] = w(args.dim, ffn)
        sd[p + "feed_forward.w3.weight"] = w(ffn, args.dim)
        sd[p + "attention_norm.weight"] = norm()
        sd[p + "ffn_norm.weight"] = norm()
    sd["norm.weight"] = norm()
    if not args.tie_word_embeddings:
        sd["output.weight"] = w(args.vocab_size, args.dim)
    return sd


def write_tiny_checkpoint(dest: Path, args: ModelArgs = TINY_ARGS, model_parallel: int = 1, seed: int = 0) -> Path:
    """params.json + consolidated.NN.pth (bf16, like Meta's) + tokenizer.model in `dest`."""
    sd = {k: v.to(torch.bfloat16) for k, v in random_state_dict(args, seed).items()}
    save_checkpoint(dest, args, sd, model_parallel=model_parallel)
    shutil.copyfile(llama3_tokenizer_model(), dest / "tokenizer.model")
    return dest


def write_tiny_run_config(root: Path, model: str, *, max_seq_len: int, max_batch_size: int, **inference: object) -> Path:
    """A tiny checkpoint in `root/tiny` and the run config `root/tiny.toml` serving it as `model` on
    meta-reference (`inference`: more of that provider's fields, e.g. device, dtype, threads)."""
    import tomli_w

    ckpt = write_tiny_checkpoint(root / "tiny")
    provider = {"provider_id": "meta-reference", "model": model, "checkpoint_dir": str(ckpt),
                "max_seq_len": max_seq_len, "max_batch_size": max_batch_size, **inference}  # fmt: skip
    config = root / "tiny.toml"
    config.write_text(tomli_w.dumps({"name": "tiny", "distribution_id": "local", "providers": {"inference": provider}}))
    return config


def rank_logits(ckpt: str, tokens: list[int]) -> list[list[float]]:
    """Run on each model-parallel rank (parallel.run_model_parallel): this rank's gathered logits."""
    from llama_core.engine.checkpoint import load_model

    model = load_model(ckpt, max_seq_len=32, max_batch_size=1, dtype="fp32", device="cpu")[0]
    with torch.inference_mode():
        return model(torch.tensor([tokens]), torch.tensor([0]))[0].tolist()
