"""Generation: prefill, incremental decode and sampling as small functions, plus `Batch`, the
continuous-batching stepper a worker loop drives (one batched forward per step for every live slot).

Under model parallel every rank runs the same Batch calls with the same params (a concrete
`seed`), so every rank samples the same token from the same gathered logits.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from llama_core.engine.messages import GenParams
from llama_core.engine.model import Transformer
from llama_core.errors import InvalidRequestError, UnavailableError
from llama_core.types import StopReason

PREFILL_CHUNK = 1024  # prompt tokens per forward: bounds attention memory on long prompts


@dataclasses.dataclass(frozen=True)
class TokenResult:
    """One generated token. `stop_reason` is set on a sequence's last token (which may be a stop token).

    With `params.logprobs` set: `logprob` is the token's log-probability and `logprobs` the top ids'
    (most likely first), both under the model's raw distribution (before penalty and temperature).
    """

    seq_id: Hashable
    token: int
    logprobs: dict[int, float] | None = None
    stop_reason: StopReason | None = None
    logprob: float | None = None

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None


# ---- the hot path: tensors in, tensors out -------------------------------------------------------


def prefill(model: Transformer, tokens: Tensor, slot: int, start_pos: int = 0) -> Tensor:
    """Run a prompt (T,) into cache row `slot` from `start_pos`; the last position's logits (vocab,)."""
    logits = None
    for i in range(0, tokens.shape[0], PREFILL_CHUNK):
        chunk = tokens[i : i + PREFILL_CHUNK][None]
        pos = start_pos + i
        logits = model(chunk, torch.tensor([pos]), first_slot=slot, kv_len=pos + chunk.shape[1], last_only=True)
    assert logits is not None, "empty prompt"
    return logits[0, -1]


def decode_one_token(model: Transformer, tokens: Tensor, input_pos: Tensor, kv_len: int) -> Tensor:
    """One token for each of cache rows 0..B-1: tokens, input_pos (B,) -> logits (B, vocab)."""
    return model(tokens[:, None], input_pos, first_slot=0, kv_len=kv_len)[:, 0]


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """Make already-seen ids less likely: divide positive logits by `penalty`, multiply negative ones."""
    if penalty == 1.0 or seen.numel() == 0:
        return logits
    scores = logits.gather(-1, seen)
    scores = torch.where(scores > 0, scores / penalty, scores * penalty)
    return logits.scatter(-1, seen, scores)


