"""Input is bounded and cheap to refuse (issue 11, items 5, 6 and 8): deep nesting, OpenAI tool
shapes and echoed values, over the real HTTP server on the tiny model and the real stdio process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_core.errors import InvalidRequestError, ModelNotFoundError, shown
from llama_core.types import ToolDefinition, ToolParamDefinition
from llama_core.types.inference import ChatCompletionRequest
from llama_core.types.schema import MAX_JSON_DEPTH, decode_request, json_too_deep
from llama_rpc import openai_types as oa
from llama_rpc.openai import chat_request

TINY_MODEL = "Llama3.2-1B-Instruct"  # the model of the `tiny_url` stack (tests/rpc/conftest.py)
DEEP = 1000  # what crashed the stdio server and gave 500s over HTTP
HI = [{"role": "user", "content": "hi"}]
NESTED_ERROR = f"Invalid request: JSON nested deeper than {MAX_JSON_DEPTH} levels"


def nested(depth: int, kind: str = "[") -> str:
    """A JSON value `depth` containers deep: arrays, or objects {"a": ...}."""
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def with_value(body: dict[str, Any], value: str) -> bytes:
    """`body` as JSON with its "VALUE" placeholder replaced by the raw JSON text `value`."""
    return json.dumps(body).replace('"VALUE"', value).encode()


# --- the depth check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        pytest.param(nested(MAX_JSON_DEPTH), False, id="at-the-limit"),
        pytest.param(nested(MAX_JSON_DEPTH + 1), True, id="one-over"),
        pytest.param(nested(MAX_JSON_DEPTH + 1, "{"), True, id="objects"),
        pytest.param('[{"a":[' + nested(MAX_JSON_DEPTH - 2) + "]}]", True, id="mixed"),
        pytest.param("[" + "[],[[]]," * 5000 + "1]", False, id="many-shallow"),
        pytest.param('{"a":"' + "[" * 5000 + '"}', False, id="brackets-in-a-string"),
        pytest.param('{"a":"\\"' + "{" * 5000 + '"}', False, id="after-an-escaped-quote"),
        pytest.param('{"a":"\\\\",' + '"b":' + nested(100) + "}", True, id="after-an-escaped-backslash"),
        pytest.param("[" * 5000, False, id="unbalanced-is-the-decoder's"),
        pytest.param("[" + ",".join([nested(MAX_JSON_DEPTH - 1)] * 2000) + "]", False, id="wide-at-the-limit"),
        pytest.param("[" + ",".join([nested(MAX_JSON_DEPTH - 1)] * 2000 + [nested(MAX_JSON_DEPTH)]) + "]", True, id="wide-one-over"),
    ],
)  # fmt: skip
def test_json_too_deep(text: str, deep: bool) -> None:
    assert json_too_deep(text.encode()) is deep


TOOL_WITH_DEFAULT = [{"tool_name": "f", "parameters": {"p": {"param_type": "str", "default": "VALUE"}}}]


def test_decode_request_refuses_deep_json_before_decoding() -> None:
    body = {"model": "m", "messages": HI, "tools": TOOL_WITH_DEFAULT}
    with pytest.raises(InvalidRequestError, match=r"^Invalid request: JSON nested deeper than 64 levels$"):
        decode_request(ChatCompletionRequest, with_value(body, nested(DEEP)))
    shallow = decode_request(ChatCompletionRequest, with_value(body, nested(MAX_JSON_DEPTH - 5)))
    assert shallow.tools[0].parameters is not None and shallow.tools[0].parameters["p"].default is not None


# --- echoes are cut ---------------------------------------------------------------------------


def test_shown() -> None:
    assert shown("abc") == "abc"
    assert shown("x" * 200) == "x" * 200
    assert shown("x" * 10_000_000) == "x" * 200 + "… (10000000 characters)"
    assert shown(12345, limit=3) == "123… (5 characters)"


def test_an_unknown_model_is_not_echoed_whole() -> None:
    error = ModelNotFoundError("m" * 10_000_000)
    assert error.message == f"Unknown model '{'m' * 200}… (10000000 characters)'. See `llama model list --show-all`."
    assert error.model_id == "m" * 10_000_000  # the value itself is kept, for code


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        pytest.param({"model": "m", "messages": HI, "z" * 5000: 1}, f"Unknown field `{'z' * 200}… (5000 characters)`",
                     f"{'z' * 200}… (5000 characters)", id="unknown-field"),
        pytest.param({"model": "m", "messages": [{"role": "user", "content": "hi", "y" * 300: 1}]},
                     f"Unknown field `messages[0].{'y' * 200}… (300 characters)`", f"messages[0].{'y' * 200}… (300 characters)",
                     id="unknown-nested-field"),
        pytest.param({"model": "m", "messages": HI, "tool_choice": "c" * 1000},
                     f"Invalid `tool_choice`: Invalid enum value '{'c' * 200}… (1000 characters)'", "tool_choice", id="enum"),
        pytest.param({"model": "m", "messages": [{"role": "r" * 1000, "content": "hi"}]},
                     f"Invalid `messages[0].role`: Invalid value '{'r' * 200}… (1000 characters)'", "messages[0].role", id="tag"),
    ],
)  # fmt: skip
def test_decode_errors_cut_what_they_quote(body: dict[str, Any], message: str, field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode_request(ChatCompletionRequest, json.dumps(body).encode())
    assert (caught.value.message, caught.value.field) == (message, field)


# --- over the real HTTP server ----------------------------------------------------------------


def v1_error(message: str, param: str | None = None, status: int = 400) -> dict[str, Any]:
    kind = {400: "invalid_request", 404: "model_not_found"}[status]
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def native_error(message: str, field: str | None = None, status: int = 400) -> dict[str, Any]:
    kind = {400: "invalid_request", 404: "model_not_found"}[status]
    detail: dict[str, Any] = {"message": message, "type": kind, "status": status}
    if field is not None:
        detail["field"] = field
    return {"error": detail}


V1_CHAT = {"model": TINY_MODEL, "messages": HI, "max_tokens": 1}
NATIVE_CHAT = {"model": TINY_MODEL, "messages": HI, "sampling_params": {"max_tokens": 1}}


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        pytest.param("/v1/chat/completions", with_value({**V1_CHAT, "response_format": "VALUE"}, nested(DEEP, "{")),
                     v1_error(NESTED_ERROR), id="v1-response-format"),
        pytest.param("/v1/chat/completions", with_value({**V1_CHAT, "metadata": "VALUE"}, nested(DEEP)),
                     v1_error(NESTED_ERROR), id="v1-unknown-field"),
        pytest.param("/v1/chat/completions", nested(DEEP).encode(), v1_error(NESTED_ERROR), id="v1-whole-body"),
        pytest.param("/v1/openai/v1/completions", with_value({"model": TINY_MODEL, "prompt": "VALUE"}, nested(DEEP)),
                     v1_error(NESTED_ERROR), id="v1-completions"),
        pytest.param("/v1/chat/completions",
                     json.dumps({**V1_CHAT, "messages": [*HI, {"role": "assistant", "tool_calls": [
                         {"id": "c", "type": "function", "function": {"name": "f", "arguments": nested(DEEP)}}]}]}).encode(),
                     v1_error("`messages[1].tool_calls[0].function.arguments` is nested deeper than 64 levels",
                              "messages[1].tool_calls[0].function.arguments"), id="v1-tool-call-arguments-string"),
        pytest.param("/inference/chat_completion",
                     with_value({**NATIVE_CHAT, "tools": TOOL_WITH_DEFAULT}, nested(DEEP)),
                     native_error(NESTED_ERROR), id="native-tool-parameter-default"),
        pytest.param("/inference/chat_completion",
                     with_value({**NATIVE_CHAT, "messages": [*HI, {"role": "assistant", "content": "", "stop_reason": "end_of_message",
                                 "tool_calls": [{"call_id": "c", "tool_name": "f", "arguments": {"a": "VALUE"}}]}]}, nested(DEEP, "{")),
                     native_error(NESTED_ERROR), id="native-tool-call-arguments"),
        pytest.param("/inference/completion", nested(DEEP, "{").encode(), native_error(NESTED_ERROR), id="native-whole-body"),
    ],
)  # fmt: skip
def test_deep_nesting_is_a_400(tiny_url: str, path: str, body: bytes, answer: dict[str, Any]) -> None:
    reply = httpx.post(tiny_url + path, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert (reply.status_code, reply.json()) == (answer["error"].get("code") or answer["error"]["status"], answer)


def v1_tools(parameters: Any) -> dict[str, Any]:
    return {**V1_CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}


@pytest.mark.parametrize(
    ("parameters", "param", "what"),
    [
        ({"properties": ["a"]}, "tools[0].function.parameters.properties", "Expected `object`, got `array`"),
        ({"properties": "abc"}, "tools[0].function.parameters.properties", "Expected `object`, got `str`"),
        ({"properties": {"c": "string"}}, "tools[0].function.parameters.properties[...]", "Expected `object`, got `str`"),
        ({"properties": {"c": {"type": "string"}}, "required": 5}, "tools[0].function.parameters.required", "Expected `array`, got `int`"),
        ({"properties": {"c": {"type": "string"}}, "required": [[1]]}, "tools[0].function.parameters.required[0]", "Expected `str`, got `array`"),
        ({"type": "string"}, "tools[0].function.parameters.type", "Invalid enum value 'string'"),
        ({"properties": {"c": {"type": 5}}}, "tools[0].function.parameters.properties[...].type", "Expected `str | array | null`, got `int`"),
        ({"properties": {"c": True}}, "tools[0].function.parameters.properties[...]", "Expected `object`, got `bool`"),
        ([], "tools[0].function.parameters", "Expected `object | null`, got `array`"),
    ],
    ids=["properties-array", "properties-str", "property-str", "required-int", "required-nested", "not-an-object",
         "type-int", "property-bool", "parameters-array"],
)  # fmt: skip
def test_openai_tool_shapes_are_a_400_naming_the_field(tiny_url: str, parameters: Any, param: str, what: str) -> None:
    reply = httpx.post(tiny_url + "/v1/chat/completions", json=v1_tools(parameters), timeout=30)
    assert (reply.status_code, reply.json()) == (400, v1_error(f"Invalid `{param}`: {what}", param))


def test_openai_tool_shapes_that_are_right_still_map() -> None:
    parameters = {"type": "object", "properties": {"city": {"type": ["string", "null"], "description": "A city", "enum": ["a"]},
                  "n": {"default": 3}}, "required": ["city"], "additionalProperties": False}  # fmt: skip
    request = decode_request(oa.OpenAIChatCompletionRequest, json.dumps(v1_tools(parameters)).encode())
    assert chat_request(request).tools == [
        ToolDefinition(tool_name="f", parameters={
            "city": ToolParamDefinition(param_type="string | null", description="A city", required=True, enum=["a"]),
            "n": ToolParamDefinition(param_type="string", required=False, default=3),
        })
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        pytest.param("/inference/chat_completion", {**NATIVE_CHAT, "model": "m" * 10_000_000},
                     native_error(f"Unknown model '{'m' * 200}… (10000000 characters)'. See `llama model list --show-all`.", status=404),
                     id="native"),
        pytest.param("/v1/chat/completions", {**V1_CHAT, "model": "m" * 10_000_000},
                     v1_error(f"Unknown model '{'m' * 200}… (10000000 characters)'. See `llama model list --show-all`.", status=404),
                     id="v1"),
        pytest.param("/inference/chat_completion", {**NATIVE_CHAT, "x" * 10_000_000: 1},
                     native_error(f"Unknown field `{'x' * 200}… (10000000 characters)`", f"{'x' * 200}… (10000000 characters)"),
                     id="unknown-field"),
    ],
)  # fmt: skip
def test_a_10_mb_value_is_not_echoed(tiny_url: str, path: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
    reply = httpx.post(tiny_url + path, json=body, timeout=30)
    assert len(reply.content) < 1000
    assert (reply.status_code, reply.json()) == (answer["error"].get("code") or answer["error"]["status"], answer)


# --- over the real stdio process --------------------------------------------------------------


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    config = tmp_path / "empty.toml"
    config.write_text('name = "empty"\ndistribution_id = "local"\n')
    return config


def test_a_deep_line_is_answered_and_the_stdio_server_goes_on(empty_config: Path, tmp_path: Path) -> None:
    def line(message: str) -> bytes:
        return message.encode() + b"\n"

    lines = [
        line('{"jsonrpc":"2.0","id":1,"method":"ping"}'),
        line(nested(DEEP)),
        line('{"jsonrpc":"2.0","id":2,"method":"models/list","params":{"x":' + nested(DEEP, "{") + "}}"),
        line('{"jsonrpc":"2.0","id":' + nested(DEEP) + ',"method":"ping"}'),
        line('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"models_list","arguments":{"a":' + nested(DEEP) + "}}}"),
        line('{"jsonrpc":"2.0","id":4,"method":"' + "m" * 100_000 + '"}'),
        line('{"jsonrpc":"2.0","id":5,"method":"models/list"}'),
    ]
    env = {**os.environ, "LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-m", "llama_rpc", str(empty_config)], input=b"".join(lines), capture_output=True,
                          timeout=30, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    deep = {"code": -32600, "message": NESTED_ERROR}
    answers = [json.loads(answer) for answer in done.stdout.splitlines()]
    assert sorted(answers, key=json.dumps) == sorted([
        {"jsonrpc": "2.0", "id": 1, "result": {}},
        {"jsonrpc": "2.0", "id": None, "error": deep},
        {"jsonrpc": "2.0", "id": None, "error": deep},
        {"jsonrpc": "2.0", "id": None, "error": deep},
        {"jsonrpc": "2.0", "id": None, "error": deep},
        {"jsonrpc": "2.0", "id": 4, "error": {"code": -32601, "message": "Method not found", "data": shown("m" * 100_000)}},
        {"jsonrpc": "2.0", "id": 5, "result": []},
    ], key=json.dumps)
    assert b"Traceback" not in done.stderr
