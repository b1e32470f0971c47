"""Usage, [DONE] and max_tokens against the context (issue 16, items 5, 6 and 8), on the real engine.

The demo model (SmolLM2-135M-Instruct) served over HTTP, driven by the `openai` package and raw
HTTP. Token counts are checked against an independent count: the prompt rendered and tokenized by
transformers (the checkpoint's tokenizer.json and chat template), the answer's text tokenized again
(plus the stop token the model ended with).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from rpc.server import running_server

pytest.importorskip("torch")

MODEL = "SmolLM2-135M-Instruct"
MAX_SEQ_LEN = 256
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def url(demo_ckpt: Path) -> Iterator[str]:
    from llama_core.config import RunConfig
    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(demo_ckpt), "max_seq_len": MAX_SEQ_LEN,
                 "max_batch_size": 2, "dtype": "fp32", "device": "cpu", "threads": 1}  # fmt: skip
    stack = Stack.from_config(RunConfig(name="demo", distribution_id="local", providers={"inference": inference}))
    with running_server(lambda: create_app(stack), timeout=300, stack=stack) as base:
        yield base


@pytest.fixture(scope="module")
def hf_tokenizer(demo_ckpt: Path) -> Any:
    """The checkpoint's tokenizer and chat template, as transformers reads them (not our code)."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(demo_ckpt / "tokenizer.json"))
    tokenizer.chat_template = (demo_ckpt / "chat_template.jinja").read_text()
    return tokenizer


@pytest.fixture
def oai(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def prompt_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"])


def text_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text)["input_ids"])


def sse(text: str) -> list[str]:
    """The data of each event of a raw SSE body (each one line and a blank one)."""
    parts = text.split("\n\n")
    assert parts[-1] == "" and all(p.startswith("data: ") for p in parts[:-1])
    return [p.removeprefix("data: ") for p in parts[:-1]]


# --- usage (item 5) -------------------------------------------------------------------------------


def test_chat_usage_is_the_engines_count(oai: openai.OpenAI, hf_tokenizer: Any) -> None:
    reply = oai.chat.completions.create(model=MODEL, messages=QUESTION, temperature=0)  # type: ignore[arg-type]
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == (ANSWER, "stop")
    expected_prompt = prompt_tokens(hf_tokenizer, QUESTION)
    expected_completion = text_tokens(hf_tokenizer, ANSWER) + 1  # and <|im_end|>, which ended the turn
    assert (expected_prompt, expected_completion) == (37, 8)
    assert reply.usage is not None
    assert reply.usage.model_dump(exclude_none=True) == {"prompt_tokens": 37, "completion_tokens": 8, "total_tokens": 45}


def test_completion_usage_counts_the_budget_spent(oai: openai.OpenAI, hf_tokenizer: Any) -> None:
    reply = oai.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=3, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert text_tokens(hf_tokenizer, "The capital of France is") == 5 and text_tokens(hf_tokenizer, choice.text) == 3
    assert reply.usage is not None
    assert reply.usage.model_dump(exclude_none=True) == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_include_usage_adds_a_last_chunk(oai: openai.OpenAI, url: str) -> None:
    stream = oai.chat.completions.create(
        model=MODEL, messages=QUESTION, temperature=0, stream=True, stream_options={"include_usage": True}  # type: ignore[arg-type]
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    *content, last = chunks
    assert all(c.usage is None and len(c.choices) == 1 for c in content)
    assert (last.choices, last.usage and last.usage.model_dump(exclude_none=True)) == (
        [], {"prompt_tokens": 37, "completion_tokens": 8, "total_tokens": 45}
    )
    # The same on the wire: `usage: null` on every chunk, the usage chunk, then [DONE].
    body = {"model": MODEL, "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
    events = sse(httpx.post(url + "/v1/chat/completions", json=body, timeout=120).text)
    assert events[-1] == "[DONE]"
    chunks_json = [json.loads(e) for e in events[:-1]]
    assert all(c["usage"] is None for c in chunks_json[:-1])
    assert chunks_json[-2]["choices"][0]["finish_reason"] == "stop"
    assert {k: chunks_json[-1][k] for k in ("object", "choices", "usage")} == {
        "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 37, "completion_tokens": 8, "total_tokens": 45},
    }  # fmt: skip
    assert len({c["id"] for c in chunks_json}) == 1


def test_completion_stream_usage(url: str) -> None:
    body = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}
    events = sse(httpx.post(url + "/v1/completions", json=body, timeout=120).text)
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert (last["object"], last["choices"], last["usage"]) == (
        "text_completion", [], {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    )
    assert [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-2]][-1] == "length"


def test_n_choices_count_the_prompt_once_and_every_completion(oai: openai.OpenAI, url: str) -> None:
    reply = oai.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=3, temperature=0, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2] and all(c.finish_reason == "length" for c in reply.choices)
    assert reply.usage is not None
    assert reply.usage.model_dump(exclude_none=True) == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    # Streamed: one usage chunk for all three choices, after every choice finished.
    body = {"model": MODEL, "messages": QUESTION, "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    events = sse(httpx.post(url + "/v1/chat/completions", json=body, timeout=120).text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["usage"] for c in chunks if c["usage"] is not None] == [{"prompt_tokens": 37, "completion_tokens": 16, "total_tokens": 53}]
    assert chunks[-1]["choices"] == [] and sorted(c["choices"][0]["index"] for c in chunks[:-1] if c["choices"][0]["finish_reason"]) == [0, 1]


def test_without_include_usage_chunks_have_no_usage(url: str) -> None:
    body = {"model": MODEL, "messages": QUESTION, "stream": True}
    events = sse(httpx.post(url + "/v1/chat/completions", json=body, timeout=120).text)
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) and len(json.loads(e)["choices"]) == 1 for e in events[:-1])


