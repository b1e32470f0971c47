"""The official `mcp` SDK's stdio client drives `python -m llama_rpc` on a tiny random checkpoint.

One server process for the module (the meta-reference provider, its worker process, stdio): it
initializes, lists tools, chats with structured content checked against the tool's outputSchema,
streams progress notifications, and a cancelled call frees the engine (one batch slot, so a call
after it would wait out the whole cancelled generation otherwise).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest

# Checked without importing (torch and mcp take seconds to import; collection stays fast).
pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("torch") and importlib.util.find_spec("mcp")), reason="needs torch and the mcp SDK"
)

MODEL = "Llama3.2-1B-Instruct"  # served from the tiny random checkpoint: answers are gibberish


@pytest.fixture(scope="module")
def run_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.tiny_checkpoint import write_tiny_run_config

    return write_tiny_run_config(tmp_path_factory.mktemp("mcp-sdk"), MODEL, max_seq_len=2048, max_batch_size=1)


def chat(text: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "sampling_params": {"max_tokens": max_tokens}, **extra}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # one server start (~8 s); the SDK is anyio either way
async def test_the_official_client_drives_the_server(run_config: Path, tmp_path: Path, anyio_backend: str) -> None:
    import mcp
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "llama_rpc", str(run_config), "--log-level", "INFO"],
        env={"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()},
    )
    errlog = (tmp_path / "stderr.log").open("w")
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert (init.protocol_version, init.server_info.name) == ("2025-11-25", "llama-toolchain")
        assert init.capabilities.tools is not None and init.capabilities.prompts is not None

        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(tools) == [
            "inference_batch_chat_completion", "inference_batch_completion", "inference_chat_completion",
            "inference_completion", "inference_embeddings", "models_get", "models_list",
        ]  # fmt: skip
        tool = tools["inference_chat_completion"]
        assert tool.input_schema["required"] == ["model", "messages"]

        # A plain call: structured content that validates against the tool's outputSchema.
        result = await session.call_tool("inference_chat_completion", chat("hello", 4))
        assert not result.is_error
        jsonschema.validate(result.structured_content, tool.output_schema)
        message = result.structured_content["completion_message"]
        assert (message["role"], message["stop_reason"]) == ("assistant", "out_of_tokens")
        assert json.loads(result.content[0].text) == result.structured_content

        # Streaming: one progress notification per chunk (start, 6 tokens, complete), the same answer.
        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, text: str | None) -> None:
            seen.append((progress, text))

        streamed = await session.call_tool("inference_chat_completion", chat("hello", 6, stream=True), progress_callback=on_progress)
        plain = await session.call_tool("inference_chat_completion", chat("hello", 6))
        assert streamed.structured_content == plain.structured_content  # greedy: the same tokens
        assert [p for p, _ in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 8
        assert "".join(t or "" for _, t in seen) == plain.structured_content["completion_message"]["content"]

        # Cancel: stop a 1,500-token stream after its first chunk; the one batch slot is free at once.
        first = anyio.Event()

        async def on_first(progress: float, total: float | None, text: str | None) -> None:
            first.set()

        async with anyio.create_task_group() as tg:

            async def long_call() -> None:
                await session.call_tool("inference_chat_completion", chat("go on", 1500, stream=True), progress_callback=on_first)

            tg.start_soon(long_call)
            await first.wait()
            tg.cancel_scope.cancel()  # the SDK sends notifications/cancelled for the abandoned request
        started = time.monotonic()
        after = await session.call_tool("inference_chat_completion", chat("next", 2))
        assert not after.is_error
        assert time.monotonic() - started < 8  # the cancelled generation alone runs for a minute

        # Errors: a bad argument is an isError result naming the field; an unknown tool a protocol error.
        bad = await session.call_tool("inference_chat_completion", {"model": MODEL})
        assert bad.is_error and bad.content[0].text == "Missing required field `messages`"
        with pytest.raises(mcp.MCPError, match="Unknown tool: nope"):
            await session.call_tool("nope", {})

        resources = (await session.list_resources()).resources
        assert [str(r.uri) for r in resources] == [f"llama://models/{MODEL}"]
        contents = (await session.read_resource(f"llama://models/{MODEL}")).contents
        assert json.loads(contents[0].text)["descriptor"] == MODEL

        prompts = (await session.list_prompts()).prompts
        assert len(prompts) == 10
        prompt = await session.get_prompt("user-default", {})
        assert prompt.messages[0].content.text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>")
        await session.send_ping()
    errlog.close()
    log = (tmp_path / "stderr.log").read_text()
    assert "cancelling request" in log and "cancelled" in log


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_the_high_level_client_in_auto_mode_falls_back_to_initialize_at_once(tmp_path: Path, anyio_backend: str) -> None:
    """`mcp.Client` sends `server/discover` first; a prompt -32601 makes it fall back (no 10 s stall)."""
    from mcp import Client, StdioServerParameters

    config = tmp_path / "empty.toml"
    config.write_text('name = "empty"\ndistribution_id = "local"\n')  # no model: models/list is []
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "llama_rpc", str(config)],
        env={"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home"), "PYTHONPATH": os.getcwd()},
    )
    started = time.monotonic()
    async with Client(params) as client:
        assert time.monotonic() - started < 8
        assert [t.name for t in (await client.list_tools()).tools] == ["models_list", "models_get"]
        result = await client.call_tool("models_list", {})
        assert (result.is_error, result.structured_content) == (False, {"result": []})


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])  # the other backend drives the tiny model above
async def test_the_official_client_chats_with_the_demo_model(demo_ckpt: Path, tmp_path: Path, anyio_backend: str) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    config = tmp_path / "demo.toml"
    config.write_text(
        'name = "demo"\ndistribution_id = "local"\n[providers.inference]\nprovider_id = "meta-reference"\n'
        f'model = "SmolLM2-135M-Instruct"\ncheckpoint_dir = "{demo_ckpt}"\nmax_seq_len = 512\nmax_batch_size = 1\n'
    )
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "llama_rpc", str(config)],
        env={"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()},
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tool = next(t for t in (await session.list_tools()).tools if t.name == "inference_chat_completion")
            question = {"role": "user", "content": "What is the capital of France?"}
            arguments = {"model": "SmolLM2-135M-Instruct", "messages": [question], "sampling_params": {"max_tokens": 24}}
            result = await session.call_tool("inference_chat_completion", arguments)
    assert not result.is_error
    jsonschema.validate(result.structured_content, tool.output_schema)
    assert result.structured_content["completion_message"] == {
        "role": "assistant", "content": "The capital of France is Paris.", "stop_reason": "end_of_turn", "tool_calls": [],
    }  # fmt: skip
