"""Turns over HTTP on the tiny tool-using model (agent_checkpoint.py): shields at every phase (the
agent's output shields, a tool's own shields), an attachment opened by the code interpreter, and
the llm memory query generator."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_core.providers.agents.search import brave_result
from memory.site import Site
from safety.endpoint import Endpoint, serving_endpoint

from .agent_checkpoint import (
    ANSWER,
    BRAVE_BODY,
    FILE_CODE,
    FILE_NAME,
    FILE_QUESTION,
    INSTRUCTIONS,
    MODEL,
    QUERY,
    QUERY_QUESTION,
    QUERY_TEMPLATE,
    QUESTION,
)
from .conftest import events, new_session, post
from .vendors import Vendors

PLAIN = {"model": MODEL, "instructions": INSTRUCTIONS}
SHORT = {"max_tokens": 2}
VIOLATION = {"shield_type": "toxicity", "violation_type": "toxicity", "violation_return_message": "Not here.", "is_violation": True}


@pytest.fixture(scope="module")
def endpoint() -> Any:
    with serving_endpoint() as e:
        yield e


def shield(endpoint: Endpoint, path: str, action: int = 2) -> dict[str, Any]:
    config = {"url": {"uri": endpoint.url + path}, "method": "POST"}
    return {"shield_type": "toxicity", "on_violation_action": action, "execution_config": config}


def turn_of(url: str, agent: dict[str, Any], content: str, **extra: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(payloads of a streamed turn, its Turn)."""
    agent_id, session_id = new_session(url, agent)
    body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": content}], "stream": True, **extra}
    response = post(url, "turn/create", body)
    assert response.status_code == 200, response.text
    payloads = [c["event"]["payload"] for c in events(response)]
    return payloads, payloads[-1]["turn"]


