"""/safety/run_shields over HTTP, JSON-RPC and MCP on a real stack: third-party shields on a loopback
endpoint (no model), the order and concurrency of a request's shields, on_violation_action, and the
400s of a shield the stack cannot run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rpc.test_jsonrpc import connected

from llama_core.errors import ProviderError
from llama_core.providers.safety.meta_reference import MetaReferenceSafety
from llama_core.providers.safety.third_party import ThirdPartyShield
from llama_core.types import UserMessage
from llama_core.types.safety import ShieldDefinition

from .conftest import safety_stack
from .endpoint import Endpoint

HI = [{"role": "user", "content": "hi"}]
NOTHING = {"violation_type": None, "violation_return_message": None}
UNKNOWN = (
    "Unknown shield_type 'nope'. Choose one of: code_scanner_guard, injection_shield, jailbreak_shield, llama_guard, "
    "third_party_shield; or give an execution_config to call a REST shield under your own name."
)


def rest(endpoint: Endpoint, path: str, **config: Any) -> dict[str, Any]:
    return {"url": {"uri": endpoint.url + path}, "method": "POST", **config}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    from rpc.server import running_server

    from llama_rpc.http import create_app

    stack = safety_stack()
    with running_server(lambda: create_app(stack), stack=stack) as base:
        yield base


def run_shields(url: str, shields: list[dict[str, Any]], messages: list[dict[str, Any]] = HI) -> httpx.Response:
    return httpx.post(url + "/safety/run_shields", json={"messages": messages, "shields": shields}, timeout=30)


def test_each_shield_answers_in_the_order_asked(url: str, endpoint: Endpoint) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "stop_reason": "end_of_turn"}]
    shields = [
        {"shield_type": "toxicity_api", "execution_config": rest(endpoint, "/violation", params={"lang": "en"},
                                                                  headers={"X-Token": "tok-123456"}, body={"policy": "strict"})},
        {"shield_type": "third_party_shield", "execution_config": rest(endpoint, "/ok")},
        {"shield_type": "third_party_shield", "execution_config": rest(endpoint, "/message", method="PUT")},
    ]  # fmt: skip
    reply = run_shields(url, shields, messages)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"responses": [
        {"shield_type": "toxicity_api", "is_violation": True, "violation_type": "toxicity", "violation_return_message": "Not here."},
        {"shield_type": "third_party_shield", "is_violation": False, **NOTHING},
        {"shield_type": "third_party_shield", "is_violation": True, "violation_type": None,
         "violation_return_message": "Said with `message`."},
    ]}  # fmt: skip
    sent = {r["path"]: r for r in endpoint.requests}
    assert sent["/violation"]["method"] == "POST" and sent["/message"]["method"] == "PUT"
    assert sent["/violation"]["query"] == {"lang": ["en"]}
    assert sent["/violation"]["headers"]["x-token"] == "tok-123456"
    assert sent["/violation"]["json"] == {
        "policy": "strict",
        "messages": [{"role": "user", "content": "hi", "context": None},
                     {"role": "assistant", "content": "hello", "stop_reason": "end_of_turn", "tool_calls": []}],
    }  # fmt: skip


def test_the_shields_of_a_request_run_at_the_same_time(url: str, endpoint: Endpoint) -> None:
    # /barrier answers only once both requests are in: run one after the other, the first would fail.
    shields = [{"shield_type": "third_party_shield", "execution_config": rest(endpoint, "/barrier")}] * 2
    reply = run_shields(url, shields)
    assert reply.status_code == 200, reply.text
    assert [r["is_violation"] for r in reply.json()["responses"]] == [False, False]


def test_on_violation_action(url: str, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    shields = [{"shield_type": "third_party_shield", "execution_config": rest(endpoint, "/violation"), "on_violation_action": action}
               for action in (2, 1, 0)]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="llama_core.providers.safety.meta_reference"):
        reply = run_shields(url, shields)
    verdict = {"shield_type": "third_party_shield", "violation_type": "toxicity", "violation_return_message": "Not here."}
    assert reply.json() == {"responses": [{**verdict, "is_violation": True}, {**verdict, "is_violation": True},
                                          {**verdict, "is_violation": False}]}  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if r.name == "llama_core.providers.safety.meta_reference"]
    assert warnings == [
        "safety: the third_party_shield shield found a violation (toxicity); on_violation_action WARN lets the caller decide"
    ]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        pytest.param({"messages": HI, "shields": [{"shield_type": "third_party_shield"}, {"shield_type": "nope"}]},
                     "shields[1].shield_type", UNKNOWN, id="unknown"),
        pytest.param({"messages": HI, "shields": [{"shield_type": "llama_guard"}]}, "shields[0].shield_type",
                     "The llama_guard shield is not configured in this stack. Turn it on with `llama stack configure "
                     "DIST --name NAME --set safety.llama_guard_shield.model=Llama-Guard-3-1B` (or answer y to \"Do you "
                     "want to configure llama_guard_shield?\"), then restart the stack.", id="unconfigured"),
        pytest.param({"messages": HI, "shields": [{"shield_type": "third_party_shield"}]}, "shields[0].execution_config",
                     'The third_party_shield shield calls a REST endpoint: give its execution_config ({"url": {"uri": '
                     '"https://..."}, "method": "POST"}).', id="no-execution-config"),
        pytest.param({"messages": HI, "shields": [{"shield_type": "third_party_shield", "execution_config": {
                     "url": {"uri": "file:///etc/passwd"}, "method": "GET"}}]}, "shields[0].execution_config.url.uri",
                     "A third-party shield's URL must be http:// or https://.", id="not-http"),
        pytest.param({"messages": [], "shields": []}, "messages", "Give the shields at least one message to judge.", id="no-messages"),
    ],
)  # fmt: skip
def test_what_a_stack_cannot_run_is_a_400(url: str, body: dict[str, Any], field: str, message: str) -> None:
    reply = httpx.post(url + "/safety/run_shields", json=body, timeout=30)
    assert (reply.status_code, reply.json()) == (
        400, {"error": {"message": message, "type": "invalid_request", "status": 400, "field": field}}
    )


def test_an_unconfigured_shield_names_the_build_to_configure(tmp_path) -> None:
    import tomli_w
    from rpc.server import running_server

    from llama_core.stack import Stack
    from llama_rpc.http import create_app

    path = tmp_path / "mine.toml"
    path.write_text(tomli_w.dumps({"name": "mine", "distribution_id": "local-ollama",
                                   "providers": {"safety": {"provider_id": "meta-reference"}}}))  # fmt: skip
    stack = Stack.from_config(path)
    with running_server(lambda: create_app(stack), stack=stack) as base:
        reply = run_shields(base, [{"shield_type": "jailbreak_shield"}])
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == (
        "The jailbreak_shield shield is not configured in this stack. Turn it on with `llama stack configure "
        "local-ollama --name mine --set safety.prompt_guard_shield.model=Prompt-Guard-86M` (or answer y to \"Do you "
        "want to configure prompt_guard_shield?\"), then restart the stack."
    )


def test_an_endpoints_500_is_a_502_without_the_secrets_sent(url: str, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    config = rest(endpoint, "/error?sig=query-secret-1", headers={"Authorization": "Bearer header-secret-2"})
    reply = run_shields(url, [{"shield_type": "third_party_shield", "execution_config": config}])
    assert (reply.status_code, reply.json()) == (502, {"error": {
        "message": f"The third-party shield at {endpoint.url}/error?… answered 500 Internal Server Error: exploded; you sent Authorization ***",
        "type": "provider", "status": 502,
    }})  # fmt: skip
    assert endpoint.requests[0]["query"] == {"sig": ["query-secret-1"]}  # it was sent, and never repeated
    assert "secret" not in caplog.text


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/not-json", 'answered with something other than a JSON object with "is_violation" (true or false): JSON is malformed: invalid character (byte 0)'),
        ("/nowhere", "answered 404 Not Found: no such shield"),
        ("/huge", "answered more than 1024 KiB, which is no verdict."),
    ],
)  # fmt: skip
def test_an_answer_that_is_no_verdict_is_a_502(url: str, endpoint: Endpoint, path: str, message: str) -> None:
    reply = run_shields(url, [{"shield_type": "third_party_shield", "execution_config": rest(endpoint, path)}])
    assert reply.status_code == 502
    assert reply.json()["error"]["message"] == f"The third-party shield at {endpoint.url}{path} {message}"


@pytest.mark.anyio
async def test_a_slow_endpoint_times_out(endpoint: Endpoint) -> None:
    shield = ThirdPartyShield(None, None, timeout=0.5)
    definition = msgspec_convert({"shield_type": "third_party_shield", "execution_config": rest(endpoint, "/slow")})
    try:
        with pytest.raises(ProviderError, match=rf"^The third-party shield at {endpoint.url}/slow did not answer within 0.5 s.$"):
            await shield.run([UserMessage(content="hi")], definition)
    finally:
        await shield.aclose()


@pytest.mark.anyio
async def test_an_endpoint_that_is_not_there(endpoint: Endpoint) -> None:
    from rpc.server import free_port

    shield = ThirdPartyShield(None, None)
    definition = msgspec_convert({"shield_type": "third_party_shield",
                                  "execution_config": {"url": {"uri": f"http://127.0.0.1:{free_port()}/x"}, "method": "POST"}})  # fmt: skip
    try:
        with pytest.raises(ProviderError, match=r"^Cannot reach the third-party shield at http://127.0.0.1:\d+/x: "):
            await shield.run([UserMessage(content="hi")], definition)
    finally:
        await shield.aclose()


def msgspec_convert(data: dict[str, Any]) -> ShieldDefinition:
    import msgspec

    return msgspec.convert(data, ShieldDefinition)


# -- JSON-RPC and MCP ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_json_rpc_and_mcp_serve_run_shields(endpoint: Endpoint) -> None:
    params = {"messages": HI, "shields": [{"shield_type": "third_party_shield", "execution_config": rest(endpoint, "/violation")}]}
    answer = {"responses": [{"shield_type": "third_party_shield", "is_violation": True, "violation_type": "toxicity",
                             "violation_return_message": "Not here."}]}  # fmt: skip
    async with safety_stack() as stack, connected(stack) as peer:
        assert (await peer.call("safety/run_shields", params))["result"] == answer
        assert (await peer.call("safety/run_shields", {"messages": HI, "shields": [{"shield_type": "nope"}]}))["error"] == {
            "code": -32602, "message": UNKNOWN, "data": {"type": "invalid_request", "status": 400, "field": "shields[0].shield_type"},
        }  # fmt: skip
        tools = {t["name"]: t for t in (await peer.call("tools/list"))["result"]["tools"]}
        assert "safety_run_shields" in tools and tools["safety_run_shields"]["title"] == "safety/run_shields"
        result = (await peer.call("tools/call", {"name": "safety_run_shields", "arguments": params}))["result"]
        assert result["isError"] is False and result["structuredContent"] == answer


@pytest.mark.anyio
async def test_the_served_shields_are_logged_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="llama_core.providers.safety.meta_reference"):
        async with safety_stack(llama_guard_shield={"model": "Llama-Guard-3-1B"}) as stack:
            assert isinstance(stack.safety, MetaReferenceSafety)
            served = stack.safety.served_shields()
    assert "llama_guard (Llama-Guard-3-1B)" in served and "third_party_shield" in served
    assert served == sorted(served)
    assert f"safety: serving shields {', '.join(served)}" in caplog.messages
    async with safety_stack() as stack:
        assert "llama_guard (Llama-Guard-3-1B)" not in stack.safety.served_shields()
