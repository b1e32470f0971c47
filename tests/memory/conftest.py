"""A real stack serving only memory over HTTP, on each memory provider: meta-reference-faiss (banks in
a temporary directory) and remote::pgvector (banks in a fresh database of a throwaway PostgreSQL,
tests/memory/postgres.py; skipped, saying why, where PostgreSQL or pgvector is not installed)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_core.config import RunConfig
from llama_core.stack import Stack

from .postgres import new_database, pgvector_binaries, running_postgres

PROVIDERS = ["meta-reference-faiss", "remote::pgvector"]
_databases = itertools.count()


def memory_stack(storage: Path | dict[str, Any], **config: Any) -> Stack:
    """A Stack whose only API (beside models) is memory: its banks under `storage` (faiss), or the
    provider table `storage` (from the `memory_provider` fixture)."""
    table = storage if isinstance(storage, dict) else {"provider_id": "meta-reference-faiss", "storage_dir": str(storage)}
    memory = {**table, **config}
    return Stack.from_config(RunConfig(name="memory", distribution_id="local", providers={"memory": memory}))


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, Any]]:
    """A PostgreSQL with pgvector for the session; skips where there is none."""
    _, why = pgvector_binaries()
    if why:
        if os.environ.get("LLAMA_REQUIRE_PGVECTOR") == "1":  # CI: .ci/install-pgvector must have installed it
            pytest.fail(f"LLAMA_REQUIRE_PGVECTOR=1, but {why}")
        pytest.skip(f"remote::pgvector needs PostgreSQL with pgvector: {why}")
    with running_postgres() as server:
        yield server


def provider_table(provider_id: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A `[providers.memory]` table of `provider_id` with nothing in it yet."""
    if provider_id == "meta-reference-faiss":
        return {"provider_id": provider_id, "storage_dir": str(tmp_path_factory.mktemp("banks"))}
    server = request.getfixturevalue("postgres")
    return {"provider_id": provider_id, **new_database(server, f"memory_{next(_databases)}")}


def open_memory(table: dict[str, Any]) -> Any:
    """The memory provider of a `[providers.memory]` table, not yet entered (as a Stack builds it)."""
    from llama_core.distributions import Api, import_path, provider_spec
    from llama_core.stack import decode_provider_config

    spec = provider_spec(Api.memory, table["provider_id"])
    return import_path(spec.implementation)(decode_provider_config(spec, table))


@pytest.fixture(scope="module", params=PROVIDERS)
def memory_provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each memory provider's table in turn (module scope: one empty store per test module)."""
    return provider_table(request.param, request, tmp_path_factory)


class Client:
    """httpx against one server; each call returns (status, JSON body)."""

    def __init__(self, url: str, provider_id: str = "meta-reference-faiss", storage: Path | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        self.provider_id = provider_id  # the memory provider the stack runs
        self.storage = storage  # the banks' folder (faiss), when the test may look

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
def served(memory_provider: dict[str, Any]) -> Iterator[Client]:
    from rpc.server import running_server

    from llama_rpc.http import create_app

    stack = memory_stack(memory_provider, max_document_chars=5000)
    storage = Path(memory_provider["storage_dir"]) if "storage_dir" in memory_provider else None
    with running_server(lambda: create_app(stack), timeout=120, stack=stack) as url:
        client = Client(url, memory_provider["provider_id"], storage)
        yield client
        client.http.close()
