"""Memory bank speed beside raw sentence-transformers and raw faiss, same run: a vector bank of N chunks.

For each size (default 10k and 100k chunks) a fresh process (so peak RSS is its own):

    fill       the bank gets N chunks through its storage (one SQLite transaction per 5,000; vectors
               of encoded sentences, each used ~N/distinct times with a little noise, so 100k chunks
               do not cost 100k encodes)
    insert     --insert new one-chunk documents through FaissMemory.insert_documents (chunking,
               encoding, SQLite, faiss), 50 per request, beside SentenceTransformer.encode of the
               same texts (batch 32); rounds alternate, best of each
    query      --queries queries through FaissMemory.query_documents (encode, search, chunk rows)
               beside encoding the query + IndexFlatIP.search on the same N vectors, alternating; p50
    pgvector   the same N vectors in a remote::pgvector bank, on a throwaway PostgreSQL started from
               this machine's packages (tests/memory/postgres.py; `bash .ci/install-pgvector`), and the
               same queries through PGVectorMemory.query_documents, alternating with the others; p50
               (exact search: no HNSW index). Left out, saying why, where PostgreSQL or pgvector is
               missing, or with --no-pgvector.
    reopen     leaving writes the index file; a new provider opens the bank and answers a query
    peak RSS   of the process, after all of the above (the model, the bank, and the raw anchor's own
               copy of the N vectors; PostgreSQL's memory is its own processes')

    python benches/bench_memory.py [--sizes 10000,100000] [--insert 1000] [--queries 100] [--rounds 3] [--no-pgvector]
    python benches/bench_memory.py --quick        # 2,000 and 10,000 chunks, 300 inserts, 50 queries

Goals (issue 14): insert chunks/s >= 0.9x raw encode (embedding dominates); query p50 <= 1.2x
(encode one query + raw faiss search). pgvector's p50 is printed beside them (issue 19), with no goal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

WORDS = (
    "read write file csv json parse encode decode date time zone random number list sort search index "
    "table row column database query network socket server client thread process queue lock memory "
    "string text unicode bytes buffer stream archive compress path directory copy move delete test "
    "assert mock logging warning error exception retry timeout signal event loop task future result"
).split()
DISTINCT = 10_000  # sentences encoded for the fill


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."


@contextlib.asynccontextmanager
async def pgvector_bank(vectors: Any, texts: list[str], pgvector: bool) -> AsyncIterator[tuple[Any, str, float] | str]:
    """(PGVectorMemory, bank id, fill seconds) of a bank holding `vectors` on a throwaway PostgreSQL,
    or why there is none."""
    if not pgvector:
        yield "left out (--no-pgvector)"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from memory.postgres import pgvector_binaries, running_postgres

    from llama_core.config import PGVectorImplConfig
    from llama_core.providers.memory.bank import Prepared
    from llama_core.providers.memory.pgvector import PGVectorMemory
    from llama_core.types.memory import CreateMemoryBankRequest, VectorMemoryBankConfig

    _, why = pgvector_binaries()
    if why:
        yield f"left out: {why}"
        return
    with running_postgres() as server:
        async with PGVectorMemory(PGVectorImplConfig(**server)) as memory:  # type: ignore[arg-type]
            bank = await memory.create_memory_bank(CreateMemoryBankRequest(
                name="bench", config=VectorMemoryBankConfig(embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=64)))  # fmt: skip
            store = memory._banks[bank.bank_id]
            t0 = time.perf_counter()
            for start in range(0, len(vectors), 5000):
                docs = [Prepared(f"fill-{i}", b"{}", [(texts[i % len(texts)], 16)], vectors[i : i + 1])
                        for i in range(start, min(start + 5000, len(vectors)))]  # fmt: skip
                await anyio.to_thread.run_sync(store.put, docs, False)
            yield memory, bank.bank_id, time.perf_counter() - t0


async def child(size: int, n_insert: int, n_queries: int, rounds: int, pgvector: bool = True) -> dict:
    import faiss
    import numpy as np

    from llama_core import embedding
    from llama_core.config import FaissImplConfig
    from llama_core.providers.memory.bank import Prepared
    from llama_core.providers.memory.provider import FaissMemory
    from llama_core.types.memory import (
        CreateMemoryBankRequest,
        InsertDocumentsRequest,
        MemoryBankDocument,
        QueryDocumentsRequest,
        VectorMemoryBankConfig,
    )

    rng = random.Random(size)
    emb = await embedding.embedder()
    model = emb.model
    storage = tempfile.mkdtemp(prefix="bench-memory-")
    config = FaissImplConfig(storage_dir=storage)

    # fill
    distinct = [sentence(rng) for _ in range(min(DISTINCT, size))]
    base = model.encode(distinct, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    noise = np.random.default_rng(0)
    all_vectors = []
    t0 = time.perf_counter()
    async with FaissMemory(config) as memory:
        bank = await memory.create_memory_bank(CreateMemoryBankRequest(
            name="bench", config=VectorMemoryBankConfig(embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=64)))  # fmt: skip
        store = memory._banks[bank.bank_id]
        for start in range(0, size, 5000):
            n = min(5000, size - start)
            picks = np.arange(start, start + n) % len(distinct)
            vectors = base[picks] + noise.normal(0, 0.01, (n, base.shape[1])).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            all_vectors.append(vectors)
            docs = [Prepared(f"fill-{start + i}", b"{}", [(distinct[p], 16)], vectors[i : i + 1]) for i, p in enumerate(picks)]
            await anyio.to_thread.run_sync(store.put, docs, False)
        fill_s = time.perf_counter() - t0
        flat = faiss.IndexFlatIP(base.shape[1])  # the raw anchor: the same vectors, in this process too
        flat.add(np.concatenate(all_vectors))
        del all_vectors

        # insert: ours and raw encode on different texts of the same shape, alternating
        ours_rates, raw_rates = [], []
        for r in range(rounds):
            texts = [sentence(rng) for _ in range(n_insert)]
            t = time.perf_counter()
            model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
            raw_rates.append(n_insert / (time.perf_counter() - t))
            texts = [sentence(rng) for _ in range(n_insert)]
            docs = [MemoryBankDocument(document_id=f"r{r}-{i}", content=text) for i, text in enumerate(texts)]
            t = time.perf_counter()
            for i in range(0, n_insert, 50):
                await memory.insert_documents(InsertDocumentsRequest(bank_id=bank.bank_id, documents=docs[i : i + 50]))
            ours_rates.append(n_insert / (time.perf_counter() - t))
        # the first query builds the index from SQLite (as after a restart without an index file)
        t = time.perf_counter()
        await memory.query_documents(QueryDocumentsRequest(bank_id=bank.bank_id, query="warm up"))
        first_query_s = time.perf_counter() - t

        ours_q, raw_q, pg_q = [], [], []
        async with pgvector_bank(flat.reconstruct_n(0, flat.ntotal), distinct, pgvector) as pg:
            for _ in range(n_queries):
                q = sentence(rng)
                t = time.perf_counter()
                vector = model.encode([q], batch_size=1, convert_to_numpy=True, normalize_embeddings=True)
                flat.search(vector, 3)
                raw_q.append(time.perf_counter() - t)
                t = time.perf_counter()
                found = await memory.query_documents(QueryDocumentsRequest(bank_id=bank.bank_id, query=q, params={"max_chunks": 3}))
                ours_q.append(time.perf_counter() - t)
                assert len(found.chunks) == 3
                if not isinstance(pg, str):
                    t = time.perf_counter()
                    found = await pg[0].query_documents(QueryDocumentsRequest(bank_id=pg[1], query=q, params={"max_chunks": 3}))
                    pg_q.append(time.perf_counter() - t)
                    assert len(found.chunks) == 3
        pg_result = pg if isinstance(pg, str) else {"pgvector_query_p50_ms": round(statistics.median(pg_q) * 1000, 2),
                                                    "pgvector_fill_s": round(pg[2], 1)}  # fmt: skip
        t = time.perf_counter()
    close_s = time.perf_counter() - t  # writes the index file
    t = time.perf_counter()
    async with FaissMemory(config) as memory:
        await memory.query_documents(QueryDocumentsRequest(bank_id=bank.bank_id, query="after a restart"))
        reopen_s = time.perf_counter() - t
    shutil.rmtree(storage)
    ours_ins, raw_ins = max(ours_rates), max(raw_rates)
    ours_p50, raw_p50 = statistics.median(ours_q) * 1000, statistics.median(raw_q) * 1000
    return {
        "chunks": size,
        "insert_chunks_per_s": round(ours_ins, 1),
        "raw_encode_per_s": round(raw_ins, 1),
        "insert_ratio": round(ours_ins / raw_ins, 3),
        "query_p50_ms": round(ours_p50, 2),
        "raw_p50_ms": round(raw_p50, 2),
        "query_ratio": round(ours_p50 / raw_p50, 3),
        **(pg_result if isinstance(pg_result, dict) else {"pgvector": pg_result}),
        "fill_s": round(fill_s, 1),
        "first_query_s": round(first_query_s, 2),
        "close_s": round(close_s, 2),
        "reopen_query_s": round(reopen_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--insert", type=int, default=1000, help="chunks inserted per round")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="--sizes 2000,10000 --insert 300 --queries 50 --rounds 2")
    parser.add_argument("--no-pgvector", action="store_true", help="leave out the remote::pgvector bank")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.insert, args.queries, args.rounds = "2000,10000", 300, 50, 2
    if args.child is not None:
        import anyio

        result = anyio.run(child, args.child, args.insert, args.queries, args.rounds, not args.no_pgvector)
        print(json.dumps(result))
        return
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print(f"# vector bank, all-MiniLM-L6-v2, {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}, load {os.getloadavg()[0]:.1f}, "
          f"insert {args.insert} x {args.rounds} rounds, {args.queries} queries")  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        argv = [sys.executable, __file__, "--child", str(size), "--insert", str(args.insert),
                "--queries", str(args.queries), "--rounds", str(args.rounds), *(["--no-pgvector"] if args.no_pgvector else [])]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(done.stderr)
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
