"""/v1 sampling on the real engine (meta-reference on the tiny checkpoint), through the `openai` package.

logprobs and top_logprobs, checked against an independent reference: transformers' LlamaForCausalLM
on the same weights, one full forward over prompt + generated tokens, log_softmax at each position.
n > 1: the choices decode together in the engine's batch, differ under a seed and repeat with it,
and are identical when greedy. A stop sequence ends generation in the workers on its token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from rpc.server import serving_spied

from llama_core.engine.messages import Cancel, Submit, Tokens
from llama_core.stack import Stack
from llama_core.tokenizer import Tokenizer
from llama_core.types import UserMessage

torch = pytest.importorskip("torch")

MODEL = "Llama3.2-1B-Instruct"  # the 3.2 route adds no dated system prompt: prompts are stable
USER = [{"role": "user", "content": "Tell me a story."}]
ATOL = 2e-4  # fp32 on both sides; the engine's CPU kernels sum in another order


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("openai-engine") / "tiny")


@pytest.fixture(scope="module")
def served(ckpt: Path) -> Iterator[tuple[str, Any, list[Any]]]:
    """(base URL, the worker group, every message the server sent to the workers)."""
    from llama_core.config import RunConfig

    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(ckpt), "max_seq_len": 256,
                 "max_batch_size": 4, "dtype": "fp32", "device": "cpu", "threads": 1}  # fmt: skip
    stack = Stack.from_config(RunConfig(name="tiny", distribution_id="local", providers={"inference": inference}))
    with serving_spied(stack) as served:
        yield served


@pytest.fixture(scope="module")
def oai(served: tuple[str, Any, list[Any]]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=served[0] + "/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def tok(ckpt: Path) -> Tokenizer:
    return Tokenizer.from_file(ckpt)


@pytest.fixture(scope="module")
def reference(ckpt: Path) -> Any:
    from engine.hf_reference import hf_model
    from engine.tiny_checkpoint import TINY_ARGS

    from llama_core.engine.checkpoint import locate, read_shard

    return hf_model(TINY_ARGS, read_shard(locate(ckpt).shards[0]))


def reference_logprobs(model: Any, prompt: list[int], generated: list[int]) -> Any:
    """log_softmax of the reference's logits at each position that predicted a generated token: (n, vocab)."""
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + generated])).logits[0, len(prompt) - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1)


def chat_prompt(tok: Tokenizer) -> list[int]:
    from llama_core.prompt.chat_format import ChatFormat

    return ChatFormat(tok).encode_dialog_prompt([UserMessage(content=USER[0]["content"])])


def ids_of(tok: Tokenizer, entries: list[Any]) -> list[int]:
    """Token ids from OpenAI's logprobs entries, by their exact bytes (tokens that read alike differ in bytes)."""
    return [tok.model.encode_single_token(bytes(e.bytes)) for e in entries]  # type: ignore[attr-defined]


# --- logprobs ------------------------------------------------------------------------------------


def test_chat_logprobs_equal_the_reference(oai: openai.OpenAI, tok: Tokenizer, reference: Any) -> None:
    args: dict[str, Any] = dict(model=MODEL, messages=USER, max_tokens=8, temperature=1.0, seed=5, logprobs=True, top_logprobs=3)
    reply = oai.chat.completions.create(**args)
    choice = reply.choices[0]
    assert choice.finish_reason == "length" and choice.logprobs is not None
    entries = choice.logprobs.content
    assert len(entries) == 8
    generated = ids_of(tok, entries)
    assert tok.decode(generated) == choice.message.content  # one entry per generated token, in order
    assert [e.token for e in entries] == [tok.id_to_piece(t) for t in generated]
    logp = reference_logprobs(reference, chat_prompt(tok), generated)
    torch.testing.assert_close(torch.tensor([e.logprob for e in entries]), logp[torch.arange(8), generated], atol=ATOL, rtol=0)
    top = torch.topk(logp, 3)
    for entry, ids, values in zip(entries, top.indices.tolist(), top.values):
        assert [t.bytes for t in entry.top_logprobs] == [list(tok.token_bytes(i)) for i in ids]
        torch.testing.assert_close(torch.tensor([t.logprob for t in entry.top_logprobs]), values, atol=ATOL, rtol=0)
    assert generated != torch.argmax(logp, dim=-1).tolist()  # sampled, so the chosen token is not always the top one

    # Streamed: the same seed, the same entries, spread over the chunks (each chunk's with its text).
    chunks = list(oai.chat.completions.create(**args, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in entries]

    # logprobs without top_logprobs: each token's own, no alternatives.
    plain = oai.chat.completions.create(**{**args, "top_logprobs": None}).choices[0].logprobs.content
    assert [(e.token, e.logprob, e.top_logprobs) for e in plain] == [(e.token, e.logprob, []) for e in entries]
    assert oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=2).choices[0].logprobs is None