def shield_events(payloads: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Each shield_call event: ("step_start", its touchpoint) or ("step_complete", the response)."""
    out = []
    for p in payloads:
        if p.get("step_type") == "shield_call":
            detail = p["metadata"]["touchpoint"] if p["event_type"] == "step_start" else p["step_details"]["response"]
            out.append((p["event_type"], detail))
    return out


def clean(shield_type: str = "toxicity") -> dict[str, Any]:
    return {"shield_type": shield_type, "is_violation": False, "violation_type": None, "violation_return_message": None}


# --- shields ----------------------------------------------------------------------------------


def test_an_output_shield_violation_ends_the_turn_with_its_message(agent_url: str, endpoint: Endpoint) -> None:
    seen = len(endpoint.requests)
    payloads, turn = turn_of(agent_url, {**PLAIN, "output_shields": [shield(endpoint, "/violation")]}, "hi", sampling_params=SHORT)
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "shield_call"]
    assert shield_events(payloads) == [("step_start", "assistant-output"), ("step_complete", VIOLATION)]
    assert turn["output_message"] == {"role": "assistant", "content": "Not here.", "stop_reason": "end_of_turn", "tool_calls": []}
    # The shield judged the conversation with the model's answer last.
    [request] = endpoint.requests[seen:]
    answer = turn["steps"][0]["model_response"]
    assert request["json"]["messages"] == [{"role": "user", "content": "hi", "context": None}, answer]


def test_clean_and_warned_shields_leave_a_clean_step_per_phase(agent_url: str, endpoint: Endpoint) -> None:
    agent = {**PLAIN, "input_shields": [shield(endpoint, "/violation", action=1)], "output_shields": [shield(endpoint, "/ok")]}
    payloads, turn = turn_of(agent_url, agent, "hi", sampling_params=SHORT)
    assert [s["step_type"] for s in turn["steps"]] == ["shield_call", "inference", "shield_call"]
    assert shield_events(payloads) == [
        ("step_start", "user-input"), ("step_complete", clean()),  # WARN: logged, the turn goes on
        ("step_start", "assistant-output"), ("step_complete", clean()),
    ]  # fmt: skip
    assert turn["output_message"] == turn["steps"][1]["model_response"]


def brave_agent(tool_shields: dict[str, Any]) -> dict[str, Any]:
    return {**PLAIN, "tools": [{"type": "brave_search", **tool_shields}]}


def test_a_tools_output_shield_judges_its_result(agent_url: str, endpoint: Endpoint) -> None:
    seen = len(endpoint.requests)
    payloads, turn = turn_of(agent_url, brave_agent({"output_shields": [shield(endpoint, "/ok")]}), QUESTION)
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "tool_execution", "shield_call", "inference"]
    assert shield_events(payloads) == [("step_start", "tool"), ("step_complete", clean())]
    assert turn["output_message"]["content"] == ANSWER
    [request] = endpoint.requests[seen:]
    call = turn["steps"][0]["model_response"]["tool_calls"][0]
    asked = {"role": "assistant", "content": "", "stop_reason": "end_of_message", "tool_calls": [call]}
    result = {"role": "ipython", "call_id": call["call_id"], "tool_name": "brave_search", "content": brave_result(QUERY, BRAVE_BODY)}
    assert request["json"]["messages"] == [asked, result]


def test_a_tools_shield_violation_withholds_the_result_and_ends_the_turn(agent_url: str, endpoint: Endpoint, vendors: Vendors) -> None:
    searches = len(vendors.requests)
    payloads, turn = turn_of(agent_url, brave_agent({"output_shields": [shield(endpoint, "/violation")]}), QUESTION)
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "tool_execution", "shield_call"]
    assert len(vendors.requests) == searches + 1  # the tool ran; its result went nowhere:
    assert [r["content"] for r in turn["steps"][1]["tool_responses"]] == ["Not here."]
    assert [p["tool_response_text_delta"] for p in payloads if p.get("tool_response_text_delta")] == ["Not here."]
    assert shield_events(payloads) == [("step_start", "tool"), ("step_complete", VIOLATION)]
    assert turn["output_message"] == {"role": "assistant", "content": "Not here.", "stop_reason": "end_of_turn", "tool_calls": []}
    # An input shield on the tool stops the call before it runs.
    payloads, turn = turn_of(agent_url, brave_agent({"input_shields": [shield(endpoint, "/violation")]}), QUESTION)
    assert len(vendors.requests) == searches + 1
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "tool_execution", "shield_call"]
    assert turn["output_message"]["content"] == "Not here."


# --- attachments as files -------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_an_attachment_is_a_file_the_code_interpreter_opens(agent_url: str) -> None:
    text = "The castle gate opens at dawn."
    agent = {**PLAIN, "tools": [{"type": "code_interpreter"}], "max_infer_iters": 1}
    with Site() as site:
        attachment = {"content": {"uri": site.add(f"/files/{FILE_NAME}", text.encode(), "text/plain")}, "mime_type": "text/plain"}
        agent_id, session_id = new_session(agent_url, agent)
        body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": FILE_QUESTION}],
                "attachments": [attachment]}  # fmt: skip
        [turn] = events(post(agent_url, "turn/create", body))
    assert site.requests == [f"/files/{FILE_NAME}"]  # fetched once: no memory tool, so not retrieved from
    assert [s["step_type"] for s in turn["steps"]] == ["inference", "tool_execution"]
    [call] = turn["steps"][1]["tool_calls"]
    assert (call["tool_name"], call["arguments"]) == ("code_interpreter", {"code": FILE_CODE})
    assert turn["steps"][1]["tool_responses"][0]["content"] == f"completed\n[stdout]{text}\n[/stdout]"
    session = post(agent_url, "session/get", {"agent_id": agent_id, "session_id": session_id}).json()
    assert session["memory_bank"] is None


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (.ci/run installs it)")
def test_deleting_a_session_or_its_agent_removes_its_scratch_folder(agent_url: str, llama_home: Path) -> None:
    """On a stack of its own (inference over `remote` on the shared one), so its folders are this test's."""
    from rpc.server import running_server

    from llama_core.config import RunConfig
    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    providers = {"inference": {"provider_id": "remote", "url": agent_url}, "agentic_system": {"provider_id": "meta-reference"}}
    stack = Stack.from_config(RunConfig(name="scratch", distribution_id="remote", providers=providers))
    scratch = llama_home / "runtime" / "agents" / "scratch"
    with running_server(lambda: create_app(stack), stack=stack) as url:
        agent_id, first = new_session(url, {**PLAIN, "tools": [{"type": "code_interpreter"}], "max_infer_iters": 1})
        second = post(url, "session/create", {"agent_id": agent_id, "session_name": "second"}).json()["session_id"]
        for session_id in (first, second):
            body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "hi"}],
                    "attachments": [{"content": "words", "mime_type": "text/plain"}], "sampling_params": {"max_tokens": 1}}  # fmt: skip
            events(post(url, "turn/create", body))
            assert (scratch / session_id / "attachment.txt").read_text() == "words"
        locked = scratch / second / "locked"  # as sandboxed code may leave a folder of its own
        (locked / "inner").mkdir(parents=True)
        (locked / "inner" / "file").write_text("x")
        locked.chmod(0)
        assert post(url, "session/delete", {"agent_id": agent_id, "session_id": first}).status_code == 200
        assert sorted(p.name for p in scratch.iterdir()) == [second]
        assert post(url, "delete", {"agent_id": agent_id}).status_code == 200
        assert list(scratch.iterdir()) == []


