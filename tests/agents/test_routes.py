"""Every /agentic_system route over HTTP on the shared agent stack: lifecycle, bad input, an input
shield's violation, retrieval from an attachment."""

from __future__ import annotations

import httpx
import pytest

from safety.endpoint import serving_endpoint

from .agent_checkpoint import INSTRUCTIONS, MODEL
from .conftest import events, new_session, post

PLAIN = {"model": MODEL, "instructions": INSTRUCTIONS}
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def error(response: httpx.Response) -> tuple[int, dict]:
    return response.status_code, response.json()["error"]


def test_agent_and_session_lifecycle(agent_url: str) -> None:
    agent_id, session_id = new_session(agent_url, PLAIN)
    session = post(agent_url, "session/get", {"agent_id": agent_id, "session_id": session_id})
    assert session.status_code == 200
    body = session.json()
    assert (body["session_id"], body["session_name"], body["turns"], body["memory_bank"]) == (session_id, "test", [], None)
    # Deleting a session leaves the agent; deleting the agent takes its other sessions along.
    other = post(agent_url, "session/create", {"agent_id": agent_id, "session_name": "other"}).json()["session_id"]
    assert post(agent_url, "session/delete", {"agent_id": agent_id, "session_id": session_id}).status_code == 200
    assert error(post(agent_url, "session/get", {"agent_id": agent_id, "session_id": session_id})) == (
        404, {"message": f"Unknown session '{session_id}' of agent '{agent_id}'.", "type": "not_found", "status": 404})
    assert post(agent_url, "session/get", {"agent_id": agent_id, "session_id": other}).status_code == 200
    assert post(agent_url, "delete", {"agent_id": agent_id}).status_code == 200
    assert error(post(agent_url, "session/get", {"agent_id": agent_id, "session_id": other})) == (
        404, {"message": f"Unknown agent '{agent_id}'.", "type": "not_found", "status": 404})
    assert error(post(agent_url, "delete", {"agent_id": agent_id}))[0] == 404


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("session/create", {"agent_id": "../../etc", "session_name": "x"}, "agent_id"),
        ("session/get", {"agent_id": UNKNOWN, "session_id": "x'; DROP TABLE sessions"}, "session_id"),
        ("turn/get", {"agent_id": UNKNOWN, "turn_id": "nope"}, "turn_id"),
        ("step/get", {"agent_id": UNKNOWN, "turn_id": UNKNOWN, "step_id": "nope"}, "step_id"),
    ],
)
def test_malformed_ids_are_400s_naming_the_field(agent_url: str, route: str, body: dict, field: str) -> None:
    status, err = error(post(agent_url, route, body))
    assert (status, err["type"], err["field"]) == (400, "invalid_request", field)
    assert err["message"].endswith("is not an id this stack made (a uuid4).")