def test_completion_logprobs_equal_the_reference(oai: openai.OpenAI, tok: Tokenizer, reference: Any) -> None:
    prompt = "Once upon a time"
    reply = oai.completions.create(model=MODEL, prompt=prompt, max_tokens=6, logprobs=2)
    choice = reply.choices[0]
    lp = choice.logprobs
    assert lp is not None and len(lp.tokens) == 6
    from engine.hf_reference import hf_greedy

    prompt_ids = tok.encode(prompt, bos=True)
    ids = hf_greedy(reference, prompt_ids, 6)  # no temperature: greedy, as the reference's own generate
    logp = reference_logprobs(reference, prompt_ids, ids)
    assert lp.tokens == [tok.id_to_piece(t) for t in ids]
    torch.testing.assert_close(torch.tensor(lp.token_logprobs), logp[torch.arange(6), ids], atol=ATOL, rtol=0)
    top = torch.topk(logp, 2)
    for got, want_ids, want in zip(lp.top_logprobs, top.indices.tolist(), top.values.tolist()):
        assert list(got) == [tok.id_to_piece(i) for i in want_ids]  # greedy: the generated token is the top one
        torch.testing.assert_close(torch.tensor(list(got.values())), torch.tensor(want), atol=ATOL, rtol=0)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    assert choice.text == tok.decode(ids)

    chunks = list(oai.completions.create(model=MODEL, prompt=prompt, max_tokens=6, logprobs=2, stream=True))
    assert [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens] == lp.tokens
    assert [o for c in chunks if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset] == lp.text_offset


# --- n > 1 ---------------------------------------------------------------------------------------


def spy_received(group: Any) -> tuple[list[Any], Any]:
    """Record what the workers send back; returns (the records, a function that stops recording)."""
    received: list[Any] = []
    dispatch = group._dispatch
    group._dispatch = lambda msg: (received.append(msg), dispatch(msg))[-1]
    return received, lambda: setattr(group, "_dispatch", dispatch)


def test_n_choices_run_together_differ_with_a_seed_and_repeat(oai: openai.OpenAI, served: tuple[str, Any, list[Any]]) -> None:
    _, group, sent = served
    args: dict[str, Any] = dict(model=MODEL, messages=USER, max_tokens=10, temperature=1.0, seed=42)
    before = len(sent)
    received, stop_spying = spy_received(group)
    try:
        reply = oai.chat.completions.create(**args, n=3)
    finally:
        stop_spying()
    texts = [c.message.content for c in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1, 2] and len(set(texts)) == 3
    submits = [m for m in sent[before:] if isinstance(m, Submit)]
    assert len(submits) == 3 and len({m.params.seed for m in submits}) == 3
    # One batched step made a token for every choice: they ran as concurrent sequences.
    ids = {m.seq_id for m in submits}
    assert any({out.seq_id for out in m.items} == ids for m in received if isinstance(m, Tokens))

    again = oai.chat.completions.create(**args, n=3)
    assert [c.message.content for c in again.choices] == texts
    assert oai.chat.completions.create(**args).choices[0].message.content == texts[0]  # choice 0 is the request's own

    greedy = oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=10, n=2)
    assert greedy.choices[0].message.content == greedy.choices[1].message.content

    # Streamed: the chunks of the choices interleave, each with its index; each adds up to its choice.
    chunks = list(oai.chat.completions.create(**args, n=3, stream=True))
    order = [c.choices[0].index for c in chunks]
    assert order[:3] == [0, 1, 2] and set(order) == {0, 1, 2}
    for i, text in enumerate(texts):
        mine = [c.choices[0] for c in chunks if c.choices[0].index == i]
        assert "".join(c.delta.content or "" for c in mine).strip(" ") == text  # the whole reply is trimmed
        assert [c.finish_reason for c in mine][-1] == "length"


def test_n_completions(oai: openai.OpenAI) -> None:
    args: dict[str, Any] = dict(model=MODEL, prompt="Once upon a time", max_tokens=5, temperature=1.0, seed=9)
    reply = oai.completions.create(**args, n=2)
    texts = [c.text for c in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1] and texts[0] != texts[1]
    assert oai.completions.create(**args).choices[0].text == texts[0]
    chunks = list(oai.completions.create(**args, n=2, stream=True))
    assert ["".join(c.choices[0].text for c in chunks if c.choices[0].index == i) for i in (0, 1)] == texts


def test_n_with_a_bad_value_is_a_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER, n=129)
    assert caught.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=USER, logprobs=True, top_logprobs=21)
    assert caught.value.body["param"] == "top_logprobs"  # type: ignore[index]


# --- stop sequences ------------------------------------------------------------------------------


