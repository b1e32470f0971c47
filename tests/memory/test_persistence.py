"""Banks on disk: a SIGKILL in the middle of inserts, concurrent inserts and queries, HNSW, the index cache."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from llama_core.config import FaissImplConfig
from llama_core.providers.memory.bank import INDEX_NAME, stats
from llama_core.providers.memory.provider import FaissMemory
from llama_core.types.memory import (
    CreateMemoryBankRequest,
    DeleteDocumentsRequest,
    GetDocumentsRequest,
    InsertDocumentsRequest,
    ListMemoryBanksRequest,
    MemoryBankDocument,
    QueryDocumentsRequest,
    UpdateDocumentsRequest,
    VectorMemoryBankConfig,
)

from .corpus import DOCS, text_of

pytestmark = pytest.mark.anyio

VECTOR = VectorMemoryBankConfig(embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=32)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def doc(document_id: str, text: str) -> MemoryBankDocument:
    return MemoryBankDocument(document_id=document_id, content=text)


async def check_consistent(memory: FaissMemory, bank_id: str) -> dict:
    """Query the bank (building its index from the database if the file is stale) and check that the
    index holds exactly the stored chunks and every stored document has its chunks."""
    store = memory._banks[bank_id]
    answer = await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="topic 3", params={"max_chunks": 1000}))
    counts = stats(store)
    assert counts["indexed"] == counts["chunks"] == len(answer.chunks)
    with contextlib.closing(sqlite3.connect(store.directory / "bank.sqlite")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = db.execute("SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.document_id)")
        assert orphans.fetchone() == (0,)
    return counts


INSERTER = textwrap.dedent(
    """
    import anyio, sys
    from llama_core.config import FaissImplConfig
    from llama_core.providers.memory.provider import FaissMemory
    from llama_core.types.memory import InsertDocumentsRequest, MemoryBankDocument
    sys.path.insert(0, sys.argv[3])
    from corpus import text_of

    async def main():
        memory = FaissMemory(FaissImplConfig(storage_dir=sys.argv[1]))
        await memory.__aenter__()  # never left: the process is killed
        bank_id, start = sys.argv[2], int(sys.argv[4])
        for i in range(start, start + 10_000):
            docs = [MemoryBankDocument(document_id=f"d{i}-{k}", content=text_of(i * 10 + k)) for k in range(3)]
            await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=docs))
            print(i, flush=True)

    anyio.run(main)
    """
)


async def test_sigkill_in_the_middle_of_inserts_leaves_a_bank_that_opens_and_answers(tmp_path: Path) -> None:
    async with FaissMemory(FaissImplConfig(storage_dir=str(tmp_path))) as memory:
        bank_id = (await memory.create_memory_bank(CreateMemoryBankRequest(name="crash", config=VECTOR))).bank_id
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=[doc("first", text_of(0))]))
        await check_consistent(memory, bank_id)
    assert (tmp_path / bank_id / INDEX_NAME).is_file()  # written on close, tagged with this generation
    # Kill the inserter after k completed requests, then a little later, at different points of the next.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = 0
    for k, delay in [(1, 0.0), (2, 0.005), (3, 0.02), (2, 0.05), (4, 0.1), (1, 0.2)]:
        child = subprocess.Popen(
            [sys.executable, "-c", INSERTER, str(tmp_path), bank_id, str(Path(__file__).parent), str(start)],
            stdout=subprocess.PIPE, env=env, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        try:
            done = [child.stdout.readline() for _ in range(k)]
            assert all(line.strip() for line in done), "the inserter died early"
            await anyio.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        async with FaissMemory(FaissImplConfig(storage_dir=str(tmp_path))) as memory:
            assert [b.bank_id for b in await memory.list_memory_banks(ListMemoryBanksRequest())] == [bank_id]
            counts = await check_consistent(memory, bank_id)
            # each request stored its three documents or none of them
            stored = counts["documents"] - 1
            assert stored % 3 == 0 and stored // 3 >= start + k
            start = stored // 3  # requests stored by all the inserters so far; the next goes on from there
            ids = [f"d{i}-{j}" for i in range(start) for j in range(3)]
            got = await memory.get_documents(GetDocumentsRequest(bank_id=bank_id, document_ids=ids))
            assert [d.content for d in got] == [text_of(i * 10 + j) for i in range(start) for j in range(3)]


# The same, killed at an exact statement: the child SIGKILLs itself when SQLite starts the `nth`
# statement beginning with `prefix` (inside the transaction of its second request, or at its commit),
# or, for "index", in the middle of writing the index file (after the data, before the rename).
KILLER = textwrap.dedent(
    """
    import anyio, os, signal, sys
    from llama_core.config import FaissImplConfig
    from llama_core.providers.memory import vectors
    from llama_core.providers.memory.provider import FaissMemory
    from llama_core.types.memory import InsertDocumentsRequest, MemoryBankDocument, QueryDocumentsRequest

    storage, bank_id, prefix, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seen = 0

    def trace(statement):
        global seen
        if statement.startswith(prefix):
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst):
        os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        async with FaissMemory(FaissImplConfig(storage_dir=storage)) as memory:
            await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="x"))  # the index is built
            if prefix == "index":
                vectors.os.replace = replace
            else:
                memory._banks[bank_id].conn.set_trace_callback(trace)
            for i in range(3):
                docs = [MemoryBankDocument(document_id=f"k{i}-{k}", content=f"short {i} {k} topic 3") for k in range(3)]  # a chunk each
                await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=docs))

    anyio.run(main)
    """
)


@pytest.mark.parametrize(
    ("prefix", "nth", "requests_kept"),
    [
        ("BEGIN", 2, 1),  # before the second request's transaction
        ("INSERT INTO documents", 5, 1),  # its second document
        ("INSERT INTO chunks", 5, 1),  # one of its chunks
        ("UPDATE bank SET generation", 2, 1),  # its last statement before the commit
        ("COMMIT", 2, 1),  # the commit itself
        ("BEGIN", 3, 2),  # just after it committed
        ("index", 1, 3),  # writing the index file at exit, after all three committed
    ],
)
async def test_sigkill_at_each_statement_of_an_insert(tmp_path: Path, prefix: str, nth: int, requests_kept: int) -> None:
    async with FaissMemory(FaissImplConfig(storage_dir=str(tmp_path))) as memory:
        bank_id = (await memory.create_memory_bank(CreateMemoryBankRequest(name="kill", config=VECTOR))).bank_id
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=[doc("first", text_of(0))]))
        before = await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="topic 3"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", KILLER, str(tmp_path), bank_id, prefix, str(nth)]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    async with FaissMemory(FaissImplConfig(storage_dir=str(tmp_path))) as memory:
        counts = await check_consistent(memory, bank_id)
        assert counts["documents"] == 1 + 3 * requests_kept
        kept = [f"k{i}-{k}" for i in range(requests_kept) for k in range(3)]
        assert len(await memory.get_documents(GetDocumentsRequest(bank_id=bank_id, document_ids=kept))) == len(kept)
        if requests_kept == 1:  # only the first request of the child: the rest of the bank answers as before
            await memory.delete_documents(DeleteDocumentsRequest(bank_id=bank_id, document_ids=kept))
            assert await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="topic 3")) == before
    assert sorted(p.name for p in (tmp_path / bank_id).iterdir()) == ["bank.sqlite", "index.faiss"]  # no leftover .tmp


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_concurrent_inserts_updates_and_queries(tmp_path: Path) -> None:
    async with FaissMemory(FaissImplConfig(storage_dir=str(tmp_path))) as memory:
        bank_id = (await memory.create_memory_bank(CreateMemoryBankRequest(name="busy", config=VECTOR))).bank_id
        answers: list[int] = []

        async def inserter(n: int) -> None:
            for i in range(6):
                name = f"w{n}-{i}"
                await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=[doc(name, text_of(n * 100 + i))]))
                if i % 2:
                    await memory.update_documents(UpdateDocumentsRequest(bank_id=bank_id, documents=[doc(name, f"updated {name}")]))
                if i == 5:
                    await memory.delete_documents(DeleteDocumentsRequest(bank_id=bank_id, document_ids=[f"w{n}-0"]))

        async def querier() -> None:
            for _ in range(15):
                found = await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="topic 2", params={"max_chunks": 5}))
                answers.append(len(found.chunks))

        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(inserter, n)
            for _ in range(4):
                tg.start_soon(querier)
        assert len(answers) == 60
        counts = await check_consistent(memory, bank_id)
        assert counts["documents"] == 6 * 5
        # the updated ones hold exactly their new text, once
        found = await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query="updated w3-1", params={"max_chunks": 1}))
        assert [(c.document_id, c.content) for c in found.chunks] == [("w3-1", "updated w3-1")]


async def test_hnsw_past_the_threshold_and_the_index_file_across_restarts(tmp_path: Path) -> None:
    config = FaissImplConfig(storage_dir=str(tmp_path), hnsw_min_chunks=20)
    async with FaissMemory(config) as memory:
        bank_id = (await memory.create_memory_bank(CreateMemoryBankRequest(name="h", config=VECTOR))).bank_id
        documents = [doc(d, text) for d, text in DOCS.items()]
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=documents))
        query = QueryDocumentsRequest(bank_id=bank_id, query="read rows from a spreadsheet file", params={"max_chunks": 1})
        assert [c.document_id for c in (await memory.query_documents(query)).chunks] == ["csv"]
        first = stats(memory._banks[bank_id])
        assert first["index"] == "flat" and first["chunks"] < 20  # under the threshold
        more = [doc(f"n{i}", text_of(i)) for i in range(4)]  # over 20 chunks now
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=more))
        before = await memory.query_documents(query)
        assert [c.document_id for c in before.chunks] == ["csv"]
        grown = stats(memory._banks[bank_id])
        assert grown == {"documents": 10, "chunks": grown["chunks"], "index": "hnsw", "indexed": grown["chunks"]}
        await memory.delete_documents(DeleteDocumentsRequest(bank_id=bank_id, document_ids=["n0"]))
        assert stats(memory._banks[bank_id])["index"] is None  # HNSW cannot remove: rebuilt on next use
        before = await memory.query_documents(query)
        shrunk = stats(memory._banks[bank_id])
        assert shrunk == {"documents": 9, "chunks": shrunk["chunks"], "index": "hnsw", "indexed": shrunk["chunks"]}
        assert shrunk["chunks"] < grown["chunks"]
    async with FaissMemory(config) as memory:
        assert await memory.query_documents(query) == before
        assert stats(memory._banks[bank_id])["index"] == "hnsw"


async def test_a_stale_or_damaged_index_file_is_rebuilt_from_the_database(tmp_path: Path) -> None:
    config = FaissImplConfig(storage_dir=str(tmp_path))
    async with FaissMemory(config) as memory:
        bank_id = (await memory.create_memory_bank(CreateMemoryBankRequest(name="s", config=VECTOR))).bank_id
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank_id, documents=[doc(d, t) for d, t in DOCS.items()]))
        query = QueryDocumentsRequest(bank_id=bank_id, query="zip archive", params={"max_chunks": 100})
        want = await memory.query_documents(query)
    index_file = tmp_path / bank_id / INDEX_NAME
    old = index_file.read_bytes()
    async with FaissMemory(config) as memory:  # a change after the file was written, then a crash (the file is not rewritten)
        assert await memory.query_documents(query) == want
        store = memory._banks[bank_id]
        assert store._saved_generation == store.generation  # the index came from its file, not a rebuild
        await memory.delete_documents(DeleteDocumentsRequest(bank_id=bank_id, document_ids=["zipfile"]))
        without = await memory.query_documents(query)
        assert "zipfile" not in [c.document_id for c in without.chunks]
    index_file.write_bytes(old)  # the file from before the delete
    async with FaissMemory(config) as memory:
        assert await memory.query_documents(query) == without
    index_file.write_bytes(old[: len(old) // 2])  # cut short
    async with FaissMemory(config) as memory:
        assert await memory.query_documents(query) == without
    assert len(want.chunks) == len(without.chunks) + 1