def test_native_responses_carry_metrics(url: str) -> None:
    """llama-stack's `metrics` on the native routes: on the response, and on a stream's last chunk."""
    metrics = [{"metric": "prompt_tokens", "value": 37, "unit": None}, {"metric": "completion_tokens", "value": 8, "unit": None},
               {"metric": "total_tokens", "value": 45, "unit": None}]  # fmt: skip
    body = {"model": MODEL, "messages": QUESTION}
    reply = httpx.post(url + "/inference/chat_completion", json=body, timeout=120).json()
    assert reply == {
        "completion_message": {"role": "assistant", "content": ANSWER, "stop_reason": "end_of_turn", "tool_calls": []},
        "logprobs": None,
        "metrics": metrics,
    }
    events = [json.loads(e) for e in sse(httpx.post(url + "/inference/chat_completion", json={**body, "stream": True}, timeout=120).text)]
    assert events[-1] == {"event": {"event_type": "complete", "delta": "", "logprobs": None, "stop_reason": "end_of_turn"}, "metrics": metrics}
    assert all("metrics" not in e for e in events[:-1])


# --- [DONE] (item 6) ------------------------------------------------------------------------------


def test_done_ends_v1_streams_but_not_llama_stacks(url: str) -> None:
    chat = {"model": MODEL, "messages": QUESTION, "stream": True, "max_tokens": 2}
    for path, body in (("/v1/chat/completions", chat), ("/v1/completions", {"model": MODEL, "prompt": "Hi", "stream": True, "max_tokens": 2})):
        events = sse(httpx.post(url + path, json=body, timeout=120).text)
        assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
        assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
    assert "[DONE]" not in httpx.post(url + "/v1/openai/v1/chat/completions", json=chat, timeout=120).text
    native = {"model": MODEL, "messages": QUESTION, "stream": True, "sampling_params": {"max_tokens": 2}}
    assert "[DONE]" not in httpx.post(url + "/inference/chat_completion", json=native, timeout=120).text


# --- max_tokens beyond the context (item 8) -----------------------------------------------------------


def test_max_tokens_that_cannot_fit_is_a_400(oai: openai.OpenAI, url: str) -> None:
    room = MAX_SEQ_LEN - 37
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=room + 1)  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "message": "This model's maximum context length is 256 tokens. However, you requested 257 tokens "
        "(37 in the messages, 220 in the completion). Please reduce the length of the messages or completion.",
        "type": "invalid_request", "param": "max_tokens", "code": 400,
    }  # fmt: skip
    with pytest.raises(openai.BadRequestError) as caught:  # max_completion_tokens is the same budget
        oai.chat.completions.create(model=MODEL, messages=QUESTION, max_completion_tokens=room + 1, stream=True)  # type: ignore[arg-type]
    assert caught.value.status_code == 400 and "(37 in the messages, 220 in the completion)" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        oai.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=MAX_SEQ_LEN - 4)
    assert caught.value.body["message"] == (  # type: ignore[index]
        "This model's maximum context length is 256 tokens. However, you requested 257 tokens "
        "(5 in the prompt, 252 in the completion). Please reduce the length of the prompt or completion."
    )
    fits = oai.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=room, temperature=0)  # type: ignore[arg-type]
    assert fits.choices[0].message.content == ANSWER
    # The native route keeps the original's meaning: a cap, generation ends with the context.
    native = {"model": MODEL, "messages": QUESTION, "sampling_params": {"max_tokens": room + 1}}
    reply = httpx.post(url + "/inference/chat_completion", json=native, timeout=120)
    assert (reply.status_code, reply.json()["completion_message"]["content"]) == (200, ANSWER)
