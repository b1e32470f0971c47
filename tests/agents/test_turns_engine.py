"""Real turns over HTTP on the tiny tool-using model (agent_checkpoint.py): a builtin tool, a custom
tool answered by the client, and a restart between two turns of one session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llama_core.providers.agents.search import brave_result

from .agent_checkpoint import (
    ANSWER,
    BOILING_ANSWER,
    BOILING_QUESTION,
    BOILING_RESULT,
    BRAVE_BODY,
    CODE,
    CODE_ANSWER,
    CODE_QUESTION,
    CODE_RESULT,
    INSTRUCTIONS,
    MODEL,
    QUERY,
    QUESTION,
)
from .conftest import events, new_session, post, serve, write_agent_config
from .vendors import BRAVE_KEY, Vendors

BRAVE_AGENT = {"model": MODEL, "instructions": INSTRUCTIONS, "tools": [{"type": "brave_search"}]}
BOILING_AGENT = {
    "model": MODEL,
    "instructions": INSTRUCTIONS,
    "tool_prompt_format": "python_list",
    "tools": [{
        "type": "function_call", "function_name": "get_boiling_point",
        "description": "Get the boiling point of an imaginary liquid",
        "parameters": {"liquid_name": {"param_type": "str", "description": "The name of the liquid"}},
    }],
}  # fmt: skip


def shape(chunks: list[dict]) -> list[str]:
    """Each event as `event_type[:step_type][:which delta]`, consecutive repeats folded."""
    out: list[str] = []
    for chunk in chunks:
        p = chunk["event"]["payload"]
        name = p["event_type"] + (f":{p['step_type']}" if "step_type" in p else "")
        if p["event_type"] == "step_progress":
            name += ":" + next(k for k in ("model_response_text_delta", "tool_call_delta", "tool_response_text_delta") if p.get(k) is not None)
        if not out or out[-1] != name:
            out.append(name)
    return out


def test_brave_search_turn_runs_inference_tool_inference(agent_url: str, vendors: Vendors) -> None:
    agent_id, session_id = new_session(agent_url, BRAVE_AGENT)
    seen = len(vendors.requests)
    body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    response = post(agent_url, "turn/create", body)
    assert response.status_code == 200
    chunks = events(response)
    assert shape(chunks) == [
        "turn_start",
        "step_start:inference", "step_progress:inference:tool_call_delta", "step_complete:inference",
        "step_start:tool_execution", "step_progress:tool_execution:tool_call_delta",
        "step_progress:tool_execution:tool_response_text_delta", "step_complete:tool_execution",
        "step_start:inference", "step_progress:inference:model_response_text_delta", "step_complete:inference",
        "turn_complete",
    ]  # fmt: skip
    turn = chunks[-1]["event"]["payload"]["turn"]
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "tool_execution", "inference"]
    call = turn["steps"][0]["model_response"]["tool_calls"][0]
    assert (call["tool_name"], call["arguments"]) == ("brave_search", {"query": QUERY})
    result = brave_result(QUERY, BRAVE_BODY)
    assert turn["steps"][1]["tool_responses"] == [{"call_id": call["call_id"], "tool_name": "brave_search", "content": result}]
    assert turn["output_message"] == {"role": "assistant", "content": ANSWER, "stop_reason": "end_of_turn", "tool_calls": []}
    text = "".join(c["event"]["payload"].get("model_response_text_delta") or "" for c in chunks)
    assert text == ANSWER
    # The vendor saw one search, with the configured key.
    [request] = vendors.requests[seen:]
    assert (request["path"], request["query"], request["headers"]["x-subscription-token"]) == ("/res/v1/web/search", {"q": QUERY}, BRAVE_KEY)
    # The stored turn and step are what the stream ended with.
    stored = post(agent_url, "turn/get", {"agent_id": agent_id, "turn_id": turn["turn_id"]})
    assert stored.status_code == 200 and stored.json() == turn
    step = turn["steps"][1]
    got = post(agent_url, "step/get", {"agent_id": agent_id, "turn_id": turn["turn_id"], "step_id": step["step_id"]})
    assert got.json() == {"step": step}
    session = post(agent_url, "session/get", {"agent_id": agent_id, "session_id": session_id}).json()
    assert [t["turn_id"] for t in session["turns"]] == [turn["turn_id"]]


def test_custom_tool_goes_back_to_the_client_and_its_answer_continues(agent_url: str) -> None:
    agent_id, session_id = new_session(agent_url, BOILING_AGENT)
    first = post(agent_url, "turn/create", {"agent_id": agent_id, "session_id": session_id,
                                           "messages": [{"role": "user", "content": BOILING_QUESTION}]})  # fmt: skip
    [turn] = events(first)  # not streamed: the whole Turn as the one event
    assert [s["step_type"] for s in turn["steps"]] == ["inference"]
    [call] = turn["output_message"]["tool_calls"]
    assert (call["tool_name"], call["arguments"]) == ("get_boiling_point", {"liquid_name": "polyjuice"})
    answer = {"role": "ipython", "call_id": call["call_id"], "tool_name": "get_boiling_point", "content": BOILING_RESULT}
    second = post(agent_url, "turn/create", {"agent_id": agent_id, "session_id": session_id, "messages": [answer]})
    [turn2] = events(second)
    assert turn2["input_messages"] == [answer]
    assert turn2["output_message"]["content"] == BOILING_ANSWER


def test_a_restart_keeps_agents_sessions_and_history(agent_ckpt: Path, vendors: Vendors, tmp_path: Path) -> None:
    config = write_agent_config(tmp_path / "restart.toml", agent_ckpt, MODEL, vendors.url, tmp_path)
    with serve_once(config) as url:
        agent_id, session_id = new_session(url, BOILING_AGENT)
        [turn] = events(post(url, "turn/create", {"agent_id": agent_id, "session_id": session_id,
                                                  "messages": [{"role": "user", "content": BOILING_QUESTION}]}))  # fmt: skip
    with serve_once(config) as url:
        session = post(url, "session/get", {"agent_id": agent_id, "session_id": session_id}).json()
        assert session["turns"] == [turn]
        [call] = turn["output_message"]["tool_calls"]
        answer = {"role": "ipython", "call_id": call["call_id"], "tool_name": "get_boiling_point", "content": BOILING_RESULT}
        [turn2] = events(post(url, "turn/create", {"agent_id": agent_id, "session_id": session_id, "messages": [answer]}))
        assert turn2["output_message"]["content"] == BOILING_ANSWER  # only with turn 1 in its history


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_code_interpreter_turn_runs_the_code_in_the_sandbox(agent_url: str) -> None:
    agent_id, session_id = new_session(agent_url, {"model": MODEL, "instructions": INSTRUCTIONS, "tools": [{"type": "code_interpreter"}]})
    body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": CODE_QUESTION}]}
    [turn] = events(post(agent_url, "turn/create", body))
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "tool_execution", "inference"]
    [call] = turn["steps"][1]["tool_calls"]
    assert (call["tool_name"], call["arguments"]) == ("code_interpreter", {"code": CODE})
    assert turn["steps"][1]["tool_responses"][0]["content"] == CODE_RESULT
    assert turn["output_message"]["content"] == CODE_ANSWER


def serve_once(config: Path):
    import contextlib

    return contextlib.contextmanager(serve)(config, MODEL)
