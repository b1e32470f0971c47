"""The OpenAI mapping as pure functions: requests in, our types out; refusals name the field."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from llama_core.choices import choice_requests, choice_seed
from llama_core.errors import InvalidRequestError, UnsupportedError
from llama_core.types import (
    CompletionMessage,
    LogProbConfig,
    SamplingParams,
    SamplingStrategy,
    StopReason,
    SystemMessage,
    TextContentItem,
    TokenLogProbs,
    ToolCall,
    ToolDefinition,
    ToolParamDefinition,
    ToolResponseMessage,
    TopLogProb,
    UserMessage,
)
from llama_core.types.inference import JsonSchemaResponseFormat, ToolChoice
from llama_core.types.schema import decode_request
from llama_rpc import openai
from llama_rpc.openai_types import OpenAIChatCompletionRequest, OpenAICompletionRequest


def chat(**fields: Any) -> OpenAIChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return decode_request(OpenAIChatCompletionRequest, json.dumps(body).encode())


def test_messages_map_to_ours() -> None:
    req = chat(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ],
        user="someone", metadata={"ignored": True},  # unknown fields are ignored on these routes
    )  # fmt: skip
    assert openai.chat_messages(req.messages) == [
        SystemMessage(content="be brief"),
        SystemMessage(content="and kind"),
        UserMessage(content=[TextContentItem(text="a"), TextContentItem(text="b")]),
        CompletionMessage(
            content="", stop_reason=StopReason.end_of_message,
            tool_calls=[ToolCall(call_id="c1", tool_name="get_weather", arguments={"city": "Paris"})],
        ),
        ToolResponseMessage(call_id="c1", tool_name="get_weather", content="sunny"),
        CompletionMessage(content="It is sunny.", stop_reason=StopReason.end_of_turn),
    ]  # fmt: skip


def test_tools_and_tool_choice() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather", "description": "Weather now",
            "parameters": {"type": "object", "required": ["city"],
                           "properties": {"city": {"type": "string", "description": "A city"}, "days": {"type": "integer", "default": 1}}},
        },
    }  # fmt: skip
    ours = openai.chat_request(chat(tools=[tool], tool_choice="required"))
    assert ours.tools == [
        ToolDefinition(
            tool_name="get_weather", description="Weather now",
            parameters={"city": ToolParamDefinition(param_type="string", description="A city", required=True),
                        "days": ToolParamDefinition(param_type="integer", required=False, default=1)},
        )
    ]  # fmt: skip
    assert ours.tool_choice == ToolChoice.required
    assert openai.chat_request(chat(tools=[tool], tool_choice="none")).tools == []
    named = openai.chat_request(chat(tools=[tool], tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    assert (len(named.tools), named.tool_choice) == (1, ToolChoice.required)
    with pytest.raises(InvalidRequestError) as caught:
        openai.chat_request(chat(tools=[tool], tool_choice={"type": "function", "function": {"name": "other"}}))
    assert caught.value.field == "tool_choice.function.name"


@pytest.mark.parametrize(
    ("fields", "sampling"),
    [
        pytest.param({}, SamplingParams(), id="default-greedy"),
        pytest.param({"temperature": 0}, SamplingParams(), id="zero-greedy"),
        pytest.param({"temperature": 0.7, "seed": 3}, SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.7, top_p=1.0, seed=3), id="temperature"),
        pytest.param({"temperature": 0.7, "top_p": 0.9}, SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.7, top_p=0.9), id="top-p"),
        pytest.param({"max_tokens": 5}, SamplingParams(max_tokens=5), id="max-tokens"),
        pytest.param({"max_tokens": 5, "max_completion_tokens": 7}, SamplingParams(max_tokens=7), id="max-completion-tokens-wins"),
        pytest.param({"n": 3, "presence_penalty": 0, "logit_bias": {}, "response_format": {"type": "text"}}, SamplingParams(), id="harmless"),
    ],
)  # fmt: skip
def test_sampling(fields: dict[str, Any], sampling: SamplingParams) -> None:
    assert openai.chat_request(chat(**fields)).sampling_params == sampling


@pytest.mark.parametrize(
    ("response_format", "ours"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param({"type": "text"}, None, id="text"),
        pytest.param({"type": "json_object"}, JsonSchemaResponseFormat(json_schema={"type": "object"}), id="json-object"),
        pytest.param({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer"}, "strict": True}},
                     JsonSchemaResponseFormat(json_schema={"type": "integer"}), id="json-schema"),
        pytest.param({"type": "json_schema", "json_schema": {"name": "n"}}, JsonSchemaResponseFormat(json_schema={}), id="any-json"),
    ],
)  # fmt: skip
def test_response_format(response_format: dict[str, Any] | None, ours: JsonSchemaResponseFormat | None) -> None:
    fields = {} if response_format is None else {"response_format": response_format}
    assert openai.chat_request(chat(**fields)).response_format == ours


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        pytest.param({"n": 0}, InvalidRequestError, "n", id="n-zero"),
        pytest.param({"n": 129}, InvalidRequestError, "n", id="n-too-many"),
        pytest.param({"presence_penalty": 0.5}, UnsupportedError, "presence_penalty", id="presence"),
        pytest.param({"frequency_penalty": 0.5}, UnsupportedError, "frequency_penalty", id="frequency"),
        pytest.param({"logit_bias": {"1": 2.0}}, UnsupportedError, "logit_bias", id="logit-bias"),
        pytest.param({"logprobs": True, "top_logprobs": 21}, InvalidRequestError, "top_logprobs", id="top-logprobs-too-many"),
        pytest.param({"top_logprobs": 2}, InvalidRequestError, "top_logprobs", id="top-logprobs-without-logprobs"),
        pytest.param({"logprobs": False, "top_logprobs": 2}, InvalidRequestError, "top_logprobs", id="top-logprobs-logprobs-false"),
        pytest.param({"response_format": {"type": "json_schema"}}, InvalidRequestError, "response_format.json_schema", id="schema-missing"),
        pytest.param({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, InvalidRequestError,
                     "response_format.json_schema.name", id="schema-unnamed"),
        pytest.param({"stream_options": {"include_usage": True}}, InvalidRequestError, "stream_options", id="stream-options-unstreamed"),
        pytest.param({"temperature": 3}, InvalidRequestError, "temperature", id="temperature"),
        pytest.param({"top_p": 0}, InvalidRequestError, "top_p", id="top-p"),
        pytest.param({"max_tokens": -1}, InvalidRequestError, "max_tokens", id="max-tokens"),
        pytest.param({"messages": []}, InvalidRequestError, "messages", id="no-messages"),
        pytest.param({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]},
                     InvalidRequestError, "messages[0].tool_calls[0].function.arguments", id="arguments-not-object"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(fields: dict[str, Any], error: type[Exception], field: str) -> None:
    with pytest.raises(error) as caught:
        openai.chat_request(chat(**fields))
    assert caught.value.field == field  # type: ignore[attr-defined]


def test_completion_request() -> None:
    req = decode_request(OpenAICompletionRequest, b'{"model": "m", "prompt": ["once"]}')
    ours = openai.completion_request(req)
    assert (ours.content, ours.sampling_params.max_tokens, ours.logprobs) == ("once", 16, None)  # OpenAI's default max_tokens
    req = decode_request(OpenAICompletionRequest, b'{"model": "m", "prompt": "once", "logprobs": 3}')
    assert openai.completion_request(req).logprobs == LogProbConfig(top_k=3)
    for body, field in (
        (b'{"model": "m", "prompt": ["a", "b"]}', "prompt"),
        (b'{"model": "m", "prompt": "a", "suffix": "z"}', "suffix"),
        (b'{"model": "m", "prompt": "a", "logprobs": 0, "echo": true}', "echo"),  # the prompt's logprobs are not computed
    ):
        with pytest.raises(UnsupportedError) as caught:
            openai.completion_request(decode_request(OpenAICompletionRequest, body))
        assert caught.value.field == field
    with pytest.raises(InvalidRequestError) as invalid:
        decode_request(OpenAICompletionRequest, b'{"model": "m", "prompt": "a", "logprobs": 21}')
    assert invalid.value.field == "logprobs"


def test_logprobs_map_to_ours() -> None:
    assert openai.chat_request(chat()).logprobs is None
    assert openai.chat_request(chat(logprobs=True)).logprobs == LogProbConfig(top_k=0)
    assert openai.chat_request(chat(logprobs=True, top_logprobs=20)).logprobs == LogProbConfig(top_k=20)
    assert openai.chat_request(chat(logprobs=False)).logprobs is None


# Two steps as the engine reports them: "é" split over two byte tokens, then " ok".
STEPS = [
    TokenLogProbs(
        logprobs_by_token={"\ufffd": -0.5, "a": -1.5}, token="\ufffd", logprob=-0.5, bytes=[195],
        top_logprobs=[TopLogProb(token="\ufffd", logprob=-0.5, bytes=[195]), TopLogProb(token="a", logprob=-1.5, bytes=[97])],
    ),
    TokenLogProbs(
        logprobs_by_token={"\ufffd": -0.25, "b": -2.0}, token="\ufffd", logprob=-0.25, bytes=[169],
        top_logprobs=[TopLogProb(token="\ufffd", logprob=-0.25, bytes=[169]), TopLogProb(token="b", logprob=-2.0, bytes=[98])],
    ),
    TokenLogProbs(logprobs_by_token={" ok": -3.0, "!": -0.125}, token=" ok", logprob=-3.0, bytes=[32, 111, 107],
                  top_logprobs=[TopLogProb(token="!", logprob=-0.125, bytes=[33])]),
]  # fmt: skip


def test_chat_logprobs_shape() -> None:
    assert openai.chat_logprobs(None) is None
    assert openai.chat_logprobs(STEPS[1:]) == {
        "content": [
            {"token": "\ufffd", "logprob": -0.25, "bytes": [169],
             "top_logprobs": [{"token": "\ufffd", "logprob": -0.25, "bytes": [169]}, {"token": "b", "logprob": -2.0, "bytes": [98]}]},
            {"token": " ok", "logprob": -3.0, "bytes": [32, 111, 107], "top_logprobs": [{"token": "!", "logprob": -0.125, "bytes": [33]}]},
        ],
        "refusal": None,
    }  # fmt: skip
    # The original wire's entries alone (another stack's answer): the generated token is the first key.
    assert openai.chat_logprobs([TokenLogProbs(logprobs_by_token={"é": -0.5})])["content"] == [  # type: ignore[index]
        {"token": "é", "logprob": -0.5, "bytes": [195, 169], "top_logprobs": []}
    ]


def test_completion_logprobs_shape() -> None:
    assert openai.completion_logprobs(STEPS, offset=4) == {
        "tokens": ["\ufffd", "\ufffd", " ok"],
        "token_logprobs": [-0.5, -0.25, -3.0],
        "top_logprobs": [{"\ufffd": -0.5, "a": -1.5}, {"\ufffd": -0.25, "b": -2.0}, {" ok": -3.0, "!": -0.125}],
        "text_offset": [4, 5, 6],
    }


def test_choice_seeds_differ_and_repeat() -> None:
    seeds = [choice_seed(7, i) for i in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4 and seeds == [choice_seed(7, i) for i in range(4)]
    assert all(-(2**63) <= choice_seed(s, i) < 2**63 for s in (-(2**63), 2**63 - 1) for i in range(1, 130))  # type: ignore[operator]
    assert choice_seed(None, 3) is None
    requests = choice_requests(openai.chat_request(chat(seed=7, temperature=1.0, n=3)), 3)
    assert [r.sampling_params.seed for r in requests] == seeds[:3]
    assert {r.sampling_params.temperature for r in requests} == {1.0}


def test_stop_list() -> None:
    # The cut itself is the core's (tests/providers/test_stops.py): /v1 only maps `stop` into the request.
    assert openai.stop_list(None) == [] and openai.stop_list("x") == ["x"] and openai.stop_list(["a", "b"]) == ["a", "b"]
    assert openai.chat_request(chat(stop="END")).sampling_params.stop == ["END"]
    with pytest.raises(InvalidRequestError) as caught:
        chat(stop=[""])
    assert caught.value.field == "stop[0]"


def test_embedding_item_base64_is_little_endian_float32() -> None:
    item = openai.embedding_item(2, [1.5, -2.0], "base64")
    assert struct.unpack("<2f", base64.b64decode(item["embedding"])) == (1.5, -2.0)
    assert openai.embedding_item(0, [1.5], "float") == {"object": "embedding", "index": 0, "embedding": [1.5]}


def test_tool_call_and_finish_reason() -> None:
    call = ToolCall(call_id="c", tool_name="brave_search", arguments={"query": "x"})
    assert openai.openai_tool_call(call, 0) == {
        "index": 0, "id": "c", "type": "function", "function": {"name": "brave_search", "arguments": '{"query": "x"}'}
    }  # fmt: skip
    assert openai.finish_reason(StopReason.out_of_tokens, False) == "length"
    assert openai.finish_reason(StopReason.end_of_message, True) == "tool_calls"
    assert openai.finish_reason(StopReason.end_of_turn, False) == "stop"
