"""A real stack serving only memory (meta-reference-faiss, banks in a temporary directory), over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_core.config import RunConfig
from llama_core.stack import Stack


def memory_stack(storage: Path, **config: Any) -> Stack:
    """A Stack whose only API (beside models) is memory, its banks under `storage`."""
    memory = {"provider_id": "meta-reference-faiss", "storage_dir": str(storage), **config}
    return Stack.from_config(RunConfig(name="memory", distribution_id="local", providers={"memory": memory}))


class Client:
    """httpx against one server; each call returns (status, JSON body)."""

    def __init__(self, url: str, storage: Path | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        self.storage = storage  # the banks' folder, when the test may look

    def post(self, route: str, body: Any) -> tuple[int, Any]:
        r = self.http.post("/" + route, json=body)
        return r.status_code, r.json()

    def get(self, route: str, **params: Any) -> tuple[int, Any]:
        r = self.http.get("/" + route, params=params)
        return r.status_code, r.json()

    def delete(self, route: str, body: Any) -> tuple[int, Any]:
        r = self.http.request("DELETE", "/" + route, json=body)
        return r.status_code, r.json()

    def create(self, config: dict[str, Any], name: str = "bank") -> str:
        status, bank = self.post("memory_banks/create", {"name": name, "config": config})
        assert status == 200, bank
        return bank["bank_id"]

    def insert(self, bank_id: str, docs: dict[str, str], route: str = "memory_bank/insert") -> None:
        documents = [{"document_id": d, "content": text} for d, text in docs.items()]
        status, body = self.post(route, {"bank_id": bank_id, "documents": documents})
        assert (status, body) == (200, None)

    def query(self, bank_id: str, query: str, **params: Any) -> tuple[list[str], list[float]]:
        status, body = self.post("memory_bank/query", {"bank_id": bank_id, "query": query, "params": params})
        assert status == 200, body
        return [c["document_id"] for c in body["chunks"]], body["scores"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    from rpc.server import running_server

    from llama_rpc.http import create_app

    storage = tmp_path_factory.mktemp("banks")
    stack = memory_stack(storage, max_document_chars=5000)
    with running_server(lambda: create_app(stack), timeout=120, stack=stack) as url:
        client = Client(url, storage)
        yield client
        client.http.close()
