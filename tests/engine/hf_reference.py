"""transformers' LlamaForCausalLM built from our Meta-named weights: the independent reference."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from llama_core.engine import hf
from llama_core.engine.args import ModelArgs


def hf_model(args: ModelArgs, state_dict: dict[str, Tensor]) -> Any:
    """An fp32 eager LlamaForCausalLM holding exactly these weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = {k: v for k, v in hf.hf_config(args).items() if k not in ("architectures", "model_type")}
    cfg = LlamaConfig(**config)
    cfg._attn_implementation = "eager"
    with torch.device("meta"):  # no random init: every weight comes from state_dict
        model = LlamaForCausalLM(cfg).eval()
    sd = {k: v.float() for k, v in hf.to_hf_state_dict(args, state_dict).items()}
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
