"""transformers' LlamaForCausalLM built from our Meta-named weights: the independent reference.

Also the Meta -> HF direction of llama_core/engine/hf.py (which only reads HF checkpoints):
`hf_config`, `to_hf_state_dict` and `permute_to_hf`. benches/bench_generate.py imports them too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from llama_core.engine.args import ModelArgs
from llama_core.engine.hf import LAYER_NAMES, TOP_NAMES


def permute_to_hf(w: Tensor, n_heads: int) -> Tensor:
    """Meta (interleaved pairs) -> HF (rotate-half) row order of a q/k projection: (n_heads*hd, dim);
    the inverse of hf.permute_from_hf."""
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def hf_config(args: ModelArgs) -> dict[str, Any]:
    """An HF LlamaConfig dict for these args (the inverse of hf.args_from_hf_config)."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": args.dim, "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads, "num_key_value_heads": args.n_kv_heads,
        "vocab_size": args.vocab_size, "intermediate_size": args.ffn_hidden_dim,
        "rms_norm_eps": args.norm_eps, "rope_theta": args.rope_theta, "head_dim": args.head_dim,
        "max_position_embeddings": max(args.max_seq_len, args.rope_original_max_position + 1),
        "tie_word_embeddings": args.tie_word_embeddings, "hidden_act": "silu",
    }
    if args.use_scaled_rope:
        config["rope_scaling"] = {
            "rope_type": "llama3", "factor": args.rope_scale,
            "low_freq_factor": args.rope_low_freq_factor, "high_freq_factor": args.rope_high_freq_factor,
            "original_max_position_embeddings": args.rope_original_max_position,
        }
    return config


def to_hf_state_dict(args: ModelArgs, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A full (unsharded) Meta state dict renamed and permuted for LlamaForCausalLM."""
    out: dict[str, Tensor] = {}
    for key, t in state_dict.items():
        if key in TOP_NAMES:
            out[TOP_NAMES[key]] = t
            continue
        _, i, rest = key.split(".", 2)
        if rest == "attention.wq.weight":
            t = permute_to_hf(t, args.n_heads)
        elif rest == "attention.wk.weight":
            t = permute_to_hf(t, args.n_kv_heads)
        out[f"model.layers.{i}.{LAYER_NAMES[rest]}"] = t
    if args.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def hf_model(args: ModelArgs, state_dict: dict[str, Tensor]) -> Any:
    """An fp32 eager LlamaForCausalLM holding exactly these weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = {k: v for k, v in hf_config(args).items() if k not in ("architectures", "model_type")}
    cfg = LlamaConfig(**config)
    cfg._attn_implementation = "eager"
    with torch.device("meta"):  # no random init: every weight comes from state_dict
        model = LlamaForCausalLM(cfg).eval()
    sd = {k: v.float() for k, v in to_hf_state_dict(args, state_dict).items()}
    result = model.load_state_dict(sd, strict=False, assign=True)
    allowed_missing = {"lm_head.weight"} if args.tie_word_embeddings else set()
    assert set(result.missing_keys) <= allowed_missing and not result.unexpected_keys, result
    if args.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)  # its buffers are not in state_dict
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    return model


def hf_greedy(model: Any, prompt: list[int], max_new_tokens: int) -> list[int]:
    """transformers' own greedy `generate`, new tokens only, no early stop."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
            do_sample=False, eos_token_id=None, pad_token_id=0,
        )
    return out[0, len(prompt):].tolist()
