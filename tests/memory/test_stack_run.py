"""`llama stack run` as a user runs it, serving memory: banks survive a restart and answer the same."""

from __future__ import annotations

from pathlib import Path

import httpx
from rpc.server import free_port
from stack.process import llama_stack_run

from .corpus import DOCS

CONFIG = """name = "memory"
distribution_id = "local"

[providers.memory]
provider_id = "meta-reference-faiss"
"""


def test_banks_survive_a_restart(tmp_path: Path) -> None:
    config, home = tmp_path / "memory.toml", tmp_path / "home"
    config.write_text(CONFIG)
    env = {"LLAMA_STACK_CONFIG_DIR": str(home)}
    queries = [("vector", "How do I read rows from a spreadsheet file?"), ("keyword", "read a CSV file"), ("keyvalue", "json")]
    configs = {"vector": {"type": "vector", "embedding_model": "all-MiniLM-L6-v2", "chunk_size_in_tokens": 16},
               "keyword": {"type": "keyword"}, "keyvalue": {"type": "keyvalue"}}  # fmt: skip
    documents = [{"document_id": d, "content": text} for d, text in DOCS.items()]

    with llama_stack_run([str(config)], free_port(), tmp_path / "first.log", env=env) as url:
        banks = {}
        for kind, bank_config in configs.items():
            bank = httpx.post(url + "/memory_banks/create", json={"name": kind, "config": bank_config}, timeout=60).json()
            banks[kind] = bank
            inserted = httpx.post(url + "/memory_bank/insert", json={"bank_id": bank["bank_id"], "documents": documents}, timeout=120)
            assert inserted.status_code == 200, inserted.text
        listed = httpx.get(url + "/memory_banks/list", timeout=10).json()
        answers = [_query(url, banks[kind]["bank_id"], text) for kind, text in queries]
    assert answers[0]["chunks"][0]["document_id"] == "csv" and answers[1]["chunks"][0]["document_id"] == "csv"
    assert answers[2]["chunks"] == [{"content": DOCS["json"], "token_count": 26, "document_id": "json"}]
    # the layout under ~/.llama/runtime/memory: one directory per bank, the index file written at exit
    root = home / "runtime" / "memory"
    assert sorted(p.name for p in root.iterdir()) == sorted(b["bank_id"] for b in banks.values())
    assert sorted(p.name for p in (root / banks["vector"]["bank_id"]).iterdir()) == ["bank.sqlite", "index.faiss"]

    with llama_stack_run([str(config)], free_port(), tmp_path / "second.log", env=env) as url:
        assert httpx.get(url + "/memory_banks/list", timeout=10).json() == listed
        assert [_query(url, banks[kind]["bank_id"], text) for kind, text in queries] == answers
        dropped = httpx.request("DELETE", url + "/memory_banks/drop", json={"bank_id": banks["vector"]["bank_id"]}, timeout=10)
        assert dropped.json() == banks["vector"]["bank_id"]
    assert not (root / banks["vector"]["bank_id"]).exists()


def _query(url: str, bank_id: str, text: str) -> dict:
    reply = httpx.post(url + "/memory_bank/query", json={"bank_id": bank_id, "query": text, "params": {"max_chunks": 3}}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()
