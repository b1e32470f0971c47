"""Constrained decoding in the worker: a sequence whose GenParams carry a grammar gets its own
llguidance matcher, which masks its row of logits before each draw and advances on each drawn token.

The grammar is llguidance's string (llama_core.prompt.constraints builds and checks it in the
parent, so a bad schema is a 400 before any work). The matcher's tokenizer is built once per
checkpoint from the same tokenizer file the parent encodes with, its end tokens the model's stop
tokens: once the grammar is complete the mask allows nothing else, so the sequence ends there.

Cost per constrained token (benches/bench_grammar.py, one core): llguidance's mask and advance
about 9 us on SmolLM2's 49k vocabulary and 13 us on Llama 3's 128k, and applying the mask to the
logits about 90 and 290 us (skipped by a greedy draw the grammar allows as it is), against a
25-50 ms decode step of the demo model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
    """One sequence's matcher: `draw(logits, draw_fn, greedy)` picks the next token within the grammar.

    Raises InvalidRequestError when the grammar cannot be compiled against this tokenizer.
    """

    def __init__(self, tokenizer: Any, grammar: str) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if self.matcher.is_error():
            raise InvalidRequestError(f"The grammar cannot be used: {self.matcher.get_error()[:300]}", field="response_format")
        self.bits = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int32)

    def draw(self, logits: Tensor, draw: Callable[[Tensor], int], greedy: bool) -> int:
        """`draw(logits)` over the ids the grammar allows next, the matcher advanced by it.

        Greedy, the unmasked draw comes first: when the grammar allows it, it is also the best
        allowed id, and the mask is never applied (most steps of a model that writes the format
        anyway: applying costs ~0.1-0.3 ms, the mask itself ~10 us).
        """
        self.matcher.unsafe_compute_mask_ptr(self.bits.ctypes.data, self.bits.nbytes)
        token = draw(logits) if greedy else -1
        if not (0 <= token < self.bits.size * 32 and self.bits[token >> 5] >> (token & 31) & 1):
            token = draw(self._masked(logits))
        self.accept(token)
        return token

    def _masked(self, logits: Tensor) -> Tensor:
        """`logits` (vocab,) with every id the grammar does not allow next at -inf (a new tensor)."""
        allowed = np.unpackbits(self.bits.view(np.uint8), bitorder="little")
        n = logits.shape[-1]  # the model's rows may outnumber the tokenizer's ids (padding): never allowed
        banned = np.ones(n, dtype=np.bool_)
        banned[: min(n, allowed.size)] = allowed[:n] == 0
        return logits.masked_fill(torch.from_numpy(banned).to(logits.device), float("-inf"))

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise LlamaError(f"Constrained decoding drew token {token}, which its grammar does not allow.")
