"""remote::pgvector as a user runs it: `llama stack run` on a run config naming a PostgreSQL, banks that
outlive the server in the database, the password kept to a 0600 file and out of every log and error.
(The API's behaviour is tested on both providers alike: test_routes.py, test_jsonrpc.py, test_retrieval.py.)"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from rpc.server import free_port
from stack.process import llama_stack_run

from llama_core.config import PGVectorImplConfig, RunConfig, save_run_config
from llama_core.errors import UnavailableError
from llama_core.providers.memory.pgvector import PGVectorMemory

from .conftest import provider_table
from .corpus import DOCS


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return provider_table("remote::pgvector", request, tmp_path_factory)


def test_banks_live_in_the_database_across_restarts(database: dict[str, Any], tmp_path: Path) -> None:
    password = str(database["password"])
    config = save_run_config(RunConfig(name="pg", distribution_id="local", providers={"memory": database}), tmp_path / "pg.toml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and password in config.read_text()
    env = {"LLAMA_STACK_CONFIG_DIR": str(tmp_path / "home")}
    configs = {"vector": {"type": "vector", "embedding_model": "all-MiniLM-L6-v2", "chunk_size_in_tokens": 16},
               "keyword": {"type": "keyword"}, "keyvalue": {"type": "keyvalue"}}  # fmt: skip
    queries = {"vector": "How do I read rows from a spreadsheet file?", "keyword": "read a CSV file", "keyvalue": "json"}
    documents = [{"document_id": d, "content": text} for d, text in DOCS.items()]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    with llama_stack_run([str(config)], free_port(), logs[0], env=env) as url:
        banks = {kind: httpx.post(url + "/memory_banks/create", json={"name": kind, "config": c}, timeout=60).json() for kind, c in configs.items()}
        for bank in banks.values():
            inserted = httpx.post(url + "/memory_bank/insert", json={"bank_id": bank["bank_id"], "documents": documents}, timeout=120)
            assert inserted.status_code == 200, inserted.text
        listed = httpx.get(url + "/memory_banks/list", timeout=10).json()
        answers = {kind: _query(url, banks[kind]["bank_id"], text) for kind, text in queries.items()}
    assert listed == list(banks.values())
    assert [answers[k]["chunks"][0]["document_id"] for k in ("vector", "keyword")] == ["csv", "csv"]
    assert answers["keyvalue"]["chunks"] == [{"content": DOCS["json"], "token_count": 26, "document_id": "json"}]
    assert not (tmp_path / "home" / "runtime" / "memory").exists()  # nothing kept on this machine

    with llama_stack_run([str(config)], free_port(), logs[1], env=env) as url:
        assert httpx.get(url + "/memory_banks/list", timeout=10).json() == listed
        assert {kind: _query(url, banks[kind]["bank_id"], text) for kind, text in queries.items()} == answers
        dropped = httpx.request("DELETE", url + "/memory_banks/drop", json={"bank_id": banks["vector"]["bank_id"]}, timeout=10)
        assert dropped.json() == banks["vector"]["bank_id"]
        assert [b["name"] for b in httpx.get(url + "/memory_banks/list", timeout=10).json()] == ["keyword", "keyvalue"]
    assert all(password not in log.read_text() for log in logs)


def _query(url: str, bank_id: str, text: str) -> dict:
    reply = httpx.post(url + "/memory_bank/query", json={"bank_id": bank_id, "query": text, "params": {"max_chunks": 3}}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_wrong_password_is_a_clear_503_that_never_shows_it(database: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    fields = {k: v for k, v in database.items() if k != "provider_id"}
    config = PGVectorImplConfig(**{**fields, "password": "wrong-password-31"})
    with caplog.at_level("DEBUG"), pytest.raises(UnavailableError) as e:
        async with PGVectorMemory(config):
            pass
    where = f"llama@127.0.0.1:{database['port']}/{database['db']}"
    assert str(e.value).startswith(f"Cannot connect to PostgreSQL as {where}: ")
    assert 'password authentication failed for user "llama"' in str(e.value)
    assert "wrong-password-31" not in str(e.value) + caplog.text


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_no_server_is_a_clear_503() -> None:
    port = free_port()
    with pytest.raises(UnavailableError, match=rf"^Cannot connect to PostgreSQL as llama@127.0.0.1:{port}/llama: .*127.0.0.1.*{port}.*refused"):
        async with PGVectorMemory(PGVectorImplConfig(host="127.0.0.1", port=port, password="never-shown-1")):
            pass


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_lost_connection_is_a_503_and_the_next_request_connects_again(database: dict[str, Any]) -> None:
    import psycopg

    from llama_core.types.memory import CreateMemoryBankRequest, KeyValueMemoryBankConfig, ListMemoryBanksRequest

    fields = {k: v for k, v in database.items() if k != "provider_id"}
    async with PGVectorMemory(PGVectorImplConfig(**fields)) as memory:
        bank = await memory.create_memory_bank(CreateMemoryBankRequest(name="kv", config=KeyValueMemoryBankConfig()))
        with psycopg.connect(dbname=fields["db"], **{k: fields[k] for k in ("host", "port", "user", "password")}, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'llama-stack'")
        request = CreateMemoryBankRequest(name="kv2", config=KeyValueMemoryBankConfig())
        with pytest.raises(UnavailableError, match=rf"^Lost the connection to PostgreSQL at llama@127.0.0.1:{fields['port']}/{fields['db']}: .*; "
                                                   r"the next request connects again.$"):
            await memory.create_memory_bank(request)
        await memory.create_memory_bank(request)
        assert [b.name for b in await memory.list_memory_banks(ListMemoryBanksRequest())] == [bank.name, "kv2"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_health_says_unreachable_while_postgresql_is_down(database: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """/health's memory entry asks the server: ok after a dropped connection (it reconnects), unreachable
    once the server is gone, with the reason in the log only; and it waits for no request holding the lock."""
    import contextlib

    import psycopg

    from .postgres import running_postgres

    with contextlib.ExitStack() as cluster:
        server = cluster.enter_context(running_postgres())
        async with PGVectorMemory(PGVectorImplConfig(**server)) as memory:  # type: ignore[arg-type]
            assert await memory.health() == {"status": "ok"}
            with psycopg.connect(dbname=str(server["db"]), **{k: server[k] for k in ("host", "port", "user", "password")},
                                 autocommit=True) as admin:  # type: ignore[arg-type]
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'llama-stack'")
            assert await memory.health() == {"status": "ok"}
            assert memory.db is not None
            with memory.db.lock:  # a request in flight holds the connection: the answer does not wait for it
                assert await memory.health() == {"status": "ok"}
            cluster.close()  # the server stops under the open provider
            with caplog.at_level("WARNING"):
                assert await memory.health() == {"status": "unreachable"}
    assert f"memory health: Cannot connect to PostgreSQL as llama@127.0.0.1:{server['port']}/{server['db']}: " in caplog.text
    assert str(server["password"]) not in caplog.text


def test_text_postgresql_cannot_store_is_a_400(database: dict[str, Any], tmp_path: Path) -> None:
    """NUL: SQLite keeps it, PostgreSQL's text cannot; the bank is left as it was."""
    from rpc.server import running_server

    from llama_rpc.http import create_app

    from .conftest import Client, memory_stack

    stack = memory_stack(database)
    with running_server(lambda: create_app(stack), timeout=120, stack=stack) as url:
        client = Client(url, "remote::pgvector")
        bank_id = client.create({"type": "keyword"})
        documents = [{"document_id": "ok", "content": "fine text"}, {"document_id": "nul", "content": "a\x00b"}]
        assert client.post("memory_bank/insert", {"bank_id": bank_id, "documents": documents}) == (400, {"error": {
            "type": "invalid_request", "message": "Document 'nul' holds a NUL character, which PostgreSQL cannot store in text.",
            "status": 400, "field": "documents[1].content"}})  # fmt: skip
        assert client.query(bank_id, "fine") == ([], [])
        client.http.close()
