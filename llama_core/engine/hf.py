"""Hugging Face layout (config.json + model*.safetensors) read into Meta's names and RoPE order.

HF's converter permutes wq/wk rows so that RoPE rotates the two halves of each head
("rotate_half") instead of adjacent pairs as Meta's code does; loading undoes that permutation.
(The other direction, Meta -> HF, only the tests' transformers reference needs: tests/engine/hf_reference.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
import json

import torch
from torch import Tensor

from llama_core.engine.args import ModelArgs
from llama_core.errors import CheckpointError

# Meta name (per layer, after "layers.N.") -> HF name (after "model.layers.N.")
LAYER_NAMES: dict[str, str] = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
TOP_NAMES: dict[str, str] = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def permute_from_hf(w: Tensor, n_heads: int) -> Tensor:
    """HF (rotate-half) -> Meta (interleaved pairs) row order of a q/k projection: (n_heads*hd, dim)."""
    rows, cols = w.shape
    return w.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def args_from_hf_config(config: dict[str, Any], **overrides: Any) -> ModelArgs:
    """ModelArgs from an HF LlamaConfig dict (transformers 4.x `rope_scaling` or 5.x `rope_parameters`)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    theta = config.get("rope_theta", rope.get("rope_theta", 10000.0))
    params: dict[str, Any] = {
        "dim": config["hidden_size"],
        "n_layers": config["num_hidden_layers"],
        "n_heads": config["num_attention_heads"],
        "n_kv_heads": config.get("num_key_value_heads") or config["num_attention_heads"],
        "vocab_size": config["vocab_size"],
        "hidden_dim": config["intermediate_size"],
        "norm_eps": config.get("rms_norm_eps", 1e-5),
        "rope_theta": theta,
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", False)),
    }
    if rope.get("rope_type", rope.get("type")) == "llama3":
        params["rope_scaling"] = dict(rope, rope_type="llama3")
    if config.get("head_dim") not in (None, config["hidden_size"] // config["num_attention_heads"]):
        raise CheckpointError(f"head_dim {config['head_dim']} != hidden_size / num_attention_heads is not supported.")
    return ModelArgs.from_params(params, **overrides)


def from_hf_state_dict(args: ModelArgs, hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Meta names and RoPE order from HF tensors; CheckpointError if a weight is missing."""
    inverse_top = {v: k for k, v in TOP_NAMES.items()}
    inverse_layer = {v: k for k, v in LAYER_NAMES.items()}
    out: dict[str, Tensor] = {}
    for key, t in hf_state.items():
        if key in inverse_top:
            out[inverse_top[key]] = t
        elif key.startswith("model.layers."):
            _, _, i, rest = key.split(".", 3)
            if rest not in inverse_layer:
                continue  # e.g. rotary_emb.inv_freq in old exports
            meta = inverse_layer[rest]
            if meta == "attention.wq.weight":
                t = permute_from_hf(t, args.n_heads)
            elif meta == "attention.wk.weight":
                t = permute_from_hf(t, args.n_kv_heads)
            out[f"layers.{i}.{meta}"] = t
    if "output.weight" not in out and "tok_embeddings.weight" in out and not args.tie_word_embeddings:
        raise CheckpointError("The safetensors files lack lm_head.weight and the config does not tie embeddings.")
    return out


def is_hf_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def read_hf_checkpoint(path: str | Path, **overrides: Any) -> tuple[ModelArgs, dict[str, Tensor]]:
    """ModelArgs and the full Meta-named state dict of an HF Llama directory."""
    from safetensors.torch import load_file

    path = Path(path)
    if not is_hf_checkpoint(path):
        raise CheckpointError(f"{path} has no config.json with model*.safetensors beside it.")
    config = json.loads((path / "config.json").read_text())
    if config.get("model_type", "llama") != "llama":
        raise CheckpointError(f"{path} holds a '{config.get('model_type')}' model; only the Llama architecture is supported.")
    args = args_from_hf_config(config, **overrides)
    hf_state: dict[str, Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        try:
            hf_state.update(load_file(f))
        except Exception as e:
            raise CheckpointError(f"Cannot read {f.name}: {e}. Re-download it.") from None
    return args, from_hf_state_dict(args, hf_state)


def load_hf_model(path: Path, max_seq_len: int, max_batch_size: int, dtype: torch.dtype,
                  device: torch.device, int8: bool = False, **overrides: Any) -> tuple[Any, Any]:
    """Build and load a Transformer from an HF directory (split in memory under model parallel)."""
    from llama_core.engine.checkpoint import CheckpointFiles, load_weights, shard_state_dict
    from llama_core.engine.model import build_model
    from llama_core.engine.parallel import model_parallel_rank, model_parallel_size

    args, state_dict = read_hf_checkpoint(path, max_seq_len=max_seq_len, max_batch_size=max_batch_size, **overrides)
    if model_parallel_size() > 1:
        state_dict = shard_state_dict(state_dict, model_parallel_size())[model_parallel_rank()]
    model = build_model(args, dtype=dtype, device="cpu")
    load_weights(model, state_dict, path / "model.safetensors")
    model = model.to(device)
    model.prepare_weights(int8=int8)
    model.setup_caches(max_batch_size, max_seq_len)
    tokenizer = next((p for p in (path / "tokenizer.json", path / "original" / "tokenizer.model") if p.is_file()), None)
    template = path / "chat_template.jinja"
    return model, CheckpointFiles(path, path / "config.json", sorted(path.glob("*.safetensors")), tokenizer,
                                  template if template.is_file() else None)
