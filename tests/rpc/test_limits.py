"""One set of request limits for every route: native HTTP, /v1, JSON-RPC and MCP refuse the same values.

Each bad value is refused when the body is decoded, before any provider sees it (the fake stack
records every request it gets): 400 naming the field over HTTP, -32602 with `data.field` over
JSON-RPC, an error result over MCP. The message is the same everywhere; only the field's path
differs, because /v1 spells its fields OpenAI's way.
"""

from __future__ import annotations

from typing import Any

import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.test_jsonrpc import connected

from llama_core.types.common import STOP_MAX_CHARS, STOP_MAX_COUNT
from llama_rpc.http import create_app

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "hi there"}]
TOO_BIG_SEED = 2**70
MEGABYTE_STOP = "x" * 1_000_000

# (id, native sampling_params or request fields, /v1 fields, native field, /v1 field, message)
CASES = [
    ("seed", {"sampling_params": {"seed": TOO_BIG_SEED}}, {"seed": TOO_BIG_SEED},
     "sampling_params.seed", "seed", "Expected `int` <= 9223372036854775807"),
    ("negative-seed", {"sampling_params": {"seed": -(2**63) - 1}}, {"seed": -(2**63) - 1},
     "sampling_params.seed", "seed", "Expected `int` >= -9223372036854775808"),
    ("temperature", {"sampling_params": {"temperature": 1e308}}, {"temperature": 1e308},
     "sampling_params.temperature", "temperature", "Expected `float` <= 2.0"),
    ("top-p-zero", {"sampling_params": {"top_p": 0}}, {"top_p": 0},
     "sampling_params.top_p", "top_p", "Expected `float` > 0.0"),
    ("top-p-above-one", {"sampling_params": {"top_p": 1.5}}, {"top_p": 1.5},
     "sampling_params.top_p", "top_p", "Expected `float` <= 1.0"),
    ("empty-messages", {"messages": []}, {"messages": []},
     "messages", "messages", "Expected `array` of length >= 1"),
    ("too-many-stops", {"sampling_params": {"stop": ["a"] * (STOP_MAX_COUNT + 1)}}, {"stop": ["a"] * (STOP_MAX_COUNT + 1)},
     "sampling_params.stop", "stop", f"Expected `array` of length <= {STOP_MAX_COUNT}"),
    ("megabyte-stop", {"sampling_params": {"stop": [MEGABYTE_STOP]}}, {"stop": MEGABYTE_STOP},
     "sampling_params.stop[0]", "stop", f"Expected `str` of length <= {STOP_MAX_CHARS}"),
    ("empty-stop", {"sampling_params": {"stop": [""]}}, {"stop": [""]},
     "sampling_params.stop[0]", "stop[0]", "Expected `str` of length >= 1"),
]  # fmt: skip

