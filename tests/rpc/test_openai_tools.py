"""Issue #16's tool-calling failures, each as a client meets it: the official openai SDK (and the native
routes over HTTP) against a real server whose real engine writes the issue's exact texts
(tests/rpc/tool_checkpoint.py). A reply is content or tool calls, never both, streamed or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import openai
import pytest

from rpc.tool_checkpoint import LIST_PROSE, MAX_SEQ_LEN, MODEL, PROSE, TRUNCATED, openai_body, truncated_tokens

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tool_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The trained tiny tool-call model served by the `local` distribution over HTTP."""
    pytest.importorskip("torch")
    import tomli_w
    from rpc.server import running_server
    from rpc.tool_checkpoint import train_tool_model

    from llama_core.config import load_run_config
    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    root = tmp_path_factory.mktemp("tool-model")
    ckpt = train_tool_model(root / MODEL)
    inference = {"provider_id": "meta-reference", "model": MODEL, "checkpoint_dir": str(ckpt), "max_seq_len": MAX_SEQ_LEN,
                 "max_batch_size": 4, "device": "cpu", "dtype": "fp32", "threads": 1}  # fmt: skip
    config = root / "tools.toml"
    config.write_text(tomli_w.dumps({"name": "tools", "distribution_id": "local", "providers": {"inference": inference}}))
    stack = Stack.from_config(load_run_config(config))
    with running_server(lambda: create_app(stack), timeout=180, stack=stack) as url:
        warm = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 1}}
        # The first request may build the CPU kernels (minutes, when another checkout's build replaced them).
        assert httpx.post(url + "/inference/chat_completion", json=warm, timeout=600).status_code == 200
        yield url


@pytest.fixture(scope="module")
def oai(tool_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=tool_url + "/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def cut_at() -> int:
    """max_tokens that ends the `truncated` lesson right after `{"ci`."""
    from engine.tiny_checkpoint import llama3_tokenizer_model

    from llama_core.tokenizer import Tokenizer

    return truncated_tokens(Tokenizer.from_file(llama3_tokenizer_model()))


def reply(oai: openai.OpenAI, key: str, **fields: Any) -> tuple[str | None, list[tuple[str, str]] | None, str]:
    """(content, [(name, arguments)] or None, finish_reason) of a non-streamed answer."""
    choice = oai.chat.completions.create(**openai_body(key, **fields)).choices[0]
    calls = choice.message.tool_calls
    named = [(c.function.name, c.function.arguments) for c in calls] if calls is not None else None
    return choice.message.content, named, choice.finish_reason


def streamed(oai: openai.OpenAI, key: str, **fields: Any) -> tuple[list[str], list[tuple[str, str]], list[str | None]]:
    """(each non-empty content delta, [(name, arguments)] per call, each finish_reason) of a streamed answer."""
    contents, calls, finishes = [], [], []
    for chunk in oai.chat.completions.create(**openai_body(key, stream=True, **fields)):
        if not chunk.choices:  # a usage chunk
            continue
        choice = chunk.choices[0]
        if choice.delta.content:
            contents.append(choice.delta.content)
        for call in choice.delta.tool_calls or []:
            calls.append((call.function.name, call.function.arguments))
        finishes.append(choice.finish_reason)
    return contents, calls, finishes


def native(url: str, key: str, stream: bool = False, **fields: Any) -> httpx.Response:
    """Lesson `key` on /inference/chat_completion: the same tool, native form, no tool_prompt_format."""
    from rpc.tool_checkpoint import QUESTIONS

    tool = {"tool_name": "get_weather", "parameters": {"city": {"param_type": "string", "required": False}}}
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTIONS[key]}], "tools": [tool], "stream": stream, **fields}
    return httpx.post(url + "/inference/chat_completion", json=body, timeout=120)