def logits_to_probs(logits: Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Softmax of logits / temperature over the top-k ids and then the top-p nucleus (vocab,)."""
    logits = logits / max(temperature, 1e-5)
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[-1]
        logits = torch.where(logits < kth, float("-inf"), logits)
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p  # mass before this id already > p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum()
    return probs


def argmax(logits: Tensor) -> int:
    """The first id of the highest logit (vocab,). On CPU through NumPy: torch's argmax takes ~130 us
    over a 49k vocab on one thread, NumPy's ~6 (the first maximum either way)."""
    if logits.device.type == "cpu" and logits.dtype == torch.float32:
        return int(logits.numpy().argmax())
    return int(torch.argmax(logits))


def sample(logits: Tensor, params: GenParams, generator: torch.Generator | None, seen: Tensor) -> int:
    """The next id from one row of logits (vocab,): argmax when greedy, else a seeded draw."""
    logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.temperature <= 0.0:
        return argmax(logits)
    probs = logits_to_probs(logits, params.temperature, params.top_k, params.top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def token_logprobs(logits: Tensor, token: int, k: int) -> tuple[float, dict[int, float]]:
    """(log-probability of `token`, the k most likely ids' log-probabilities, most likely first) under
    the model's raw distribution: log_softmax of the logits (vocab,)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    values, ids = torch.topk(logp, k)
    return float(logp[token]), dict(zip(ids.tolist(), values.tolist()))


# Fed each generated id (stop tokens aside) in order; True once the text they make holds a stop
# sequence (the worker builds one per sequence from its tokenizer: providers/inference/stops.py).
StopWatch = Callable[[int], bool]


# ---- continuous batching --------------------------------------------------------------------------


@dataclasses.dataclass
class _Sequence:
    seq_id: Hashable
    slot: int
    params: GenParams
    generator: torch.Generator
    seen: Tensor  # ids for the repetition penalty (prompt + generated), on the model's device
    pos: int  # where the next input token goes
    last_token: int = 0
    n_generated: int = 0
    stop_watch: StopWatch | None = None  # ends the sequence at a stop sequence of its text
    constraint: Any = None  # grammar.Constraint when params.grammar is set


class Batch:
    """Live sequences in the slots (cache rows) of one model, stepped together.

    `add` prefills a prompt into a free slot and returns its first token; `step` makes one more
    token for every live sequence in one batched forward; a finished or cancelled sequence frees
    its slot at once, so a new one can join while the others keep decoding. The KV cache lives in
    the model, so use one Batch per model at a time.

    A sequence whose params carry a `grammar` draws only what it allows (engine/grammar.py), with
    the tokenizer in `tokenizer_dir` (the checkpoint's); without one, such a sequence is refused.
    """

    def __init__(
        self, model: Transformer, max_batch_size: int | None = None, max_seq_len: int | None = None,
        tokenizer_dir: str | None = None,
    ) -> None:  # fmt: skip
        model.setup_caches(max_batch_size or model.max_batch_size or 1, max_seq_len or model.max_seq_len or 2048)
        self.model = model
        self.tokenizer_dir = tokenizer_dir
        self.device = model.tok_embeddings.weight.device
        self.slots: list[_Sequence | None] = [None] * model.max_batch_size

    @property
    def max_seq_len(self) -> int:
        return self.model.max_seq_len

    def __len__(self) -> int:
        return sum(s is not None for s in self.slots)

    @property
    def has_free_slot(self) -> bool:
        return None in self.slots

    def __contains__(self, seq_id: Hashable) -> bool:
        return any(s is not None and s.seq_id == seq_id for s in self.slots)

    @torch.inference_mode()
    def add(
        self, seq_id: Hashable, prompt_tokens: Sequence[int], params: GenParams, stop_watch: StopWatch | None = None
    ) -> TokenResult:
        """Prefill into the lowest free slot and sample the first token; `stop_watch` ends the
        sequence (end_of_turn, its slot freed) on the token it says completes a stop sequence."""
        n = len(prompt_tokens)
        if n == 0:
            raise InvalidRequestError("The prompt is empty.")
        if n >= self.max_seq_len:
            raise InvalidRequestError(
                f"The prompt has {n} tokens; this model's context (max_seq_len) is {self.max_seq_len}."
            )
        if seq_id in self:
            raise InvalidRequestError(f"Sequence {seq_id!r} is already running.")
        if not self.has_free_slot:
            raise UnavailableError(f"All {len(self.slots)} batch slots are busy; try again shortly.")
        slot = self.slots.index(None)
        constraint = self._constraint(params.grammar) if params.grammar is not None else None
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**63)
        tokens = torch.tensor(list(prompt_tokens), dtype=torch.long, device=self.device)
        seq = _Sequence(seq_id, slot, params, torch.Generator(self.device).manual_seed(seed),
                        seen=tokens.unique() if params.repetition_penalty != 1.0 else tokens[:0], pos=n,
                        stop_watch=stop_watch, constraint=constraint)
        logits = prefill(self.model, tokens, slot)
        self.slots[slot] = seq
        try:
            return self._advance(seq, logits)
        except BaseException:
            self.slots[slot] = None  # a sequence that failed holds no slot
            raise

    @torch.inference_mode()
    def step(self, on_error: Callable[[Hashable, Exception], None] | None = None) -> list[TokenResult]:
        """One token for every live sequence (one forward over cache rows 0..highest live slot).

        With `on_error`, a sequence whose sampling raises is dropped (its slot freed) and handed to
        `on_error(seq_id, exception)`, and the others still get their token; without, it raises.
        """
        live = [s for s in self.slots if s is not None]
        if not live:
            return []
        rows = max(s.slot for s in live) + 1
        tokens = [0] * rows  # free rows below `rows` decode a dummy token at position 0 of their own slot
        positions = [0] * rows
        for s in live:
            tokens[s.slot], positions[s.slot] = s.last_token, s.pos
        logits = decode_one_token(
            self.model, torch.tensor(tokens, device=self.device), torch.tensor(positions, device=self.device),
            kv_len=max(positions) + 1,
        )
        for s in live:
            s.pos += 1
        results = []
        for s in live:
            try:
                results.append(self._advance(s, logits[s.slot]))
            except Exception as e:
                if on_error is None:
                    raise
                self.slots[s.slot] = None
                on_error(s.seq_id, e)
        return results

    def cancel(self, seq_id: Hashable) -> bool:
        """Drop a sequence and free its slot; False if it is not live."""
        for i, s in enumerate(self.slots):
            if s is not None and s.seq_id == seq_id:
                self.slots[i] = None
                return True
        return False

    def _constraint(self, grammar: str) -> Any:
        from llama_core.engine.grammar import Constraint, grammar_tokenizer

        if self.tokenizer_dir is None:
            raise InvalidRequestError("This engine has no tokenizer to constrain a reply with.", field="response_format")
        return Constraint(grammar_tokenizer(self.tokenizer_dir), grammar)

    def _advance(self, seq: _Sequence, logits: Tensor) -> TokenResult:
        """Sample seq's next token from its logits (vocab,), record it, and free the slot if done."""
        p = seq.params
        if seq.constraint is not None:
            token = seq.constraint.draw(logits, lambda row: sample(row, p, seq.generator, seq.seen), p.temperature <= 0.0)
        else:
            token = sample(logits, p, seq.generator, seq.seen)
        logprob, logprobs = token_logprobs(logits, token, p.logprobs) if p.logprobs is not None else (None, None)
        seq.last_token = token
        seq.n_generated += 1
        if p.repetition_penalty != 1.0:
            seq.seen = torch.cat([seq.seen, torch.tensor([token], device=self.device)]).unique()
        stop: StopReason | None = None
        if token in p.stop_tokens:
            stop = StopReason.end_of_message if token in p.eom_tokens else StopReason.end_of_turn
        elif seq.stop_watch is not None and seq.stop_watch(token):
            stop = StopReason.end_of_turn  # the text now holds a stop sequence: generate no further
        elif (p.max_tokens and seq.n_generated >= p.max_tokens) or seq.pos + 1 >= self.max_seq_len:
            stop = StopReason.out_of_tokens  # budget spent, or prompt + generated fill the context
        if stop is not None:
            self.slots[seq.slot] = None
        return TokenResult(seq.seq_id, token, logprobs, stop, logprob)