# Limits only the native wire has (OpenAI has no top_k or repetition penalty; its max_tokens starts at 1).
NATIVE_ONLY = [
    ("top-k", {"top_k": -1}, "sampling_params.top_k", "Expected `int` >= 0"),
    ("max-tokens", {"max_tokens": -1}, "sampling_params.max_tokens", "Expected `int` >= 0"),
    ("repetition-penalty-zero", {"repetition_penalty": 0}, "sampling_params.repetition_penalty", "Expected `float` > 0.0"),
    ("repetition-penalty-huge", {"repetition_penalty": 3}, "sampling_params.repetition_penalty", "Expected `float` <= 2.0"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Quart runs on asyncio only


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


def native_body(fields: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, **fields}


def ids(cases: list[tuple[Any, ...]]) -> list[str]:
    return [c[0] for c in cases]


@pytest.mark.parametrize(("name", "native", "v1", "field", "v1_field", "what"), CASES, ids=ids(CASES))
async def test_http_native_and_v1_refuse_alike(
    stack: FakeStack, name: str, native: dict[str, Any], v1: dict[str, Any], field: str, v1_field: str, what: str
) -> None:
    client = create_app(stack).test_client()
    reply = await client.post("/inference/chat_completion", json=native_body(native))
    assert (reply.status_code, await reply.get_json()) == (
        400, {"error": {"message": f"Invalid `{field}`: {what}", "type": "invalid_request", "status": 400, "field": field}}
    )  # fmt: skip
    for path in ("/v1/chat/completions", "/v1/openai/v1/chat/completions"):
        reply = await client.post(path, json={"model": MODEL, "messages": USER, **v1})
        assert (reply.status_code, await reply.get_json()) == (
            400, {"error": {"message": f"Invalid `{v1_field}`: {what}", "type": "invalid_request", "param": v1_field, "code": 400}}
        )  # fmt: skip
    assert stack.providers["inference"].requests == []  # refused before any provider


@pytest.mark.parametrize(("name", "sampling", "field", "what"), NATIVE_ONLY, ids=ids(NATIVE_ONLY))
async def test_http_native_only_limits(stack: FakeStack, name: str, sampling: dict[str, Any], field: str, what: str) -> None:
    client = create_app(stack).test_client()
    for path, body in (
        ("/inference/chat_completion", native_body({"sampling_params": sampling})),
        ("/inference/completion", {"model": MODEL, "content": "x", "sampling_params": sampling}),
    ):
        reply = await client.post(path, json=body)
        assert (reply.status_code, (await reply.get_json())["error"]["field"]) == (400, field)
        assert (await reply.get_json())["error"]["message"] == f"Invalid `{field}`: {what}"


@pytest.mark.parametrize(
    ("path", "body", "param", "message"),
    [
        ("/v1/chat/completions", {"messages": USER, "max_tokens": 0}, "max_tokens", "Invalid `max_tokens`: Expected `int` >= 1"),
        ("/v1/chat/completions", {"messages": USER, "max_completion_tokens": 0}, "max_completion_tokens",
         "Invalid `max_completion_tokens`: Expected `int` >= 1"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens", "Invalid `max_tokens`: Expected `int` >= 1"),
        ("/v1/completions", {"prompt": "x", "temperature": 1e308}, "temperature", "Invalid `temperature`: Expected `float` <= 2.0"),
        ("/v1/completions", {"prompt": "x", "seed": TOO_BIG_SEED}, "seed", "Invalid `seed`: Expected `int` <= 9223372036854775807"),
    ],
    ids=["chat-max-tokens-0", "chat-max-completion-tokens-0", "completion-max-tokens-0", "completion-temperature", "completion-seed"],
)  # fmt: skip
async def test_v1_refuses_what_would_run_away(stack: FakeStack, path: str, body: dict[str, Any], param: str, message: str) -> None:
    # `max_tokens: 0` generated up to the whole context (194 s on the demo model): OpenAI has no such value.
    reply = await create_app(stack).test_client().post(path, json={"model": MODEL, **body})
    assert (reply.status_code, (await reply.get_json())["error"]) == (
        400, {"message": message, "type": "invalid_request", "param": param, "code": 400}
    )  # fmt: skip


async def test_batch_dialogs_must_not_be_empty(stack: FakeStack) -> None:
    reply = await create_app(stack).test_client().post(
        "/inference/batch_chat_completion", json={"model": MODEL, "messages_batch": [USER, []]}
    )
    assert (reply.status_code, (await reply.get_json())["error"]["field"]) == (400, "messages_batch[1]")


@pytest.mark.parametrize(("name", "native", "v1", "field", "v1_field", "what"), CASES, ids=ids(CASES))
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_jsonrpc_and_mcp_refuse_alike(
    stack: FakeStack, name: str, native: dict[str, Any], v1: dict[str, Any], field: str, v1_field: str, what: str, anyio_backend: str
) -> None:
    message = f"Invalid `{field}`: {what}"
    async with connected(stack) as peer:
        reply = await peer.call("inference/chat_completion", native_body(native))
        assert reply["error"] == {
            "code": -32602, "message": message, "data": {"type": "invalid_request", "status": 400, "field": field}
        }  # fmt: skip
        tool = await peer.call("tools/call", {"name": "inference_chat_completion", "arguments": native_body(native)}, id=2)
        assert tool["result"] == {"content": [{"type": "text", "text": message}], "isError": True}
    assert stack.providers["inference"].requests == []
    async with connected(stack) as peer:  # and the server goes on serving
        assert "result" in await peer.call("inference/chat_completion", native_body({}))


def test_the_schemas_show_the_limits() -> None:
    # MCP's inputSchema and /openapi.json are built from the same types, so clients see the limits too.
    from llama_core.types.inference import ChatCompletionRequest
    from llama_core.types.schema import json_schema

    schema = json_schema(ChatCompletionRequest)
    sampling = schema["properties"]["sampling_params"]["properties"]
    assert (sampling["temperature"]["minimum"], sampling["temperature"]["maximum"]) == (0, 2.0)
    assert (sampling["seed"]["anyOf"][0]["minimum"], sampling["seed"]["anyOf"][0]["maximum"]) == (-(2**63), 2**63 - 1)
    assert sampling["stop"]["maxItems"] == STOP_MAX_COUNT and sampling["stop"]["items"]["maxLength"] == STOP_MAX_CHARS
    assert schema["properties"]["messages"]["minItems"] == 1
