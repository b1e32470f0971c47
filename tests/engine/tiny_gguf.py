"""Write a tiny Llama GGUF (as llama.cpp would: Meta RoPE order, one Q8_0 tensor, byte-level BPE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from llama_core.engine.args import ModelArgs
from llama_core.engine.gguf import BLOCK_NAMES, TOP_NAMES

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["h e", "l l", "l o", "Ġ w", "o r", "Ġw or", "he ll"]
TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def byte_tokens() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def vocab() -> list[str]:
    return SPECIALS + byte_tokens() + ["".join(m.split(" ")) for m in MERGES]  # 3 + 256 + 7 = 266


def write_tiny_gguf(path: Path, args: ModelArgs, state_dict: dict[str, Tensor], arch: str = "llama",
                    tokenizer_model: str = "gpt2", quantized: dict[str, str] | None = None) -> Path:
    """quantized: a GGML type name ("Q4_0", "Q4_1", "Q8_0") by the Meta name's last two parts
    (e.g. "attention.wq"); the embedding is Q8_0 unless named there."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(args.n_layers)
    w.add_context_length(2048)
    w.add_embedding_length(args.dim)
    w.add_feed_forward_length(args.ffn_hidden_dim)
    w.add_head_count(args.n_heads)
    w.add_head_count_kv(args.n_kv_heads)
    w.add_layer_norm_rms_eps(args.norm_eps)
    w.add_rope_freq_base(args.rope_theta)
    w.add_tokenizer_model(tokenizer_model)
    w.add_tokenizer_pre("smollm")
    tokens = vocab()
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    w.add_token_merges(MERGES)
    w.add_bos_token_id(1)
    w.add_eos_token_id(1)  # the SmolLM2 slip: eos == bos
    w.add_add_bos_token(True)
    w.add_chat_template(TEMPLATE)
    inverse = {v: k for k, v in TOP_NAMES.items()} | {f"layers.{i}.{v}": f"blk.{i}.{k}"
                                                      for i in range(args.n_layers) for k, v in BLOCK_NAMES.items()}
    types = {"tok_embeddings": "Q8_0"} | (quantized or {})  # the embedding quantized, as real files have it
    for name, t in state_dict.items():
        array = t.float().numpy()
        kind = types.get(".".join(name.split(".")[-3:-1]))  # "attention.wq", "tok_embeddings"
        if kind is not None:
            qtype = gguf.GGMLQuantizationType[kind]
            w.add_tensor(inverse[name], gguf.quants.quantize(array, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(inverse[name], np.ascontiguousarray(array))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def q8_round_trip(t: Tensor) -> Tensor:
    import gguf

    q = gguf.quants.quantize(t.float().numpy(), gguf.GGMLQuantizationType.Q8_0)
    return torch.from_numpy(np.array(gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)))
