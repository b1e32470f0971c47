"""Small pure pieces of the transport: query strings, SSE framing and parsing, error bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from llama_core import errors
from llama_core.client import error_from_answer, query_params
from llama_core.sse import iter_sse_data, read_to_end
from llama_core.types.agents import AgenticSystemSessionGetRequest
from llama_core.types.memory import GetDocumentsRequest
from llama_core.types.schema import decode_request
from llama_rpc.errors import error_body, openai_error_body
from llama_rpc.http import query_body
from llama_rpc.serve import bind_address
from llama_rpc.sse import sse_stream


@pytest.mark.parametrize(
    ("request_type", "args", "decoded"),
    [
        pytest.param(GetDocumentsRequest, [("bank_id", "b"), ("document_ids", "d1"), ("document_ids", "d2")],
                     GetDocumentsRequest(bank_id="b", document_ids=["d1", "d2"]), id="repeated-list"),
        pytest.param(GetDocumentsRequest, [("bank_id", "b"), ("document_ids", "d1")],
                     GetDocumentsRequest(bank_id="b", document_ids=["d1"]), id="one-item-list"),
        pytest.param(AgenticSystemSessionGetRequest, [("agent_id", "a"), ("session_id", "s")],
                     AgenticSystemSessionGetRequest(agent_id="a", session_id="s"), id="optional-list-absent"),
        pytest.param(AgenticSystemSessionGetRequest, [("agent_id", "a"), ("session_id", "s"), ("turn_ids", "t")],
                     AgenticSystemSessionGetRequest(agent_id="a", session_id="s", turn_ids=["t"]), id="optional-list"),
    ],
)  # fmt: skip
def test_query_string_round_trip(request_type: Any, args: list[tuple[str, str]], decoded: Any) -> None:
    assert decode_request(request_type, query_body(request_type, MultiDict(args))) == decoded
    assert query_params(decoded) == args  # what StackClient sends is what the server reads


def test_query_string_errors_name_the_field() -> None:
    with pytest.raises(errors.InvalidRequestError) as caught:
        decode_request(GetDocumentsRequest, query_body(GetDocumentsRequest, MultiDict([("bank", "b")])))
    assert caught.value.field == "bank"


async def _items(*items: Any, fail: Exception | None = None) -> AsyncIterator[Any]:
    for item in items:
        yield item
    if fail is not None:
        raise fail


@pytest.mark.anyio
async def test_sse_stream_frames_and_errors() -> None:
    out = [e async for e in sse_stream(_items({"a": 1}, "x"), error_body)]
    assert out == [b'data: {"a":1}\n\n', b'data: "x"\n\n']
    out = [e async for e in sse_stream(_items({"a": 1}, fail=errors.UnavailableError("busy")), error_body, done=True)]
    assert out == [
        b'data: {"a":1}\n\n',
        b'data: {"error":{"message":"busy","type":"unavailable","status":503}}\n\n',
        b"data: [DONE]\n\n",
    ]


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


@pytest.mark.anyio
async def test_iter_sse_data() -> None:
    lines = ["data: {}", "", ": a comment", "event: x", "data: a", "data:b", "", "data: [DONE]", "", "data: late", ""]
    assert [e async for e in iter_sse_data(_lines(*lines))] == ["{}", "a\nb"]
    assert [e async for e in iter_sse_data(_lines("data: 1", "", "data: 2"))] == ["1", "2"]  # no blank line at the end


async def _cut_after_done() -> AsyncIterator[str]:
    for line in ("data: 1", "", "data: [DONE]", ""):
        yield line
    raise errors.ProviderError("the vendor's stream was cut midway")


@pytest.mark.anyio
async def test_iter_sse_data_drains_after_done_as_told() -> None:
    async def quiet(lines: AsyncIterator[str]) -> None:  # as a vendor stream's reader: a cut after [DONE] loses nothing
        try:
            await read_to_end(lines)
        except errors.ProviderError:
            pass

    assert [e async for e in iter_sse_data(_cut_after_done(), quiet)] == ["1"]
    with pytest.raises(errors.ProviderError):
        [e async for e in iter_sse_data(_cut_after_done())]


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        pytest.param(errors.InvalidRequestError("bad", field="a.b"), 400,
                     {"message": "bad", "type": "invalid_request", "status": 400, "field": "a.b"}, id="invalid"),
        pytest.param(errors.UnsupportedError("no tools", field="tools"), 400,
                     {"message": "no tools", "type": "unsupported", "status": 400, "field": "tools"}, id="unsupported"),
        pytest.param(errors.AuthenticationError("key"), 401, {"message": "key", "type": "authentication", "status": 401}, id="401"),
        pytest.param(errors.ModelNotFoundError("m"), 404,
                     {"message": "Unknown model 'm'. See `llama model list --show-all`.", "type": "model_not_found", "status": 404},
                     id="model"),
        pytest.param(errors.ConflictError("exists"), 409, {"message": "exists", "type": "conflict", "status": 409}, id="409"),
        pytest.param(errors.PayloadTooLargeError("big"), 413, {"message": "big", "type": "payload_too_large", "status": 413}, id="413"),
        pytest.param(errors.NotConfiguredError("none"), 501, {"message": "none", "type": "not_configured", "status": 501}, id="501"),
        pytest.param(errors.UnavailableError("busy"), 503, {"message": "busy", "type": "unavailable", "status": 503}, id="503"),
        pytest.param(errors.CheckpointError("gone"), 500, {"message": "gone", "type": "checkpoint", "status": 500}, id="checkpoint"),
        pytest.param(RequestEntityTooLarge(), 413,
                     {"message": RequestEntityTooLarge.description, "type": "request_entity_too_large", "status": 413}, id="framework"),
        pytest.param(KeyError("/secret/path"), 500, {"message": "Internal server error", "type": "internal", "status": 500}, id="bug"),
    ],
)  # fmt: skip
def test_error_bodies(error: Exception, status: int, body: dict[str, Any]) -> None:
    assert error_body(error) == (status, {"error": body})
    got_status, openai_body = openai_error_body(error)
    assert (got_status, openai_body["error"]["code"], openai_body["error"]["param"]) == (status, status, body.get("field"))
    # and the client turns the body back into the same class, field included
    back = error_from_answer(status, json.dumps({"error": body}).encode())
    assert back.status == status
    assert (back.message, getattr(back, "field", None)) == (body["message"], body.get("field"))


def test_client_reads_a_non_json_error() -> None:
    back = error_from_answer(502, b"<html>Bad gateway</html>\n")
    assert (type(back), back.message) == (errors.ProviderError, "<html>Bad gateway</html>")


@pytest.mark.parametrize(
    ("host", "ipv6_off", "bind"),
    [
        pytest.param(None, False, "127.0.0.1:5000", id="default-localhost"),
        pytest.param("localhost", False, "127.0.0.1:5000", id="localhost"),
        pytest.param("::", False, "[::]:5000", id="all-interfaces"),
        pytest.param("::", True, "0.0.0.0:5000", id="all-ipv4"),
        pytest.param("::1", False, "[::1]:5000", id="ipv6-loopback"),
        pytest.param("10.0.0.2", False, "10.0.0.2:5000", id="ipv4"),
        pytest.param("myhost", False, "myhost:5000", id="name"),
    ],
)
def test_bind_address(host: str | None, ipv6_off: bool, bind: str) -> None:
    assert bind_address(host, 5000, ipv6_off) == bind


def test_bodies_are_plain_json() -> None:
    status, body = error_body(errors.InvalidRequestError("x"))
    assert msgspec.json.decode(msgspec.json.encode(body)) == {"error": {"message": "x", "type": "invalid_request", "status": 400}}
