"""The route table: every route of DESIGN.md, its verb, API, core method and streaming rule."""

from __future__ import annotations

import pytest

from llama_core.types.agents import AgenticSystemTurnResponseStreamChunk, Turn
from llama_core.types.inference import ChatCompletionRequest, ChatCompletionResponse, ChatCompletionResponseStreamChunk
from llama_core.types.memory import MemoryBank
from llama_core.routes import METHODS, Streams, wants_stream

# route -> (verb, api, call, streams), from DESIGN.md's table
EXPECTED = {
    "inference/chat_completion": ("POST", "inference", "chat_completion", Streams.on_request),
    "inference/completion": ("POST", "inference", "completion", Streams.on_request),
    "inference/batch_chat_completion": ("POST", "inference", "batch_chat_completion", Streams.never),
    "inference/batch_completion": ("POST", "inference", "batch_completion", Streams.never),
    "inference/embeddings": ("POST", "inference", "embeddings", Streams.never),
    "safety/run_shields": ("POST", "safety", "run_shields", Streams.never),
    "agentic_system/create": ("POST", "agentic_system", "create_agentic_system", Streams.never),
    "agentic_system/delete": ("POST", "agentic_system", "delete_agentic_system", Streams.never),
    "agentic_system/session/create": ("POST", "agentic_system", "create_agentic_system_session", Streams.never),
    "agentic_system/session/get": ("POST", "agentic_system", "get_agentic_system_session", Streams.never),
    "agentic_system/session/delete": ("POST", "agentic_system", "delete_agentic_system_session", Streams.never),
    "agentic_system/turn/create": ("POST", "agentic_system", "create_agentic_system_turn", Streams.always),
    "agentic_system/turn/get": ("POST", "agentic_system", "get_agentic_system_turn", Streams.never),
    "agentic_system/step/get": ("POST", "agentic_system", "get_agentic_system_step", Streams.never),
    "agentic_system/memory_bank/attach": ("POST", "agentic_system", "attach_memory_bank_to_agentic_system", Streams.never),
    "agentic_system/memory_bank/detach": ("POST", "agentic_system", "detach_memory_bank_from_agentic_system", Streams.never),
    "memory_banks/create": ("POST", "memory", "create_memory_bank", Streams.never),
    "memory_banks/list": ("GET", "memory", "list_memory_banks", Streams.never),
    "memory_banks/get": ("GET", "memory", "get_memory_bank", Streams.never),
    "memory_banks/drop": ("DELETE", "memory", "drop_memory_bank", Streams.never),
    "memory_bank/insert": ("POST", "memory", "insert_documents", Streams.never),
    "memory_bank/update": ("POST", "memory", "update_documents", Streams.never),
    "memory_bank/query": ("POST", "memory", "query_documents", Streams.never),
    "memory_bank/documents/get": ("GET", "memory", "get_documents", Streams.never),
    "memory_bank/documents/delete": ("DELETE", "memory", "delete_documents", Streams.never),
    "models/list": ("GET", "models", "list_models", Streams.never),
    "models/get": ("GET", "models", "get_model", Streams.never),
}


def test_every_route_once() -> None:
    assert list(METHODS) == list(EXPECTED)
    assert {name: (m.verb, m.api, m.call, m.streams) for name, m in METHODS.items()} == EXPECTED


@pytest.mark.parametrize(
    ("route", "response", "chunk"),
    [
        pytest.param("inference/chat_completion", ChatCompletionResponse, ChatCompletionResponseStreamChunk, id="chat"),
        pytest.param("agentic_system/turn/create", Turn, AgenticSystemTurnResponseStreamChunk, id="turn"),
        pytest.param("memory_banks/get", MemoryBank | None, None, id="optional"),
        pytest.param("memory_banks/list", list[MemoryBank], None, id="list"),
        pytest.param("agentic_system/delete", type(None), None, id="none"),
    ],
)
def test_response_and_chunk_types(route: str, response: object, chunk: object) -> None:
    assert (METHODS[route].response_type, METHODS[route].chunk_type) == (response, chunk)


def test_paths_and_summaries() -> None:
    assert METHODS["inference/chat_completion"].path == "/inference/chat_completion"
    assert METHODS["models/get"].summary == "The model named by descriptor or Hugging Face repo; ModelNotFoundError otherwise."


def test_wants_stream() -> None:
    chat = METHODS["inference/chat_completion"]
    request = ChatCompletionRequest(model="m", messages=[])
    assert not wants_stream(chat, request)
    assert wants_stream(chat, ChatCompletionRequest(model="m", messages=[], stream=True))
    assert wants_stream(METHODS["agentic_system/turn/create"], request)  # always, whatever the request says
    assert not wants_stream(METHODS["models/list"], request)
