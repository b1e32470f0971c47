"""A route added to a copy of the route table, and nowhere else, is served five ways.

`shout/say` is a new API method (the `Shout` Protocol below) with a provider on the fake stack. One
row in a copy of `routes.METHODS` must make HTTP, JSON-RPC, MCP, OpenAPI and StackClient serve it,
and leave the real table (and the transports built on it) without it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import anyio
import pytest
from rpc.fakes import FakeStack
from rpc.server import running_server
from rpc.test_jsonrpc import Peer

from llama_core.client import StackClient
from llama_core.errors import InvalidRequestError
from llama_core.routes import METHODS, Method, Streams, route, table
from llama_core.types._base import Base
from llama_rpc.http import create_app
from llama_rpc.mcp import McpServer

pytestmark = pytest.mark.anyio


class ShoutRequest(Base):
    """POST /shout/say: `text`, upper-cased back."""

    text: str


class ShoutResponse(Base):
    text: str


class Shout(Protocol):
    async def shout(self, request: ShoutRequest) -> ShoutResponse:
        """The text, upper-cased."""
        ...


class FakeShout:
    async def shout(self, request: ShoutRequest) -> ShoutResponse:
        if not request.text:
            raise InvalidRequestError("Nothing to shout", field="text")
        return ShoutResponse(text=request.text.upper())


TABLE: dict[str, Method] = {**METHODS, **table(route("shout/say", Shout, "shout", api="shout"))}


class ShoutStack(FakeStack):
    """The fake stack (inference, models) and a `shout` API."""

    def __init__(self) -> None:
        super().__init__()
        self.providers["shout"] = FakeShout()


class ShoutClient(StackClient, methods=TABLE):
    pass


def test_the_row_reads_its_types_from_the_protocol() -> None:
    method = TABLE["shout/say"]
    assert (method.verb, method.path, method.api, method.call, method.streams) == ("POST", "/shout/say", "shout", "shout", Streams.never)
    assert (method.request_type, method.response_type, method.chunk_type) == (ShoutRequest, ShoutResponse, None)
    assert method.summary == "The text, upper-cased."
    assert "shout/say" not in METHODS  # the copy only
    assert not hasattr(StackClient, "shout") and hasattr(ShoutClient, "chat_completion")


# --- HTTP and OpenAPI (Quart's test client runs on asyncio only) ------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_http_serves_the_new_route() -> None:
    client = create_app(ShoutStack(), methods=TABLE).test_client()
    response = await client.post("/shout/say", json={"text": "hi there"})
    assert (response.status_code, json.loads(await response.get_data())) == (200, {"text": "HI THERE"})
    response = await client.post("/shout/say", json={"text": ""})
    assert (response.status_code, json.loads(await response.get_data())) == (
        400, {"error": {"message": "Nothing to shout", "type": "invalid_request", "status": 400, "field": "text"}},
    )  # fmt: skip
    assert (await create_app(ShoutStack()).test_client().post("/shout/say", json={"text": "hi"})).status_code == 404


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_openapi_lists_the_new_route_where_it_is_served() -> None:
    served = await (await create_app(ShoutStack(), methods=TABLE).test_client().get("/openapi.json")).get_json()
    operation = served["paths"]["/shout/say"]["post"]
    assert (operation["operationId"], operation["summary"], operation["tags"]) == ("shout_say", "The text, upper-cased.", ["shout"])
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert served["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]["required"] == ["text"]
    unserved = await (await create_app(FakeStack(), methods=TABLE).test_client().get("/openapi.json")).get_json()
    assert "/shout/say" not in unserved["paths"]  # a stack without a shout provider does not offer it


# --- JSON-RPC and MCP -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connected(server: McpServer) -> AsyncIterator[Peer]:
    to_server, server_in = anyio.create_memory_object_stream[bytes](100)
    server_out, from_server = anyio.create_memory_object_stream[bytes](100)
    async with to_server, server_in, server_out, from_server, anyio.create_task_group() as tg:
        tg.start_soon(server.serve, server_in, server_out)
        yield Peer(to_server, from_server)
        await to_server.aclose()


async def test_json_rpc_serves_the_new_route() -> None:
    async with connected(McpServer(ShoutStack(), TABLE)) as peer:
        assert await peer.call("shout/say", {"text": "hi"}) == {"jsonrpc": "2.0", "id": 1, "result": {"text": "HI"}}
        assert (await peer.call("shout/say", {"text": ""}, id=2))["error"] == {
            "code": -32602, "message": "Nothing to shout", "data": {"type": "invalid_request", "status": 400, "field": "text"},
        }  # fmt: skip
    async with connected(McpServer(ShoutStack())) as peer:
        assert (await peer.call("shout/say", {"text": "hi"}))["error"] == {"code": -32601, "message": "Method not found", "data": "shout/say"}


async def test_mcp_lists_and_calls_the_new_tool() -> None:
    async with connected(McpServer(ShoutStack(), TABLE)) as peer:
        tools = {t["name"]: t for t in (await peer.call("tools/list"))["result"]["tools"]}
        assert tools["shout_say"]["title"] == "shout/say"
        assert tools["shout_say"]["inputSchema"]["properties"] == {"text": {"type": "string"}}
        result = (await peer.call("tools/call", {"name": "shout_say", "arguments": {"text": "hi"}}))["result"]
        assert result == {"content": [{"type": "text", "text": '{"text":"HI"}'}], "structuredContent": {"text": "HI"}, "isError": False}
    async with connected(McpServer(FakeStack(), TABLE)) as peer:  # no shout provider: no such tool
        assert "shout_say" not in {t["name"] for t in (await peer.call("tools/list"))["result"]["tools"]}


# --- StackClient over a real server -----------------------------------------------------------


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    stack = ShoutStack()
    with running_server(lambda: create_app(stack, methods=TABLE)) as base:
        yield base


async def test_stack_client_calls_the_new_route(url: str) -> None:
    async with ShoutClient(url) as client:
        assert await client.shout(ShoutRequest(text="hi")) == ShoutResponse(text="HI")
        with pytest.raises(InvalidRequestError) as caught:
            await client.shout(ShoutRequest(text=""))
        assert (caught.value.message, caught.value.field) == ("Nothing to shout", "text")
        assert [m.descriptor for m in await client.list_models()] == ["Llama3.2-1B-Instruct"]  # the table's other routes
