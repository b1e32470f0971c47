"""Train the tiny Llama 3 (real tokenizer) for seconds to answer fixed prompts greedily, and save it.

    train_tiny(dest, [(prompt_ids, answer_ids), ...], what="the tiny guard")

Training runs on transformers' LlamaForCausalLM (tests/engine/hf_reference.py, the engine's independent
reference) with the embeddings frozen (random ones tell the tokens apart already), on the answers'
positions only (the vocabulary is 128k wide), and stops once every answer token beats the runner-up
by `margin` logits; the weights go back to the Meta layout with the real tokenizer.model beside them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch


def train_tiny(dest: Path, lessons: list[tuple[list[int], list[int]]], *, what: str, seed: int = 0,
               margin: float = 6.0, max_steps: int = 400, lr: float = 3e-3) -> Path:  # fmt: skip
    """Write the trained checkpoint (params.json, consolidated.00.pth, tokenizer.model, trained.txt) to `dest`.

    Raises AssertionError when `what` has not learnt every answer in `max_steps` steps.
    """
    from engine.hf_reference import hf_model
    from engine.tiny_checkpoint import TINY_ARGS, llama3_tokenizer_model, random_state_dict

    from llama_core.engine.checkpoint import save_checkpoint
    from llama_core.engine.hf import from_hf_state_dict

    args = TINY_ARGS
    torch.manual_seed(seed)
    model = hf_model(args, random_state_dict(args, seed)).train()
    model.model.embed_tokens.weight.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    inputs = [(torch.tensor([prompt + answer[:-1]]), torch.tensor(answer), len(prompt) - 1) for prompt, answer in lessons]
    started = time.monotonic()
    gaps: list[float] = []
    for step in range(max_steps):
        optimizer.zero_grad()
        gaps = []
        loss = torch.zeros(())
        for ids, target, first in inputs:
            logits = model.lm_head(model.model(input_ids=ids).last_hidden_state[0, first : first + len(target)])
            loss = loss + torch.nn.functional.cross_entropy(logits, target)
            right = logits.gather(1, target[:, None])[:, 0]
            others = logits.scatter(1, target[:, None], float("-inf")).max(dim=1).values
            gaps.append(float((right - others).min().detach()))
        if min(gaps) > margin:
            break
        loss.backward()
        optimizer.step()
    else:
        raise AssertionError(f"{what} did not learn its answers in {max_steps} steps (gaps {gaps})")
    state = {k: v.detach().clone().float() for k, v in model.state_dict().items() if "rotary_emb" not in k}
    dest.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dest, args, from_hf_state_dict(args, state))
    shutil.copyfile(llama3_tokenizer_model(), dest / "tokenizer.model")
    (dest / "trained.txt").write_text(f"{step} steps, {time.monotonic() - started:.1f} s, gaps {gaps}\n")
    return dest
