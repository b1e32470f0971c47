"""The demo model (SmolLM2-135M-Instruct) runs a plain agent turn end to end, over HTTP and over MCP:
its answer is the model's greedy answer to the same dialog through /inference/chat_completion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import events, new_session, post, serve, write_agent_config

DEMO = "SmolLM2-135M-Instruct"
AGENT = {"model": DEMO, "instructions": "You are a helpful assistant.", "sampling_params": {"max_tokens": 24}}
QUESTION = "What is the capital of France?"


def expected_answer(url: str) -> str:
    """The model's own greedy answer to the dialog the agent sends (its instructions as the system message)."""
    messages = [{"role": "system", "content": AGENT["instructions"]}, {"role": "user", "content": QUESTION}]
    reply = httpx.post(url + "/inference/chat_completion", json={"model": DEMO, "messages": messages, "sampling_params": {"max_tokens": 24}}, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()["completion_message"]["content"]


@pytest.fixture(scope="module")
def demo_config(demo_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-agent")
    return write_agent_config(root / "demo.toml", demo_ckpt, DEMO, "http://127.0.0.1:9", root)


@pytest.fixture(scope="module")
def demo_url(demo_config: Path) -> Iterator[str]:
    yield from serve(demo_config, DEMO)


def test_a_plain_turn_over_http(demo_url: str) -> None:
    answer = expected_answer(demo_url)
    assert "Paris" in answer
    agent_id, session_id = new_session(demo_url, AGENT)
    body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    chunks = events(post(demo_url, "turn/create", body))
    text = "".join(c["event"]["payload"].get("model_response_text_delta") or "" for c in chunks)
    turn = chunks[-1]["event"]["payload"]["turn"]
    assert [s["step_type"] for s in turn["steps"]] == ["inference"]
    assert turn["output_message"]["content"] == text == answer


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_plain_turn_over_mcp_with_progress(demo_config: Path, demo_url: str, anyio_backend: str) -> None:
    from rpc.test_jsonrpc import connected

    from llama_core.stack import Stack

    answer = expected_answer(demo_url)
    from llama_core.types import SamplingParams, UserMessage
    from llama_core.types.inference import ChatCompletionRequest

    async with Stack.from_config(demo_config) as stack, connected(stack) as peer:
        # Loaded and warm before the peer's per-message timeout starts counting.
        warm = ChatCompletionRequest(model=DEMO, messages=[UserMessage(content="hi")], sampling_params=SamplingParams(max_tokens=1))
        await stack.api("inference").chat_completion(warm)
        await peer.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})

        async def tool(name: str, arguments: dict, id: int, meta: dict | None = None) -> dict:
            params = {"name": name, "arguments": arguments} | ({"_meta": meta} if meta else {})
            reply = await peer.call("tools/call", params, id=id)
            assert reply["result"]["isError"] is False, reply
            return reply["result"]["structuredContent"]

        agent_id = (await tool("agentic_system_create", {"agent_config": AGENT}, 2))["agent_id"]
        session_id = (await tool("agentic_system_session_create", {"agent_id": agent_id, "session_name": "mcp"}, 3))["session_id"]
        turn_args = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": QUESTION}]}
        turn = await tool("agentic_system_turn_create", turn_args, 4, {"progressToken": "t1"})
    assert [s["step_type"] for s in turn["steps"]] == ["inference"]
    assert turn["output_message"]["content"] == answer
    progress = [n["params"] for n in peer.notifications if n["method"] == "notifications/progress"]
    assert [p["progress"] for p in progress] == list(range(1, len(progress) + 1))  # one per event, numbered
    assert {p["progressToken"] for p in progress} == {"t1"}
    assert "".join(p["message"] for p in progress) == answer
    assert json.dumps(turn)  # the structured result is plain JSON


def test_the_agent_client_prints_the_turn(demo_url: str) -> None:
    import subprocess
    import sys

    answer = expected_answer(demo_url)
    host, port = demo_url.removeprefix("http://").split(":")
    argv = [sys.executable, "-m", "llama_cli.client.agents", host, port, "--message", QUESTION, "--max-tokens", "24"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"Initializing client for {demo_url}\nUser> {QUESTION}\ninference> {answer}\n"


QUESTIONS = [
    "What is the capital of France?", "Name a primary colour.", "What is 2 + 2?", "Say hello in Spanish.",
    "What is the largest planet?", "Name a fruit.", "What colour is the sky?", "Who wrote Hamlet?",
]  # fmt: skip


def test_eight_concurrent_sessions_each_answer_as_alone(demo_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    agent_id, _ = new_session(demo_url, AGENT)

    def one_turn(question: str) -> str:
        session = post(demo_url, "session/create", {"agent_id": agent_id, "session_name": question}).json()["session_id"]
        body = {"agent_id": agent_id, "session_id": session, "messages": [{"role": "user", "content": question}], "stream": True}
        [*_, last] = events(post(demo_url, "turn/create", body))
        return last["event"]["payload"]["turn"]["output_message"]["content"]

    solo = [one_turn(q) for q in QUESTIONS]
    with ThreadPoolExecutor(len(QUESTIONS)) as pool:
        together = list(pool.map(one_turn, QUESTIONS))
    assert together == solo
    assert all(solo) and len(set(solo)) > 1


@pytest.mark.parametrize(
    "tool",
    [{"type": "code_interpreter"}, {"type": "brave_search"},
     {"type": "function_call", "function_name": "get_weather", "description": "The weather in a city.", "parameters": {}}],
)  # fmt: skip
def test_tools_on_the_demo_model_are_refused_at_create(demo_url: str, tool: dict) -> None:
    response = post(demo_url, "create", {"agent_config": {**AGENT, "tools": [tool]}})
    assert (response.status_code, response.json()["error"]) == (400, {
        "type": "unsupported", "status": 400, "field": "agent_config.tools",
        "message": "SmolLM2-135M-Instruct does not support tool calling.",
    })  # fmt: skip
    # A memory tool is retrieval, no tool the model calls; tool_choice none offers the model none.
    memory = post(demo_url, "create", {"agent_config": {**AGENT, "tools": [{"type": "memory"}]}})
    assert memory.status_code == 200, memory.text
    none = post(demo_url, "create", {"agent_config": {**AGENT, "tools": [tool], "tool_choice": "none"}})
    assert none.status_code == 200, none.text
