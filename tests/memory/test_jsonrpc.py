"""The memory routes over JSON-RPC (the server `python -m llama_rpc` and `llama stack run --stdio` run),
against a real stack: results as over HTTP, errors as -32602 with the HTTP status in `data`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rpc.test_jsonrpc import connected

from .conftest import PROVIDERS, memory_stack, provider_table
from .corpus import DOCS

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return provider_table(request.param, request, tmp_path_factory)


async def test_memory_over_jsonrpc(provider: dict) -> None:
    stack = memory_stack(provider)
    async with stack, connected(stack) as peer:
        config = {"type": "vector", "embedding_model": "all-MiniLM-L6-v2", "chunk_size_in_tokens": 64}
        bank = (await peer.call("memory_banks/create", {"name": "rpc", "config": config}))["result"]
        bank_id = bank["bank_id"]
        assert (await peer.call("memory_banks/list"))["result"] == [bank]
        assert (await peer.call("memory_banks/get", {"bank_id": bank_id}))["result"] == bank
        uri = f"llama://memory_banks/{bank_id}"  # MCP: a bank is a resource
        assert {"uri": uri, "name": "rpc", "title": "Memory bank rpc", "mimeType": "application/json"} in (
            await peer.call("resources/list")
        )["result"]["resources"]
        assert json.loads((await peer.call("resources/read", {"uri": uri}))["result"]["contents"][0]["text"]) == bank
        documents = [{"document_id": d, "content": text} for d, text in DOCS.items()]
        assert (await peer.call("memory_bank/insert", {"bank_id": bank_id, "documents": documents}))["result"] is None
        found = (await peer.call("memory_bank/query", {"bank_id": bank_id, "query": "parse JSON strings", "params": {"max_chunks": 2}}))["result"]
        assert [c["document_id"] for c in found["chunks"]][0] == "json" and len(found["scores"]) == 2
        update = {"bank_id": bank_id, "documents": [{"document_id": "json", "content": "Bees make honey."}]}
        assert (await peer.call("memory_bank/update", update))["result"] is None
        got = (await peer.call("memory_bank/documents/get", {"bank_id": bank_id, "document_ids": ["json"]}))["result"]
        assert got == [{"document_id": "json", "content": "Bees make honey.", "mime_type": None, "metadata": {}}]
        assert (await peer.call("memory_bank/documents/delete", {"bank_id": bank_id, "document_ids": ["json"]}))["result"] is None
        found = (await peer.call("memory_bank/query", {"bank_id": bank_id, "query": "honey", "params": {"max_chunks": 10}}))["result"]
        assert "json" not in [c["document_id"] for c in found["chunks"]]

        errors = {
            "memory_bank/query": ({"bank_id": "../x", "query": "q"}, "Invalid bank_id '../x': a bank id is letters, digits, '-' or '_' "
                                  "(at most 64), as memory_banks/create returns it.", {"type": "invalid_request", "status": 400, "field": "bank_id"}),
            "memory_bank/documents/get": ({"bank_id": bank_id, "document_ids": ["json"]}, f"Memory bank '{bank_id}' has no document 'json'.",
                                          {"type": "not_found", "status": 404}),
            "memory_banks/create": ({"name": "g", "config": {"type": "graph"}},
                                    "Graph memory banks are not supported; use a vector, keyword or keyvalue bank.",
                                    {"type": "unsupported", "status": 400, "field": "config.type"}),
        }  # fmt: skip
        for method, (params, message, data) in errors.items():
            assert (await peer.call(method, params))["error"] == {"code": -32602, "message": message, "data": data}

        assert (await peer.call("memory_banks/drop", {"bank_id": bank_id}))["result"] == bank_id
        missing = await peer.call("memory_bank/query", {"bank_id": bank_id, "query": "q"})
        assert missing["error"] == {"code": -32602, "message": f"Unknown memory bank '{bank_id}'.", "data": {"type": "not_found", "status": 404}}
    if "storage_dir" in provider:
        assert list(Path(provider["storage_dir"]).iterdir()) == []  # the dropped bank left no file