def events(response: httpx.Response) -> list[tuple[str, Any, str | None]]:
    """(event type, delta, stop reason) per SSE event; a tool-call delta as (status, content)."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.text
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            event = msgspec.json.decode(line[6:])["event"]
            delta = event["delta"]
            if isinstance(delta, dict):
                content = delta["content"]
                delta = (delta["parse_status"], content if isinstance(content, str) else (content["tool_name"], content["arguments"]))
            out.append((event["event_type"], delta, event["stop_reason"]))
    return out


PARIS = ("get_weather", '{"city": "Paris"}')


# 1. Tools on Llama 3.2 were refused (400: "take custom tools in python_list format, not json").


def test_tools_on_llama_3_2_are_served(oai: openai.OpenAI, tool_url: str) -> None:
    assert reply(oai, "json") == (None, [PARIS], "tool_calls")
    answer = native(tool_url, "json")
    assert answer.status_code == 200, answer.text
    message = answer.json()["completion_message"]
    assert (message["content"], message["stop_reason"]) == ("", "end_of_turn")
    assert [(c["tool_name"], c["arguments"]) for c in message["tool_calls"]] == [("get_weather", {"city": "Paris"})]


# 2. A JSON tool call without <|python_tag|> leaked into the streamed text.


def test_a_json_call_streams_as_a_call_only(oai: openai.OpenAI) -> None:
    assert streamed(oai, "json") == ([], [PARIS], [None, None, "tool_calls"])


def test_a_json_call_cut_by_a_stop_sequence_is_a_call_only(oai: openai.OpenAI) -> None:
    assert reply(oai, "json", stop=["Observation:"]) == (None, [PARIS], "tool_calls")
    assert streamed(oai, "json", stop=["Observation:"]) == ([], [PARIS], [None, None, "tool_calls"])


def test_the_native_stream_holds_a_json_call_back(tool_url: str) -> None:
    assert events(native(tool_url, "json", stream=True)) == [
        ("start", "", None),
        ("progress", ("success", ("get_weather", {"city": "Paris"})), "end_of_turn"),
        ("complete", "", "end_of_turn"),
    ]


def test_prose_streams_once_it_cannot_be_a_call(oai: openai.OpenAI) -> None:
    contents, calls, finishes = streamed(oai, "prose")
    assert ("".join(contents), calls, finishes[-1]) == (PROSE, [], "stop")
    assert contents[0] == "Hello" and len(contents) > 2  # held only until "Hello" ruled a call out
    contents, calls, finishes = streamed(oai, "list_prose")
    assert (contents, calls, finishes[-1]) == ([LIST_PROSE], [], "stop")  # "[" might have opened a call: held whole
    assert reply(oai, "list_prose") == (LIST_PROSE, None, "stop")


# 3. Hyphenated tool names were lost.


def test_a_hyphenated_tool_name_is_called(oai: openai.OpenAI) -> None:
    assert reply(oai, "hyphen") == (None, [("get-weather", '{"city": "Paris"}')], "tool_calls")
    assert streamed(oai, "hyphen") == ([], [("get-weather", '{"city": "Paris"}')], [None, None, "tool_calls"])


# 4. A truncated or malformed call became an invented code_interpreter call.


def test_a_call_cut_by_max_tokens_is_text(oai: openai.OpenAI, tool_url: str, cut_at: int) -> None:
    assert reply(oai, "truncated", max_tokens=cut_at) == (TRUNCATED, None, "length")
    contents, calls, finishes = streamed(oai, "truncated", max_tokens=cut_at)
    assert ("".join(contents), calls, finishes[-1]) == (TRUNCATED, [], "length")
    message = native(tool_url, "truncated", sampling_params={"max_tokens": cut_at}).json()["completion_message"]
    assert message == {"role": "assistant", "content": TRUNCATED, "stop_reason": "out_of_tokens", "tool_calls": []}
    got = events(native(tool_url, "truncated", stream=True, sampling_params={"max_tokens": cut_at}))
    assert got[:2] == [("start", "", None), ("progress", ("started", ""), None)]
    assert "".join(d[1] for _, d, _ in got if isinstance(d, tuple) and d[0] == "in_progress") == TRUNCATED
    assert got[-3:] == [
        ("progress", ("failure", ""), "out_of_tokens"),
        ("progress", TRUNCATED, None),
        ("complete", "", "out_of_tokens"),
    ]


def test_a_whole_call_is_still_a_call(oai: openai.OpenAI) -> None:
    assert reply(oai, "truncated") == (None, [("get_weather", '{"city": "Rome"}')], "tool_calls")


def test_a_malformed_call_ending_in_eom_is_text(oai: openai.OpenAI) -> None:
    assert reply(oai, "malformed") == (TRUNCATED, None, "stop")
    contents, calls, finishes = streamed(oai, "malformed")
    assert ("".join(contents), calls, finishes[-1]) == (TRUNCATED, [], "stop")


def test_a_builtin_not_offered_is_not_called(oai: openai.OpenAI) -> None:
    text = 'brave_search.call(query="Paris weather")'
    assert reply(oai, "unoffered") == (text, None, "stop")
    contents, calls, finishes = streamed(oai, "unoffered")
    assert ("".join(contents), calls, finishes[-1]) == (text, [], "stop")


# Arguments given as a JSON string.


def test_arguments_as_a_json_string_decode(oai: openai.OpenAI) -> None:
    assert reply(oai, "string_args") == (None, [PARIS], "tool_calls")
    assert streamed(oai, "string_args") == ([], [PARIS], [None, None, "tool_calls"])