def test_unknown_ids_are_404s(agent_url: str) -> None:
    assert error(post(agent_url, "session/create", {"agent_id": UNKNOWN, "session_name": "x"}))[1]["message"] == f"Unknown agent '{UNKNOWN}'."
    agent_id, session_id = new_session(agent_url, PLAIN)
    assert error(post(agent_url, "turn/get", {"agent_id": agent_id, "turn_id": UNKNOWN})) == (
        404, {"message": f"Unknown turn '{UNKNOWN}' of agent '{agent_id}'.", "type": "not_found", "status": 404})
    turn = {"agent_id": agent_id, "session_id": UNKNOWN, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert error(post(agent_url, "turn/create", turn))[0] == 404  # before any stream opens


@pytest.mark.parametrize(
    ("config", "status", "message", "field"),
    [
        ({**PLAIN, "max_infer_iters": 0}, 400, "max_infer_iters must be between 1 and 100, got 0.", "agent_config.max_infer_iters"),
        ({**PLAIN, "tools": [{"type": "brave_search"}, {"type": "brave_search"}]}, 400, "The tool brave_search is given twice.", "agent_config.tools[1]"),
        ({**PLAIN, "tools": [{"type": "function_call", "function_name": "wolfram_alpha", "description": "d", "parameters": {}}]},
         400, "A function_call tool cannot be named wolfram_alpha, a builtin tool's name.", "agent_config.tools[0].function_name"),
        ({**PLAIN, "tools": [{"type": "memory", "memory_bank_configs": [{"type": "vector", "bank_id": "nope"}]}]},
         404, "Unknown memory bank 'nope' (agent_config.tools[0].memory_bank_configs[0]).", None),
        ({**PLAIN, "tools": [{"type": "memory", "query_generator_config": {"type": "custom"}}]},
         400, "The memory tool's query generator 'custom' is not supported: use 'default' (the messages' text) "
              "or 'llm' (a model writes the query from a template).", "agent_config.tools[0].query_generator_config"),
        ({**PLAIN, "tools": [{"type": "memory", "query_generator_config": {"type": "llm", "model": MODEL, "template": "{% for m in %}"}}]},
         400, "The template does not parse: Expected an expression, got 'end of statement block' (line 1).",
         "agent_config.tools[0].query_generator_config.template"),
    ],
)  # fmt: skip
def test_configs_it_cannot_run_are_refused(agent_url: str, config: dict, status: int, message: str, field: str | None) -> None:
    got_status, err = error(post(agent_url, "create", {"agent_config": config}))
    assert (got_status, err["message"], err.get("field")) == (status, message, field)


UNKNOWN_SHIELD = (
    "Unknown shield_type 'nope'. Choose one of: code_scanner_guard, injection_shield, jailbreak_shield, llama_guard, "
    "third_party_shield; or give an execution_config to call a REST shield under your own name."
)

REST_SHIELD = {"shield_type": "toxicity", "execution_config": {"url": {"uri": "http://127.0.0.1:9/"}, "method": "POST"}}


@pytest.mark.parametrize(
    ("config", "status", "message", "field"),
    [
        ({**PLAIN, "model": "Llama3.1-8B-Instruct"}, 404,
         f"Model 'Llama3.1-8B-Instruct' is not served here; this stack serves {MODEL}.", None),
        ({**PLAIN, "input_shields": [{"shield_type": "nope"}]}, 400, UNKNOWN_SHIELD, "agent_config.input_shields[0].shield_type"),
        ({**PLAIN, "output_shields": [REST_SHIELD, {"shield_type": "llama_guard"}]}, 400,
         "The llama_guard shield is not configured in this stack. Turn it on with `llama stack configure local --name agents "
         '--set safety.llama_guard_shield.model=Llama-Guard-3-1B` (or answer y to "Do you want to configure llama_guard_shield?"), '
         "then restart the stack.", "agent_config.output_shields[1].shield_type"),
        ({**PLAIN, "tools": [{"type": "brave_search", "output_shields": [REST_SHIELD, {"shield_type": "nope"}]}]},
         400, UNKNOWN_SHIELD, "agent_config.tools[0].output_shields[1].shield_type"),
        ({**PLAIN, "tools": [{"type": "memory", "query_generator_config": {"type": "llm", "model": "Llama3.1-8B-Instruct", "template": "q"}}]},
         404, f"Model 'Llama3.1-8B-Instruct' is not served here; this stack serves {MODEL}. "
              "(agent_config.tools[0].query_generator_config.model)", None),
    ],
)  # fmt: skip
def test_configs_whose_turns_would_fail_are_refused_at_create(agent_url: str, config: dict, status: int, message: str, field: str | None) -> None:
    got_status, err = error(post(agent_url, "create", {"agent_config": config}))
    assert (got_status, err["message"], err.get("field")) == (status, message, field)


def test_instructions_past_the_context_are_refused_at_create_naming_them(agent_url: str) -> None:
    got_status, err = error(post(agent_url, "create", {"agent_config": {**PLAIN, "instructions": "word " * 2000}}))
    assert (got_status, err["field"]) == (400, "agent_config.instructions")
    assert err["message"].startswith("The prompt has ")
    assert err["message"].endswith(" tokens, but this model's context (max_seq_len) is 1024. Shorten the messages.")


def test_an_input_shield_violation_ends_the_turn_with_its_message(agent_url: str) -> None:
    with serving_endpoint() as endpoint:
        shield = {"shield_type": "toxicity", "execution_config": {"url": {"uri": endpoint.url + "/violation"}, "method": "POST"}}
        agent_id, session_id = new_session(agent_url, {**PLAIN, "input_shields": [shield]})
        body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "you idiot"}], "stream": True}
        chunks = events(post(agent_url, "turn/create", body))
    payloads = [c["event"]["payload"] for c in chunks]
    assert [p["event_type"] for p in payloads] == ["turn_start", "step_start", "step_complete", "turn_complete"]
    assert payloads[1]["metadata"] == {"touchpoint": "user-input"}
    turn = payloads[-1]["turn"]
    [step] = turn["steps"]
    assert step["step_type"] == "shield_call"
    assert step["response"] == {"shield_type": "toxicity", "is_violation": True, "violation_type": "toxicity", "violation_return_message": "Not here."}
    assert turn["output_message"] == {"role": "assistant", "content": "Not here.", "stop_reason": "end_of_turn", "tool_calls": []}


