"""Generation on the tiny checkpoint: pinned greedy ids, transformers' generate, continuous batching,
stops, sampling, logprobs, and the pure sampling functions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from llama_core.engine.checkpoint import load_model, locate, read_shard
from llama_core.engine.generation import Batch, TokenResult, apply_repetition_penalty, logits_to_probs, token_logprobs
from llama_core.engine.messages import GenParams
from llama_core.errors import InvalidRequestError, UnavailableError
from llama_core.types import StopReason

from engine.hf_reference import hf_greedy, hf_model
from engine.solo import generate

PROMPT = [128000, 791, 6864, 315, 9822, 374]  # <|begin_of_text|>The capital of France is
HELLO = [128000, 9906, 1917]  # <|begin_of_text|>Hello world
LIKE = [128000, 40, 1093, 311, 8343]  # <|begin_of_text|>I like to eat
# Greedy continuation of PROMPT by the seed-0 tiny checkpoint (random weights, so not English).
TINY_GREEDY = [40052, 28923, 24733, 15087, 19829, 40128, 10460, 122968, 74799, 35432,
               30013, 71733, 112214, 10803, 122821, 108569, 58560, 45695, 90573, 71602]


@pytest.fixture(scope="module")
def tiny(tiny_ckpt: Path):
    return load_model(tiny_ckpt, max_seq_len=64, max_batch_size=4, dtype="fp32", device="cpu")[0]


def tokens(model, prompt: list[int], **params) -> list[int]:
    return [r.token for r in generate(model, prompt, GenParams(**params))]


def test_pinned_greedy_ids(tiny) -> None:
    assert tokens(tiny, PROMPT, max_tokens=20) == TINY_GREEDY


def test_greedy_equals_transformers_generate(tiny, tiny_ckpt: Path) -> None:
    reference = hf_model(tiny.args, read_shard(locate(tiny_ckpt).shards[0]))
    for prompt in (PROMPT, HELLO):
        assert tokens(tiny, prompt, max_tokens=12) == hf_greedy(reference, prompt, 12)


def run_staggered(batch: Batch, prompts: dict[str, list[int]], params: GenParams) -> dict[str, list[int]]:
    """Each prompt joins after the previous one has decoded a step: continuous batching."""
    out: dict[str, list[int]] = {k: [] for k in prompts}
    for seq_id, prompt in prompts.items():
        out[seq_id].append(batch.add(seq_id, prompt, params).token)
        for r in batch.step():
            out[r.seq_id].append(r.token)
    while len(batch):
        for r in batch.step():
            out[r.seq_id].append(r.token)
    return out


@pytest.mark.parametrize(
    "params",
    [GenParams(max_tokens=15), GenParams(max_tokens=15, temperature=0.9, top_p=0.9, top_k=50, seed=7)],
    ids=["greedy", "seeded-sampling"],
)
def test_batched_equals_solo(tiny, params: GenParams) -> None:
    prompts = {"a": PROMPT, "b": HELLO, "c": LIKE}
    batched = run_staggered(Batch(tiny), prompts, params)
    for seq_id, prompt in prompts.items():
        assert batched[seq_id] == [r.token for r in generate(tiny, prompt, params)], seq_id


def test_slot_reuse_after_finish_and_cancel(tiny) -> None:
    batch = Batch(tiny)
    batch.add("a", PROMPT, GenParams(max_tokens=1))  # finishes at once, freeing slot 0
    batch.add("b", HELLO, GenParams(max_tokens=30))
    batch.add("c", LIKE, GenParams(max_tokens=30))
    assert [s.seq_id if s else None for s in batch.slots] == ["b", "c", None, None]
    assert batch.cancel("b") and not batch.cancel("b")
    first = batch.add("d", PROMPT, GenParams(max_tokens=20))  # into slot 0, over b's stale cache
    assert batch.slots[0] is not None and batch.slots[0].seq_id == "d"
    out = [first.token]
    while "d" in batch:
        out += [r.token for r in batch.step() if r.seq_id == "d"]
    assert out == TINY_GREEDY


def test_stop_tokens_and_reasons(tiny) -> None:
    eot, eom = TINY_GREEDY[3], TINY_GREEDY[5]
    results = list(generate(tiny, PROMPT, GenParams(stop_tokens=frozenset({eot}))))
    assert [r.token for r in results] == TINY_GREEDY[:4] and results[-1].stop_reason is StopReason.end_of_turn
    assert [r.finished for r in results] == [False, False, False, True]
    results = list(generate(tiny, PROMPT, GenParams(stop_tokens=frozenset({eom}), eom_tokens=frozenset({eom}))))
    assert len(results) == 6 and results[-1].stop_reason is StopReason.end_of_message
    results = list(generate(tiny, PROMPT, GenParams(max_tokens=3)))
    assert len(results) == 3 and results[-1].stop_reason is StopReason.out_of_tokens


def test_context_length_caps_generation(tiny_ckpt: Path) -> None:
    model = load_model(tiny_ckpt, max_seq_len=10, max_batch_size=1)[0]
    results = list(generate(model, PROMPT, GenParams()))  # max_tokens 0: up to the context
    assert [r.token for r in results] == TINY_GREEDY[:4]  # 6 prompt + 4 new = 10 positions
    assert results[-1].stop_reason is StopReason.out_of_tokens
    with pytest.raises(InvalidRequestError, match="The prompt has 10 tokens; this model's context"):
        list(generate(model, PROMPT + [1, 2, 3, 4], GenParams()))
    with pytest.raises(InvalidRequestError, match="empty"):
        list(generate(model, [], GenParams()))


def test_full_batch_is_unavailable(tiny) -> None:
    batch = Batch(tiny)
    for i in range(4):
        batch.add(i, HELLO, GenParams(max_tokens=5))
    with pytest.raises(UnavailableError, match="All 4 batch slots are busy"):
        batch.add(9, HELLO, GenParams())
    batch.cancel(3)
    with pytest.raises(InvalidRequestError, match="Sequence 0 is already running"):
        batch.add(0, HELLO, GenParams())


def test_seed_reproducible(tiny) -> None:
    params = GenParams(max_tokens=12, temperature=1.0, seed=123)
    first = tokens(tiny, PROMPT, max_tokens=12, temperature=1.0, seed=123)
    assert first == [r.token for r in generate(tiny, PROMPT, params)]
    assert first != tokens(tiny, PROMPT, max_tokens=12, temperature=1.0, seed=124)
    assert first != TINY_GREEDY[:12]


def test_logprobs(tiny) -> None:
    results = list(generate(tiny, PROMPT, GenParams(max_tokens=3, logprobs=5)))
    for r, expected in zip(results, TINY_GREEDY):
        assert r.logprobs is not None and len(r.logprobs) == 5
        ids, values = list(r.logprobs), list(r.logprobs.values())
        assert ids[0] == expected and values == sorted(values, reverse=True) and values[0] < 0
        assert r.logprob == values[0]  # greedy: the generated token is the likeliest
    chosen_only = list(generate(tiny, PROMPT, GenParams(max_tokens=3, logprobs=0)))
    assert [(r.logprob, r.logprobs) for r in chosen_only] == [(r.logprob, {}) for r in results]
    assert all(r.logprob is None and r.logprobs is None for r in generate(tiny, PROMPT, GenParams(max_tokens=3)))


def test_logprobs_equal_transformers_log_softmax(tiny, tiny_ckpt: Path) -> None:
    # The independent reference: transformers' LlamaForCausalLM on the same weights, one full forward
    # over prompt + sampled tokens, log_softmax at each position that predicted a generated token.
    params = GenParams(max_tokens=8, temperature=1.0, seed=11, logprobs=3)
    results = list(generate(tiny, PROMPT, params))
    ids = [r.token for r in results]
    reference = hf_model(tiny.args, read_shard(locate(tiny_ckpt).shards[0]))
    with torch.inference_mode():
        logits = reference(torch.tensor([PROMPT + ids])).logits[0, len(PROMPT) - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    torch.testing.assert_close(torch.tensor([r.logprob for r in results]), logp[torch.arange(len(ids)), ids], atol=2e-4, rtol=0)
    top = torch.topk(logp, 3)
    assert [list(r.logprobs) for r in results] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor([list(r.logprobs.values()) for r in results]), top.values, atol=2e-4, rtol=0)
    assert ids != TINY_GREEDY[:8]  # sampled: some generated tokens are not the likeliest


def counting_watch(stop_after: int) -> tuple[list[int], Callable[[int], bool]]:
    """A stop watch that says `stop` once it has seen `stop_after` ids (records what it was fed)."""
    fed: list[int] = []

    def watch(token: int) -> bool:
        fed.append(token)
        return len(fed) >= stop_after

    return fed, watch


def test_a_stop_watch_ends_the_sequence_on_its_token(tiny) -> None:
    batch = Batch(tiny)
    fed, watch = counting_watch(5)
    out = [batch.add("a", PROMPT, GenParams(max_tokens=20), stop_watch=watch)]
    batch.add("b", HELLO, GenParams(max_tokens=20))
    while "a" in batch:
        out += [r for r in batch.step() if r.seq_id == "a"]
    assert [r.token for r in out] == fed == TINY_GREEDY[:5]  # no step past the stop
    assert [r.stop_reason for r in out] == [None] * 4 + [StopReason.end_of_turn]
    assert [s.seq_id if s else None for s in batch.slots] == [None, "b", None, None]  # its slot is free
    # A stop token comes first (the watch never sees it), max_tokens after the watch has had its say.
    fed, watch = counting_watch(3)
    results = list(generate_watched(tiny, PROMPT, GenParams(max_tokens=3, stop_tokens=frozenset({TINY_GREEDY[1]})), watch))
    assert [r.token for r in results] == TINY_GREEDY[:2] and fed == TINY_GREEDY[:1]
    fed, watch = counting_watch(3)
    results = list(generate_watched(tiny, PROMPT, GenParams(max_tokens=3), watch))
    assert results[-1].stop_reason is StopReason.end_of_turn and len(results) == 3


def generate_watched(model, prompt: list[int], params: GenParams, watch: Callable[[int], bool]) -> list[TokenResult]:
    batch = Batch(model)
    out = [batch.add("solo", prompt, params, stop_watch=watch)]
    while not out[-1].finished:
        out += batch.step()
    return out


def test_repetition_penalty_changes_greedy(tiny) -> None:
    out = tokens(tiny, PROMPT, max_tokens=20, repetition_penalty=1e6)
    assert len(set(out)) == 20 and not set(out) & set(PROMPT)


def test_logits_to_probs_filters() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    torch.testing.assert_close(logits_to_probs(logits, 1.0), torch.softmax(logits, -1))
    assert logits_to_probs(logits, 1.0, top_k=1).tolist() == [1.0, 0.0, 0.0, 0.0]
    two = logits_to_probs(logits, 1.0, top_k=2)
    torch.testing.assert_close(two, torch.tensor([0.7310586, 0.2689414, 0.0, 0.0]))
    # softmax is [0.644, 0.237, 0.087, 0.032]: p=0.7 keeps the first two ids, p=0.5 only the first
    torch.testing.assert_close(logits_to_probs(logits, 1.0, top_p=0.7), two)
    assert logits_to_probs(logits, 1.0, top_p=0.5).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert logits_to_probs(logits, 1e-9).argmax().item() == 0  # temperature ~0 is greedy


def test_repetition_penalty_rule() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = apply_repetition_penalty(logits, torch.tensor([0, 1]), 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]
    assert apply_repetition_penalty(logits, torch.tensor([0]), 1.0) is logits


def test_token_logprobs_pure() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, 0.0])
    chosen, lp = token_logprobs(logits, 3, 2)
    assert list(lp) == [1, 2]
    expected = torch.log_softmax(logits, -1)
    torch.testing.assert_close(torch.tensor(list(lp.values())), expected[[1, 2]])
    assert chosen == float(expected[3])
    assert token_logprobs(logits, 0, 0) == (float(expected[0]), {})


def test_chunked_prefill_gives_the_same_tokens(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    from llama_core.engine import generation

    monkeypatch.setattr(generation, "PREFILL_CHUNK", 4)  # the 6-token prompt goes in as 4 + 2
    assert tokens(tiny, PROMPT, max_tokens=20) == TINY_GREEDY


def test_fp16_on_cpu_decodes_as_transformers_does_in_fp16(tiny_ckpt: Path) -> None:
    """fp16 (load_model's, not the CLI's) takes torch's decode path on CPU: the native attention holds
    float32 or bfloat16 caches only (it raised on fp16's). Its greedy ids are transformers' in fp16."""
    model = load_model(tiny_ckpt, max_seq_len=64, max_batch_size=1, dtype="fp16", device="cpu")[0]
    reference = hf_model(model.args, read_shard(locate(tiny_ckpt).shards[0])).to(torch.float16)
    assert tokens(model, PROMPT, max_tokens=8) == hf_greedy(reference, PROMPT, 8)
