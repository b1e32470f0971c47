"""The Quart app through its test client: JSON bodies, SSE streams, error bodies, API key, OpenAPI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rpc.fakes import MODEL, FakeStack

from llama_core.routes import METHODS
from llama_rpc.http import create_app
from llama_rpc.openapi import openapi_document

pytestmark = pytest.mark.anyio

HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Quart runs on asyncio only


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


@pytest.fixture
def client(stack: FakeStack) -> Any:
    return create_app(stack).test_client()


def events(body: bytes) -> list[Any]:
    """The JSON of each `data:` event (every event is one line and a blank one)."""
    parts = body.decode().split("\n\n")
    assert parts[-1] == ""
    assert all(p.startswith("data: ") and "\n" not in p for p in parts[:-1])
    return [json.loads(p.removeprefix("data: ")) for p in parts[:-1]]


async def test_chat_completion_json(client: Any) -> None:
    response = await client.post("/inference/chat_completion", json=HELLO)
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert json.loads(await response.get_data()) == {
        "completion_message": {"role": "assistant", "content": "You said: hi there", "stop_reason": "end_of_turn", "tool_calls": []},
        "logprobs": None,
    }


async def test_legacy_request_wrapper(client: Any) -> None:
    response = await client.post("/inference/chat_completion", json={"request": HELLO})
    assert json.loads(await response.get_data())["completion_message"]["content"] == "You said: hi there"


async def test_chat_completion_stream(client: Any, stack: FakeStack) -> None:
    response = await client.post("/inference/chat_completion", json={**HELLO, "stream": True})
    assert response.status_code == 200
    assert response.content_type == "text/event-stream"
    got = [(e["event"]["event_type"], e["event"]["delta"], e["event"]["stop_reason"]) for e in events(await response.get_data())]
    assert got == [
        ("start", "", None),
        ("progress", "You ", None),
        ("progress", "said: ", None),
        ("progress", "hi ", None),
        ("progress", "there", None),
        ("complete", "", "end_of_turn"),
    ]
    assert stack.providers["inference"].open_streams == 0


async def test_completion_stream(client: Any) -> None:
    response = await client.post("/inference/completion", json={"model": MODEL, "content": "it rained", "stream": True})
    assert events(await response.get_data()) == [
        {"delta": "and ", "stop_reason": None, "logprobs": None},
        {"delta": "then ", "stop_reason": None, "logprobs": None},
        {"delta": "it ", "stop_reason": None, "logprobs": None},
        {"delta": "rained", "stop_reason": "end_of_turn", "logprobs": None},
    ]


async def test_error_inside_a_stream_is_a_last_event(client: Any, stack: FakeStack) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "fail"}], "stream": True}
    response = await client.post("/inference/chat_completion", json=body)
    got = events(await response.get_data())
    assert [e.get("event", {}).get("event_type") for e in got] == ["start", "progress", None]
    assert got[-1] == {"error": {"message": "the fake engine broke", "type": "provider", "status": 502}}
    assert stack.providers["inference"].open_streams == 0


BAD_REQUESTS = [
    pytest.param(b"{bad", 400, None, "Malformed JSON body", id="malformed-json"),
    pytest.param(b"", 400, "model", "Missing required field `model`", id="empty-body"),
    pytest.param(json.dumps({"model": MODEL}), 400, "messages", "Missing required field `messages`", id="missing-field"),
    pytest.param(
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": 3}]}),
        400, "messages[0].content", "Invalid `messages[0].content`", id="wrong-type",
    ),
    pytest.param(
        json.dumps({**HELLO, "sampling_params": {"temperature": -1}}),
        400, "sampling_params.temperature", "Invalid `sampling_params.temperature`", id="out-of-range",
    ),
    pytest.param(json.dumps({**HELLO, "colour": "red"}), 400, "colour", "Unknown field `colour`", id="unknown-field"),
    pytest.param(json.dumps({**HELLO, "model": "Llama-9"}), 404, None, "Unknown model 'Llama-9'", id="unknown-model"),
]


@pytest.mark.parametrize(("body", "status", "field", "message"), BAD_REQUESTS)
async def test_bad_requests(client: Any, body: bytes | str, status: int, field: str | None, message: str) -> None:
    response = await client.post("/inference/chat_completion", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = json.loads(await response.get_data())["error"]
    assert error.get("field") == field
    assert error["message"].startswith(message)
    assert error["status"] == status
    # and the server keeps serving
    assert (await client.post("/inference/chat_completion", json=HELLO)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "type_"),
    [
        pytest.param("POST", "/safety/run_shields", 501, "not_configured", id="api-without-provider"),
        pytest.param("GET", "/memory_banks/list", 501, "not_configured", id="memory-without-provider"),
        pytest.param("POST", "/agentic_system/turn/create", 501, "not_configured", id="agents-without-provider"),
        pytest.param("GET", "/no/such/route", 404, "not_found", id="unknown-route"),
        pytest.param("GET", "/inference/chat_completion", 405, "method_not_allowed", id="wrong-verb"),
    ],
)
async def test_status_errors(client: Any, method: str, path: str, status: int, type_: str) -> None:
    response = await client.open(path, method=method, json={})
    assert response.status_code == status
    assert json.loads(await response.get_data())["error"]["type"] == type_


async def test_not_configured_names_the_api(client: Any) -> None:
    response = await client.post("/safety/run_shields", json={})
    assert json.loads(await response.get_data())["error"]["message"] == (
        "This stack serves no safety API: add a safety provider to its run config."
    )


async def test_unexpected_error_is_500_without_details(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    response = await client.post("/inference/batch_completion", json={"model": MODEL, "content_batch": ["a"]})
    assert response.status_code == 500
    assert json.loads(await response.get_data()) == {"error": {"message": "Internal server error", "type": "internal", "status": 500}}
    assert "NotImplementedError" in caplog.text  # logged for the operator, not sent


async def test_body_over_the_limit_is_413(stack: FakeStack) -> None:
    client = create_app(stack, max_body_bytes=64).test_client()
    response = await client.post("/inference/chat_completion", json={**HELLO, "messages": [{"role": "user", "content": "x" * 100}]})
    assert response.status_code == 413
    assert json.loads(await response.get_data())["error"] == {
        "message": "The request body is larger than this server's limit of 64 bytes.",
        "type": "payload_too_large",
        "status": 413,
    }


async def test_get_reads_the_query_string(client: Any) -> None:
    response = await client.get("/models/get", query_string={"core_model_id": MODEL})
    assert json.loads(await response.get_data())["descriptor"] == MODEL
    response = await client.get("/models/get", query_string={"core_model_id": "Llama-9"})
    assert response.status_code == 404
    response = await client.get("/models/get", query_string={"model": MODEL})
    assert json.loads(await response.get_data())["error"]["field"] == "model"
    response = await client.get("/models/list")
    assert [m["descriptor"] for m in json.loads(await response.get_data())] == [MODEL]


async def test_health(client: Any) -> None:
    response = await client.get("/health")
    assert (response.status_code, json.loads(await response.get_data())) == (
        200, {"status": "OK", "apis": {"inference": {"status": "ok"}, "models": {"status": "ok"}}}
    )  # fmt: skip


@pytest.mark.parametrize("state", ["starting", "restarting", "down"])
async def test_health_is_503_when_inference_cannot_serve(stack: FakeStack, client: Any, state: str) -> None:
    stack.providers["inference"].state = state
    response = await client.get("/health")
    assert (response.status_code, json.loads(await response.get_data())) == (
        503, {"status": "Error", "apis": {"inference": {"status": state}, "models": {"status": "ok"}}}
    )  # fmt: skip


@pytest.mark.parametrize("state", ["ok", "restarting"])
async def test_health_answers_as_the_openapi_document_says(stack: FakeStack, client: Any, state: str) -> None:
    import jsonschema

    stack.providers["inference"].state = state
    response = await client.get("/health")
    doc = json.loads(await (await client.get("/openapi.json")).get_data())
    described = doc["paths"]["/health"]["get"]["responses"][str(response.status_code)]
    jsonschema.validate(json.loads(await response.get_data()), described["content"]["application/json"]["schema"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong"}, 401, id="wrong-key"),
        pytest.param({"Authorization": "sekret"}, 401, id="not-bearer"),
        pytest.param({"Authorization": "Bearer sekret"}, 200, id="right-key"),
    ],
)
async def test_api_key(stack: FakeStack, headers: dict[str, str], status: int) -> None:
    client = create_app(stack, api_key="sekret").test_client()
    for path in ("/inference/chat_completion", "/v1/chat/completions"):
        response = await client.post(path, json=HELLO, headers=headers)
        assert response.status_code == status
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "sekret" not in (await response.get_data()).decode()
    assert (await client.get("/health")).status_code == 200  # liveness probes need no key


async def test_openapi_document(client: Any) -> None:
    from openapi_spec_validator import validate

    response = await client.get("/openapi.json")
    doc = json.loads(await response.get_data())
    validate(doc)
    served = {(verb.upper(), path) for path, ops in doc["paths"].items() for verb in ops}
    # the routes of the APIs this stack has a provider for (the fake: inference and models), no others
    routes = {(verb, path) for verb, path in served if path in {m.path for m in METHODS.values()}}
    assert routes == {(m.verb, m.path) for m in METHODS.values() if m.api in ("inference", "models")}
    assert {("POST", "/v1/chat/completions"), ("GET", "/v1/openai/v1/models"), ("GET", "/health")} <= served
    chat = doc["paths"]["/inference/chat_completion"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert doc["paths"]["/models/get"]["get"]["parameters"] == [
        {"name": "core_model_id", "in": "query", "required": True, "schema": {"type": "string"}, "explode": True}
    ]
    whole = openapi_document(METHODS.values())  # of a stack that serves every route
    validate(whole)
    assert {(m.verb, m.path) for m in METHODS.values()} <= {(verb.upper(), path) for path, ops in whole["paths"].items() for verb in ops}
    turn = whole["paths"]["/agentic_system/turn/create"]["post"]["responses"]["200"]["content"]
    assert set(turn) == {"text/event-stream"}
    assert {code for code in whole["paths"]["/models/get"]["get"]["responses"] if code != "200"} == {
        "400", "401", "404", "409", "413", "501", "502", "503", "default"  # every status of the error tree
    }


async def test_openai_model_ids_may_hold_slashes(client: Any) -> None:
    response = await client.get("/v1/openai/v1/models/meta-llama/Llama-9")
    assert response.status_code == 404
    error = json.loads(await response.get_data())["error"]
    assert (error["code"], error["param"]) == (404, None)
    assert error["message"].startswith("Unknown model 'meta-llama/Llama-9'")  # the provider's 404, not the router's


async def test_openai_stream_error_is_an_openai_error_event(client: Any) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "fail"}], "stream": True}
    raw = await (await client.post("/v1/chat/completions", json=body)).get_data()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")  # after the error event too, as OpenAI ends every stream
    got = events(raw.removesuffix(b"data: [DONE]\n\n"))
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert got[-1] == {"error": {"message": "the fake engine broke", "type": "provider", "param": None, "code": 502}}