def test_a_stop_sequence_ends_a_v1_completion_in_the_workers(oai: openai.OpenAI, served: tuple[str, Any, list[Any]]) -> None:
    _, group, sent = served
    args: dict[str, Any] = dict(model=MODEL, prompt="Once upon a time", max_tokens=24, logprobs=0)
    full = oai.completions.create(**args).choices[0]
    assert full.finish_reason == "length" and len(full.logprobs.tokens) == 24
    text = full.text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert len(stop) == 3 and text.find(stop) > 0

    before = len(sent)
    received, stop_spying = spy_received(group)
    try:
        cut = oai.completions.create(**args, stop=[stop]).choices[0]
    finally:
        stop_spying()
    assert (cut.text, cut.finish_reason) == (text[: text.find(stop)], "stop")
    # The token that completed the stop sequence is the n-th; the entries join to the text (a token
    # across the text's end keeps the part inside it; those inside the stop sequence are left out).
    n = next(k for k in range(1, 25) if stop in "".join(full.logprobs.tokens[:k]))
    assert n < 24 and "".join(cut.logprobs.tokens) == cut.text
    kept = len(cut.logprobs.tokens)
    assert cut.logprobs.tokens[: kept - 1] == full.logprobs.tokens[: kept - 1] and kept <= n
    # The workers made exactly those n tokens and ended the sequence themselves: nothing to cancel.
    (submit,) = [m for m in sent[before:] if isinstance(m, Submit)]
    made = [out for m in received if isinstance(m, Tokens) for out in m.items if out.seq_id == submit.seq_id]
    assert [out.stop_reason for out in made] == [None] * (n - 1) + ["end_of_turn"]
    assert not any(isinstance(m, Cancel) for m in sent[before:])

    # Streamed, no piece of the stop sequence is ever sent.
    lines = httpx.post(f"{oai.base_url}completions", json={**args, "stop": [stop], "stream": True}, timeout=120).text
    pieces = [json.loads(line.removeprefix("data: "))["choices"][0]["text"] for line in lines.split("\n\n") if line.startswith("data: {")]
    assert "".join(pieces) == cut.text


# --- logprobs join to the text ---------------------------------------------------------------------


def joined_bytes(entries: list[Any]) -> bytes:
    return b"".join(bytes(e.bytes) for e in entries)


def chat_entries(oai: openai.OpenAI, args: dict[str, Any]) -> tuple[str, str, list[Any], str, list[Any]]:
    """(finish_reason, content, its entries) whole, then (content, entries) streamed."""
    choice = oai.chat.completions.create(**args).choices[0]
    chunks = [c.choices[0] for c in oai.chat.completions.create(**args, stream=True) if c.choices]
    streamed = [e for c in chunks if c.logprobs for e in c.logprobs.content]
    text = "".join(c.delta.content or "" for c in chunks)
    return choice.finish_reason, choice.message.content, choice.logprobs.content, text, streamed


def test_chat_logprobs_leave_out_the_end_of_turn_token(oai: openai.OpenAI) -> None:
    """A schema of one value: the model writes it, then only <|eot_id|> is left; its entry is not in the text."""
    schema = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"enum": ["yes"]}, "strict": True}}
    args = dict(model=MODEL, messages=USER, max_tokens=20, logprobs=True, response_format=schema)
    reason, content, entries, text, streamed = chat_entries(oai, args)
    assert (reason, content, text) == ("stop", '"yes"', '"yes"')
    assert joined_bytes(entries) == joined_bytes(streamed) == b'"yes"'
    assert "<|eot_id|>" not in [e.token for e in entries + streamed]


def test_logprobs_leave_out_a_stop_sequences_tokens(oai: openai.OpenAI) -> None:
    free = oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=12, logprobs=True).choices[0]
    stop = free.message.content[5:8]  # three characters inside the greedy reply: its tokens are cut there
    args = dict(model=MODEL, messages=USER, max_tokens=12, logprobs=True, stop=[stop])
    reason, content, entries, text, streamed = chat_entries(oai, args)
    assert reason == "stop" and content == text == free.message.content[: free.message.content.index(stop)]
    assert joined_bytes(entries) == joined_bytes(streamed) == content.encode()

    prompt = "Once upon a time"
    free_text = oai.completions.create(model=MODEL, prompt=prompt, max_tokens=12).choices[0].text
    stop = free_text[5:8]
    whole = oai.completions.create(model=MODEL, prompt=prompt, max_tokens=12, logprobs=1, stop=[stop]).choices[0]
    chunks = [c.choices[0] for c in oai.completions.create(model=MODEL, prompt=prompt, max_tokens=12, logprobs=1, stop=[stop], stream=True)]
    assert whole.finish_reason == "stop" and whole.text == "".join(c.text for c in chunks) == free_text[: free_text.index(stop)]
    assert "".join(whole.logprobs.tokens) == whole.text
    assert "".join(t for c in chunks if c.logprobs for t in c.logprobs.tokens) == whole.text
