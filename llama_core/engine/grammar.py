"""Constrained decoding in the worker: a sequence whose GenParams carry a grammar gets its own
llguidance matcher, which masks its row of logits before each draw and advances on each drawn token.

The grammar is llguidance's string (llama_core.prompt.constraints builds and checks it in the
parent, so a bad schema is a 400 before any work). The matcher's tokenizer is built once per
checkpoint from the same tokenizer file the parent encodes with, its end tokens the model's stop
tokens: once the grammar is complete the mask allows nothing else, so the sequence ends there.

Cost per constrained token (benches/bench_grammar.py, one core): llguidance's mask and advance
about 9 us on SmolLM2's 49k vocabulary and 13 us on Llama 3's 128k, and applying the mask to the
logits about 90 and 290 us, against a 25-50 ms decode step of the demo model.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import Tensor

from llama_core.errors import InvalidRequestError, LlamaError


@functools.lru_cache(maxsize=4)
def grammar_tokenizer(tokenizer_dir: str) -> Any:
    """llguidance's view of the checkpoint's tokenizer (about a second to build: once per process)."""
    import llguidance

    from llama_core.tokenizer import HFTokenizer, Tokenizer

    tok = Tokenizer.from_file(tokenizer_dir)
    ends = list(dict.fromkeys(tok.stop_tokens + [tok.eos_id]))
    if isinstance(tok, HFTokenizer):
        return llguidance.LLTokenizer(tok.model.to_str(), n_vocab=tok.vocab_size, eos_token=ends)
    enc = tok.model
    return llguidance.LLTokenizer.from_tiktoken(  # type: ignore[attr-defined]
        encoder=enc._mergeable_ranks, special_tokens=enc._special_tokens, pattern=enc._pat_str,
        eos_token=ends, n_vocab=tok.vocab_size,
    )  # fmt: skip


class Constraint:
    """One sequence's matcher: `mask(logits)` before a draw, `accept(token)` after it.

    Raises InvalidRequestError when the grammar cannot be compiled against this tokenizer.
    """

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise InvalidRequestError(f"The grammar cannot be used: {self.matcher.get_error()[:300]}", field="response_format")
        self.bits = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int32)

    def mask(self, logits: Tensor) -> Tensor:
        """`logits` (vocab,) with every id the grammar does not allow next at -inf (a new tensor)."""
        self.matcher.unsafe_compute_mask_ptr(self.bits.ctypes.data, self.bits.nbytes)
        allowed = np.unpackbits(self.bits.view(np.uint8), bitorder="little")
        n = logits.shape[-1]  # the model's rows may outnumber the tokenizer's ids (padding): never allowed
        banned = np.ones(n, dtype=np.bool_)
        banned[: min(n, allowed.size)] = allowed[:n] == 0
        return logits.masked_fill(torch.from_numpy(banned).to(logits.device), float("-inf"))

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise LlamaError(f"Constrained decoding drew token {token}, which its grammar does not allow.")
