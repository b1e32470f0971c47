"""JSON-RPC 2.0 over in-memory line streams against the fake stack: answers, codes, streams, tasks.

`connected()` runs the real server (McpServer.serve: framing, dispatch, writer) on anyio memory
streams; `Peer` writes lines and reads them back, keeping notifications apart.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest
from rpc.fakes import MODEL, FakeStack

from llama_core import errors
from llama_rpc.jsonrpc import CODES, INTERNAL_ERROR, error_object
from llama_rpc.mcp import McpServer

pytestmark = pytest.mark.anyio

HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]}
ANSWER = {"role": "assistant", "content": "You said: hi there", "stop_reason": "end_of_turn", "tool_calls": []}


class Peer:
    """The client end: raw lines out, parsed messages in."""

    def __init__(self, out: Any, into: Any) -> None:
        self.out, self.into = out, into
        self.buffer = b""
        self.notifications: list[dict[str, Any]] = []

    async def send_line(self, line: bytes | str) -> None:
        await self.out.send(line.encode() if isinstance(line, str) else line)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_line(json.dumps({"jsonrpc": "2.0", **message}) + "\n")

    async def receive(self) -> dict[str, Any]:
        with anyio.fail_after(10):
            while b"\n" not in self.buffer:
                self.buffer += await self.into.receive()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    async def response(self) -> dict[str, Any]:
        """The next response; notifications on the way are kept in `notifications`."""
        while "method" in (message := await self.receive()):
            self.notifications.append(message)
        return message

    async def call(self, method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
        await self.send({"id": id, "method": method} | ({} if params is None else {"params": params}))
        reply = await self.response()
        assert reply["id"] == id
        return reply


@contextlib.asynccontextmanager
async def connected(stack: Any, **options: Any) -> AsyncIterator[Peer]:
    """A server on memory streams; leaving closes its input (EOF) and waits for it to finish."""
    to_server, server_in = anyio.create_memory_object_stream[bytes](1000)
    server_out, from_server = anyio.create_memory_object_stream[bytes](1000)
    async with to_server, server_in, server_out, from_server, anyio.create_task_group() as tg:
        tg.start_soon(lambda: McpServer(stack).serve(server_in, server_out, **options))
        yield Peer(to_server, from_server)
        await to_server.aclose()


@pytest.fixture
def stack() -> FakeStack:
    return FakeStack()


async def test_models_list_and_chat(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        assert await peer.call("models/list") == {
            "jsonrpc": "2.0", "id": 1,
            "result": [{"descriptor": MODEL, "core_model_id": MODEL, "huggingface_repo": None, "description": "",
                        "max_seq_length": 131072, "arch_args": {}, "recommended_sampling_params": None,
                        "quantization_format": "bf16", "pth_file_count": 1, "hardware_requirements": None, "provider": "fake"}],
        }  # fmt: skip
        reply = await peer.call("inference/chat_completion", HELLO, id="a")
        assert reply == {"jsonrpc": "2.0", "id": "a", "result": {"completion_message": ANSWER, "logprobs": None}}
        assert peer.notifications == []


async def test_a_stream_notifies_each_chunk_then_answers_the_folded_result(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        reply = await peer.call("inference/chat_completion", {**HELLO, "stream": True}, id=7)
        assert reply["result"] == {"completion_message": ANSWER, "logprobs": None}  # as without stream
        assert [n["method"] for n in peer.notifications] == ["stream/chunk"] * 6
        assert {n["params"]["requestId"] for n in peer.notifications} == {7}
        events = [n["params"]["chunk"]["event"] for n in peer.notifications]
        assert [(e["event_type"], e["delta"], e["stop_reason"]) for e in events] == [
            ("start", "", None), ("progress", "You ", None), ("progress", "said: ", None),
            ("progress", "hi ", None), ("progress", "there", None), ("complete", "", "end_of_turn"),
        ]  # fmt: skip
        assert stack.providers["inference"].open_streams == 0


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("inference/chat_completion", {**HELLO, "messages": [{"role": "user", "content": "call it"}],
                                       "tools": [{"tool_name": "get_weather"}]}),
        ("inference/completion", {"model": MODEL, "content": "the end", "sampling_params": {"max_tokens": 2}}),
    ],
    ids=["chat-tool-call", "completion"],
)  # fmt: skip
async def test_a_folded_stream_equals_the_plain_answer(stack: FakeStack, method: str, params: dict[str, Any]) -> None:
    async with connected(stack) as peer:
        plain = await peer.call(method, params, id=1)
        streamed = await peer.call(method, {**params, "stream": True}, id=2)
        assert streamed["result"] == plain["result"]
        assert len(peer.notifications) > 1


NULL_ID_ERRORS = [
    ("not json", -32700, "Parse error"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "ping"', -32700, "Parse error"),
    ("[]", -32600, "Invalid request: a message is one JSON object (batches are not supported)"),
    ('[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600, "Invalid request: a message is one JSON object (batches are not supported)"),
    ("42", -32600, "Invalid request: a message is one JSON object (batches are not supported)"),
    ('{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, "Invalid request: id must be a string or an integer"),
    ('{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600, "Invalid request: id must be a string or an integer"),
    ('{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, "Invalid request: id must be a string or an integer"),
    ('{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600, "Invalid request: id must be a string or an integer"),
]


@pytest.mark.parametrize(("line", "code", "message"), NULL_ID_ERRORS, ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(NULL_ID_ERRORS)])
async def test_unreadable_messages_answer_with_a_null_id(stack: FakeStack, line: str, code: int, message: str) -> None:
    async with connected(stack) as peer:
        await peer.send_line(line + "\n")
        assert await peer.receive() == {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}


ERRORS = [
    ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, -32600, 'Invalid request: jsonrpc must be "2.0"', None),
    ({"jsonrpc": "2.0", "id": 1, "method": 5}, -32600, "Invalid request: method must be a string", None),
    ({"jsonrpc": "2.0", "id": 1}, -32600, "Invalid request: no method", None),
    ({"jsonrpc": "2.0", "id": 1, "method": "notifications/initialized"}, -32600,
     "Invalid request: notifications/initialized is a notification; send it without an id", None),
    ({"jsonrpc": "2.0", "id": 1, "method": "no/such"}, -32601, "Method not found", "no/such"),
    ({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}, -32601, "Method not found", "server/discover"),
    ({"jsonrpc": "2.0", "id": 1, "method": "inference/chat_completion", "params": {"model": MODEL}}, -32602,
     "Missing required field `messages`", {"type": "invalid_request", "status": 400, "field": "messages"}),
    ({"jsonrpc": "2.0", "id": 1, "method": "inference/chat_completion",
      "params": {"model": MODEL, "messages": [{"role": "user", "content": 5}]}}, -32602,
     "Invalid `messages[0].content`: Expected `str | array`, got `int`",
     {"type": "invalid_request", "status": 400, "field": "messages[0].content"}),
    ({"jsonrpc": "2.0", "id": 1, "method": "inference/chat_completion", "params": [MODEL]}, -32602,
     "Invalid request: Expected `object`, got `array`", {"type": "invalid_request", "status": 400}),
    ({"jsonrpc": "2.0", "id": 1, "method": "models/get", "params": {"core_model_id": "Llama3.1-8B"}}, -32602,
     "Unknown model 'Llama3.1-8B'. Did you mean: Llama3.2-1B-Instruct? See `llama model list --show-all`.", {"type": "model_not_found", "status": 404}),
    ({"jsonrpc": "2.0", "id": 1, "method": "memory_banks/list"}, -32601,
     "This stack serves no memory API: add a memory provider to its run config.", {"type": "not_configured", "status": 501}),
    ({"jsonrpc": "2.0", "id": 1, "method": "inference/batch_completion", "params": {"model": MODEL, "content_batch": ["x"]}},
     -32603, "Internal error", None),
    ({"jsonrpc": "2.0", "id": 1, "method": "inference/chat_completion",
      "params": {**HELLO, "messages": [{"role": "user", "content": "fail"}], "stream": True}}, -32603,
     "the fake engine broke", {"type": "provider", "status": 502}),
    ({"jsonrpc": "2.0", "id": 2**80, "method": "no/such"}, -32601, "Method not found", "no/such"),
    ({"jsonrpc": "2.0", "id": "x" * 5000, "method": "no/such"}, -32601, "Method not found", "no/such"),
]  # fmt: skip


@pytest.mark.parametrize(("message", "code", "text", "data"), ERRORS, ids=[f"{c}-{i}" for i, (_, c, _, _) in enumerate(ERRORS)])
async def test_errors_keep_the_id_and_name_the_field(stack: FakeStack, message: dict, code: int, text: str, data: Any) -> None:
    async with connected(stack) as peer:
        await peer.send_line(json.dumps(message) + "\n")
        error = {"code": code, "message": text} | ({} if data is None else {"data": data})
        assert await peer.response() == {"jsonrpc": "2.0", "id": message["id"], "error": error}


async def test_notifications_and_responses_from_the_client_get_no_answer(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        for message in [
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "method": "no/such/notification", "params": {"x": 1}},
            {"jsonrpc": "1.0", "method": "ping"},  # malformed, but without an id: nobody to tell
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},  # unknown id
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": "garbage"},
            {"jsonrpc": "2.0", "id": 5, "result": {}},  # a response: we sent no request
        ]:
            await peer.send_line(json.dumps(message) + "\n")
        assert await peer.call("ping", id="last") == {"jsonrpc": "2.0", "id": "last", "result": {}}


async def test_framing_tolerates_crlf_blank_lines_and_split_writes(stack: FakeStack) -> None:
    async with connected(stack) as peer:
        line = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\r\n\n   \n'
        for i in range(len(line)):  # one byte per write
            await peer.send_line(line[i : i + 1])
        assert await peer.receive() == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_a_slow_call_never_blocks_ping(stack: FakeStack) -> None:
    slow = {**HELLO, "messages": [{"role": "user", "content": "slow " + "word " * 20}], "stream": True}
    async with connected(stack) as peer:
        await peer.send({"id": 1, "method": "inference/chat_completion", "params": slow})
        await peer.send({"id": 2, "method": "ping"})
        with anyio.fail_after(0.5):  # the stream takes > 1 s
            assert await peer.response() == {"jsonrpc": "2.0", "id": 2, "result": {}}
        assert (await peer.response())["id"] == 1


async def test_cancelled_requests_stop_and_get_no_answer(stack: FakeStack) -> None:
    slow = {**HELLO, "messages": [{"role": "user", "content": "slow " + "word " * 100}], "stream": True}
    async with connected(stack) as peer:
        await peer.send({"id": 1, "method": "inference/chat_completion", "params": slow})
        assert (await peer.receive())["method"] == "stream/chunk"
        await peer.send({"method": "notifications/cancelled", "params": {"requestId": 1, "reason": "user"}})
        await peer.send({"id": 2, "method": "ping"})
        assert await peer.response() == {"jsonrpc": "2.0", "id": 2, "result": {}}
        await anyio.sleep(0.2)
        assert await peer.call("ping", id=3) == {"jsonrpc": "2.0", "id": 3, "result": {}}  # nothing for id 1
        assert (stack.providers["inference"].open_streams, stack.providers["inference"].closed_streams) == (0, 1)


async def test_an_id_in_flight_cannot_be_reused(stack: FakeStack) -> None:
    slow = {**HELLO, "messages": [{"role": "user", "content": "slow a b c"}], "stream": True}
    async with connected(stack) as peer:
        await peer.send({"id": 1, "method": "inference/chat_completion", "params": slow})
        await peer.send({"id": 1, "method": "ping"})
        assert await peer.response() == {
            "jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": "Invalid request: id 1 is already in use"}
        }  # fmt: skip
        assert "result" in await peer.response()


async def test_end_of_input_stops_what_is_left_promptly(stack: FakeStack) -> None:
    slow = {**HELLO, "messages": [{"role": "user", "content": "slow " + "word " * 200}], "stream": True}
    with anyio.fail_after(3):  # the stream alone would take 10 s
        async with connected(stack, eof_grace=0.1) as peer:
            await peer.send({"id": 1, "method": "inference/chat_completion", "params": slow})
            assert (await peer.receive())["method"] == "stream/chunk"
    assert stack.providers["inference"].open_streams == 0


async def test_a_request_at_end_of_input_is_still_answered(stack: FakeStack) -> None:
    slow = {**HELLO, "messages": [{"role": "user", "content": "slow " + "word " * 25}], "stream": True}  # 1.3 s
    async with connected(stack) as peer:
        await peer.send({"id": 1, "method": "inference/chat_completion", "params": slow})
        await peer.out.aclose()  # EOF right behind the request, as `echo ... | python -m llama_rpc`
        answer = (await peer.response())["result"]["completion_message"]["content"]
        assert answer == "You said: slow " + "word " * 25


async def test_after_mcp_initialize_end_of_input_leaves_one_second(stack: FakeStack) -> None:
    slow = {**HELLO, "messages": [{"role": "user", "content": "slow " + "word " * 200}], "stream": True}
    with anyio.fail_after(3):  # the stream alone would take 10 s
        async with connected(stack) as peer:
            await peer.call("initialize", {"protocolVersion": "2025-11-25"})
            await peer.send({"id": 2, "method": "inference/chat_completion", "params": slow})
            assert (await peer.receive())["method"] == "stream/chunk"
    assert stack.providers["inference"].open_streams == 0


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidRequestError("bad", field="x"), -32602),
        (errors.UnsupportedError("no tools here"), -32602),
        (errors.NotFoundError("no such bank"), -32602),
        (errors.ModelNotFoundError("m", ["n"]), -32602),
        (errors.PayloadTooLargeError("too long"), -32602),
        (errors.NotConfiguredError("no memory"), -32601),
        (errors.AuthenticationError("key"), -32603),
        (errors.ConflictError("exists"), -32603),
        (errors.UnavailableError("busy"), -32603),
        (errors.ProviderError("vendor down"), -32603),
        (errors.CheckpointError("bad shard"), -32603),
        (errors.LlamaError("something"), -32603),
        (RuntimeError("secret /path"), -32603),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_one_mapping_from_the_error_tree(error: Exception, code: int) -> None:
    obj = error_object(error)
    assert obj.code == code
    assert obj.message == ("Internal error" if code == INTERNAL_ERROR and not isinstance(error, errors.LlamaError) else str(error))
    assert "secret" not in msgspec.json.encode(obj).decode()


def test_every_code_is_a_json_rpc_code() -> None:
    assert {code for _, code in CODES} <= {-32600, -32601, -32602, -32603}