def test_an_attachment_is_retrieved_into_the_turn(agent_url: str) -> None:
    agent_id, session_id = new_session(agent_url, PLAIN)
    attachment = {"content": "The secret password of the castle is pineapple.", "mime_type": "text/plain"}
    body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "What is the password?"}],
            "attachments": [attachment], "sampling_params": {"max_tokens": 2}}  # fmt: skip
    [turn] = events(post(agent_url, "turn/create", body))
    assert [s["step_type"] for s in turn["steps"]] == ["memory_retrieval", "inference"]
    session = post(agent_url, "session/get", {"agent_id": agent_id, "session_id": session_id}).json()
    bank_id = session["memory_bank"]["bank_id"]
    step = turn["steps"][0]
    assert step["memory_bank_ids"] == [bank_id]
    assert step["inserted_context"] == (
        "Here are the retrieved documents for relevant context:\n=== START-RETRIEVED-CONTEXT ===\n"
        f"id:{turn['turn_id']}-0; content:The secret password of the castle is pineapple.\n=== END-RETRIEVED-CONTEXT ===\n"
    )
    # The stored input is what the client sent: the context lives in the step.
    assert turn["input_messages"] == [{"role": "user", "content": "What is the password?", "context": None}]
    # Deleting the agent drops the session's bank.
    assert post(agent_url, "delete", {"agent_id": agent_id}).status_code == 200
    assert httpx.get(f"{agent_url}/memory_banks/get", params={"bank_id": bank_id}, timeout=30).json() is None


def test_attached_banks_are_retrieved_from_until_detached(agent_url: str) -> None:
    bank = httpx.post(f"{agent_url}/memory_banks/create", json={"name": "facts", "config": {"type": "keyword"}}, timeout=30).json()
    doc = {"document_id": "castle", "content": "The castle gate opens at dawn."}
    assert httpx.post(f"{agent_url}/memory_bank/insert", json={"bank_id": bank["bank_id"], "documents": [doc]}, timeout=30).status_code == 200
    agent_id, session_id = new_session(agent_url, PLAIN)
    ids = {"agent_id": agent_id, "session_id": session_id}
    assert error(post(agent_url, "memory_bank/attach", {**ids, "memory_bank_ids": ["nope"]})) == (
        404, {"message": "Unknown memory bank 'nope' (memory_bank_ids[0]).", "type": "not_found", "status": 404})
    assert post(agent_url, "memory_bank/attach", {**ids, "memory_bank_ids": [bank["bank_id"]]}).status_code == 200
    body = {**ids, "messages": [{"role": "user", "content": "When does the castle gate open?"}], "sampling_params": {"max_tokens": 2}}
    [turn] = events(post(agent_url, "turn/create", body))
    step = turn["steps"][0]
    assert (step["step_type"], step["memory_bank_ids"]) == ("memory_retrieval", [bank["bank_id"]])
    assert "id:castle; content:The castle gate opens at dawn." in step["inserted_context"]
    assert post(agent_url, "memory_bank/detach", {**ids, "memory_bank_ids": [bank["bank_id"]]}).status_code == 200
    [turn] = events(post(agent_url, "turn/create", body))
    assert [s["step_type"] for s in turn["steps"]] == ["inference"]


def test_without_safety_and_memory_plain_turns_work_and_the_rest_is_a_clear_501(agent_url: str) -> None:
    """A stack of inference (the shared stack's, over `remote`) and agents alone."""
    from rpc.server import running_server

    from llama_core.config import RunConfig
    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    providers = {"inference": {"provider_id": "remote", "url": agent_url}, "agentic_system": {"provider_id": "meta-reference"}}
    stack = Stack.from_config(RunConfig(name="bare", distribution_id="remote", providers=providers))
    with running_server(lambda: create_app(stack), stack=stack) as url:
        agent_id, session_id = new_session(url, PLAIN)
        body = {"agent_id": agent_id, "session_id": session_id, "messages": [{"role": "user", "content": "hi"}],
                "sampling_params": {"max_tokens": 3}}  # fmt: skip
        [turn] = events(post(url, "turn/create", body))
        assert [s["step_type"] for s in turn["steps"]] == ["inference"]
        shielded = {**PLAIN, "input_shields": [{"shield_type": "llama_guard"}]}
        status, err = error(post(url, "create", {"agent_config": shielded}))
        assert (status, err["type"]) == (501, "not_configured")
        assert err["message"].startswith("agent_config.input_shields cannot work without the safety API. The safety API has no provider")
        attachment = {"content": "text", "mime_type": "text/plain"}
        status, err = error(post(url, "turn/create", {**body, "attachments": [attachment]}))
        assert (status, err["message"].split(". ")[0]) == (501, "A turn's attachments cannot work without the memory API")