def test_an_attachment_that_cannot_be_read_is_a_400_before_the_turn(agent_url: str) -> None:
    agent_id, session_id = new_session(agent_url, {**PLAIN, "tools": [{"type": "code_interpreter"}]})
    base = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with Site() as site:
        cases = [
            ({"uri": "file:///etc/passwd"}, "An attachment's URL must be http(s) or data:, not file:."),
            ({"uri": site.url("/missing.txt")}, f"Fetching {site.url('/missing.txt')} failed: it answered 404 Not Found."),
        ]
        for content, message in cases:
            response = post(agent_url, "turn/create", {**base, "attachments": [{"content": content, "mime_type": "text/plain"}]})
            assert (response.status_code, response.json()["error"]) == (
                400, {"type": "invalid_request", "message": message, "status": 400, "field": "attachments[0].content.uri"}
            )  # fmt: skip
    assert post(agent_url, "session/get", {"agent_id": agent_id, "session_id": session_id}).json()["turns"] == []


# --- the llm query generator ----------------------------------------------------------------------


def test_the_llm_query_generator_writes_the_query(agent_url: str) -> None:
    bank = httpx.post(f"{agent_url}/memory_banks/create", json={"name": "gate", "config": {"type": "keyword"}}, timeout=30).json()
    doc = {"document_id": "castle", "content": "The castle gate opens at dawn."}
    assert httpx.post(f"{agent_url}/memory_bank/insert", json={"bank_id": bank["bank_id"], "documents": [doc]}, timeout=30).status_code == 200

    def context(generator: dict[str, Any]) -> str:
        memory = {"type": "memory", "memory_bank_configs": [{"type": "keyword", "bank_id": bank["bank_id"]}], "query_generator_config": generator}
        _, turn = turn_of(agent_url, {**PLAIN, "tools": [memory]}, QUERY_QUESTION, sampling_params=SHORT)
        assert [s["step_type"] for s in turn["steps"]] == ["memory_retrieval", "inference"]
        return turn["steps"][0]["inserted_context"]

    # The question's own words are not in the document; the model's query ("castle gate") is.
    assert context({"type": "default"}) == ""
    assert context({"type": "llm", "model": MODEL, "template": QUERY_TEMPLATE}) == (
        "Here are the retrieved documents for relevant context:\n=== START-RETRIEVED-CONTEXT ===\n"
        "id:castle; content:The castle gate opens at dawn.\n=== END-RETRIEVED-CONTEXT ===\n"
    )


def test_a_template_that_fails_to_render_is_a_400(agent_url: str) -> None:
    memory = {"type": "memory", "query_generator_config": {"type": "llm", "model": MODEL, "template": "{{ 1 // 0 }}"}}
    agent_id, session_id = new_session(agent_url, {**PLAIN, "tools": [memory]})
    body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "hi"}]}
    response = post(agent_url, "turn/create", body)
    assert (response.status_code, response.json()["error"]) == (400, {
        "type": "invalid_request", "status": 400, "field": "query_generator_config.template",
        "message": "The template failed to render: ZeroDivisionError: integer division or modulo by zero.",
    })  # fmt: skip
