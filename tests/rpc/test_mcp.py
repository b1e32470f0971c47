"""MCP over in-memory line streams against the fake stack: handshake, tools, resources, prompts."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from rpc.fakes import MODEL, FakeStack
from rpc.test_jsonrpc import HELLO, connected

from llama_core.prompt.templates import TEMPLATE_NAMES, render_template
from llama_core.routes import METHODS
from llama_core.types import ToolPromptFormat
from llama_core.types.schema import json_schema
from llama_rpc.mcp import INSTRUCTIONS, tool, tool_methods

TOOL_METHODS = tool_methods(METHODS)

pytestmark = pytest.mark.anyio


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


@pytest.mark.parametrize(
    ("asked", "answered"),
    [("2025-11-25", "2025-11-25"), ("2025-06-18", "2025-06-18"), ("2025-03-26", "2025-03-26"),
     ("2024-11-05", "2024-11-05"), ("1999-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25")],
)  # fmt: skip
async def test_initialize_echoes_a_known_version_or_offers_the_latest(stack: FakeStack, asked: str, answered: str) -> None:
    params = {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}, "future": 1}
    async with connected(stack) as peer:
        result = (await peer.call("initialize", params))["result"]
        assert result["protocolVersion"] == answered
        assert result["serverInfo"] == {"name": "llama-toolchain", "title": "Llama Stack", "version": "0.1.0"}
        assert set(result["capabilities"]) == {"tools", "resources", "prompts", "logging"}


async def test_initialize_names_a_missing_field(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        assert (await peer.call("initialize", {"capabilities": {}}))["error"] == {
            "code": -32602, "message": "Missing required field `protocolVersion`",
            "data": {"type": "invalid_request", "status": 400, "field": "protocolVersion"},
        }  # fmt: skip


async def test_tools_are_the_served_routes_with_their_schemas(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        tools = (await peer.call("tools/list"))["result"]["tools"]
    assert [t["title"] for t in tools] == [m.name for m in METHODS.values() if m.api in ("inference", "models")]
    for t in tools:
        method = TOOL_METHODS[t["name"]]
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", t["name"])
        assert t["inputSchema"] == json_schema(method.request_type) and t["inputSchema"]["type"] == "object"
        assert t["outputSchema"]["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(t["outputSchema"])


def test_every_route_has_one_tool_and_non_objects_are_wrapped() -> None:
    assert len(TOOL_METHODS) == len(METHODS)
    assert tool(METHODS["models/list"])["outputSchema"] == {
        "type": "object", "properties": {"result": json_schema(METHODS["models/list"].response_type)}, "required": ["result"],
    }  # fmt: skip
    assert tool(METHODS["memory_banks/drop"])["outputSchema"]["properties"] == {"result": {"type": "string"}}
    # MCP progress needs the caller's progressToken (`stream: true` alone sends no notification), so say that.
    assert tool(METHODS["inference/completion"])["description"].endswith(
        " Sends notifications/progress per generated chunk when the call's `_meta` has a progressToken."
    )
    assert "Set `stream: true`" not in INSTRUCTIONS and "send a progressToken in the call's `_meta`" in INSTRUCTIONS


async def test_tools_call_gives_structured_content_and_a_text_block(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        tools = {t["name"]: t for t in (await peer.call("tools/list"))["result"]["tools"]}
        for name, arguments in [("models_list", {}), ("inference_chat_completion", HELLO), ("models/get", {"core_model_id": MODEL})]:
            result = (await peer.call("tools/call", {"name": name, "arguments": arguments}))["result"]
            assert result["isError"] is False
            jsonschema.validate(result["structuredContent"], tools[name.replace("/", "_")]["outputSchema"])
            text = json.loads(result["content"][0]["text"])
            assert result["structuredContent"] == (text if isinstance(text, dict) else {"result": text})


async def test_progress_follows_the_token_and_the_answer_is_the_plain_one(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        plain = await peer.call("tools/call", {"name": "inference_chat_completion", "arguments": HELLO}, id=1)
        assert peer.notifications == []
        # A progressToken alone turns streaming on; `stream: true` without one sends nothing.
        streamed = await peer.call("tools/call", {"name": "inference_chat_completion", "arguments": HELLO, "_meta": {"progressToken": "p"}}, id=2)
        assert streamed["result"] == plain["result"]
        assert [n["params"] for n in peer.notifications] == [
            {"progressToken": "p", "progress": i + 1, "message": text}
            for i, text in enumerate(["", "You ", "said: ", "hi ", "there", ""])
        ]
        peer.notifications.clear()
        quiet = await peer.call("tools/call", {"name": "inference_chat_completion", "arguments": {**HELLO, "stream": True}}, id=3)
        assert quiet["result"] == plain["result"] and peer.notifications == []


@pytest.mark.parametrize(
    ("arguments", "text"),
    [
        ({"model": MODEL}, "Missing required field `messages`"),
        ({**HELLO, "temperature": 1}, "Unknown field `temperature`"),
        ({**HELLO, "model": "Llama3.1-8B"}, "Unknown model 'Llama3.1-8B'. Did you mean: Llama3.2-1B-Instruct? See `llama model list --show-all`."),
        ({**HELLO, "messages": [{"role": "user", "content": "fail"}], "stream": True}, "the fake engine broke"),
    ],
    ids=["missing", "unknown-field", "unknown-model", "mid-stream"],
)
async def test_a_failing_tool_is_an_error_result_for_the_model(stack: FakeStack, arguments: dict[str, Any], text: str) -> None:
    async with connected(stack) as peer:
        result = (await peer.call("tools/call", {"name": "inference_chat_completion", "arguments": arguments}))["result"]
        assert result == {"content": [{"type": "text", "text": text}], "isError": True}


@pytest.mark.parametrize("name", ["nope", "memory_banks_list", "inference_batch_completion_x"])
async def test_an_unknown_or_unserved_tool_is_a_protocol_error(stack: FakeStack, name: str) -> None:
    async with connected(stack) as peer:
        assert (await peer.call("tools/call", {"name": name}))["error"] == {
            "code": -32602, "message": f"Unknown tool: {name}", "data": {"name": name}
        }  # fmt: skip


async def test_an_unexpected_failure_inside_a_tool_is_an_internal_error(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        arguments = {"model": MODEL, "content_batch": ["x"]}
        reply = await peer.call("tools/call", {"name": "inference_batch_completion", "arguments": arguments})
        assert reply["error"] == {"code": -32603, "message": "Internal error"}


async def test_resources_are_the_models(stack: FakeStack) -> None:
    uri = f"llama://models/{MODEL}"
    async with connected(stack) as peer:
        assert (await peer.call("resources/list"))["result"] == {
            "resources": [{"uri": uri, "name": MODEL, "title": f"Model {MODEL}", "mimeType": "application/json"}]
        }
        contents = (await peer.call("resources/read", {"uri": uri}))["result"]["contents"]
        assert [(c["uri"], c["mimeType"], json.loads(c["text"])["descriptor"]) for c in contents] == [(uri, "application/json", MODEL)]
        for missing in ["llama://models/Llama3.1-8B", "llama://memory_banks/b1", "file:///etc/passwd"]:
            assert (await peer.call("resources/read", {"uri": missing}))["error"] == {
                "code": -32002, "message": f"Resource not found: {missing}", "data": {"uri": missing}
            }  # fmt: skip
        templates = (await peer.call("resources/templates/list"))["result"]["resourceTemplates"]
        assert [t["uriTemplate"] for t in templates] == ["llama://models/{descriptor}", "llama://memory_banks/{bank_id}"]


async def test_lists_have_one_page(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        for method in ["tools/list", "resources/list", "prompts/list"]:
            reply = await peer.call(method, {"cursor": "abc"})
            assert reply["error"]["code"] == -32602 and "nextCursor" not in (await peer.call(method, {}))["result"]


async def test_prompts_are_the_templates(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        prompts = (await peer.call("prompts/list"))["result"]["prompts"]
        assert tuple(p["name"] for p in prompts) == TEMPLATE_NAMES
        assert prompts[0]["arguments"] == [
            {"name": "tool_prompt_format", "description": "json (default), function_tag or python_list", "required": False}
        ]
        got = (await peer.call("prompts/get", {"name": "assistant-custom-tool-call", "arguments": {"tool_prompt_format": "function_tag"}}))["result"]
        text = render_template("assistant-custom-tool-call", tool_prompt_format=ToolPromptFormat.function_tag)
        assert got["messages"] == [{"role": "user", "content": {"type": "text", "text": text}}]
        assert (await peer.call("prompts/get", {"name": "nope"}))["error"]["message"] == "Unknown prompt: nope"
        bad = await peer.call("prompts/get", {"name": "user-default", "arguments": {"tool_prompt_format": "xml"}})
        assert bad["error"]["message"] == "Invalid tool_prompt_format 'xml': use one of json, function_tag, python_list"


async def test_ping_and_set_level_answer_empty(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        assert (await peer.call("ping"))["result"] == {}
        assert (await peer.call("logging/setLevel", {"level": "debug"}))["result"] == {}
