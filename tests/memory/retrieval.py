"""recall@k of any search over the stdlib corpus (tests/memory/stdlib_corpus.py), and two reference
searches to hold a memory bank against: exact cosine over MiniLM vectors, and SQLite FTS5 bm25.

    recall = await recall_at(3, query)      # query: async (question) -> document ids, best first
    recall.value, recall.misses

The scorer knows nothing of how `query` searches: a bank answers chunks, so ids may repeat; the
first k distinct ids count. Ask a bank for more chunks than k (e.g. max_chunks=20) so that k
distinct documents can come back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from memory.stdlib_corpus import QUESTIONS

Query = Callable[[str], Awaitable[list[str]]]

CHUNK_PIECES = 200  # word pieces per chunk: MiniLM reads 256 with [CLS] and [SEP]
OVERLAP_PIECES = 50  # a quarter, as a bank's default overlap
CANDIDATES = 20  # chunks a reference search returns


@dataclass
class Recall:
    k: int
    hits: int = 0
    total: int = 0
    misses: list[tuple[str, list[str]]] = field(default_factory=list)  # (question, the k documents it got)

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0


async def recall_at(k: int, query: Query, questions: tuple[tuple[str, tuple[str, ...]], ...] = QUESTIONS) -> Recall:
    """The share of `questions` for which one of their answers is among the first `k` distinct
    document ids `query` returns."""
    recall = Recall(k=k)
    for question, answers in questions:
        top = list(dict.fromkeys(await query(question)))[:k]
        recall.total += 1
        if set(top) & set(answers):
            recall.hits += 1
        else:
            recall.misses.append((question, top))
    return recall


def chunks(text: str, spans: list[tuple[int, int]], size: int = CHUNK_PIECES, overlap: int = OVERLAP_PIECES) -> Iterator[str]:
    """Windows of `size` word pieces of `text` (their character `spans`), each `overlap` into the last."""
    step = size - overlap
    for start in range(0, max(len(spans) - overlap, 1), step):
        window = spans[start : start + size]
        if window:
            yield text[window[0][0] : window[-1][1]]


def chunked(embedder: Any, docs: dict[str, str]) -> tuple[list[str], list[str]]:
    """(chunk texts, their document ids), documents in order."""
    texts, ids = [], []
    for doc_id, text in docs.items():
        for piece in chunks(text, embedder.spans(text)):
            texts.append(piece)
            ids.append(doc_id)
    return texts, ids


class ExactCosine:
    """Every chunk's unit vector in one matrix; a query's best chunks by inner product (= cosine)."""

    def __init__(self, embedder: Any, texts: list[str], ids: list[str]) -> None:
        self.embedder, self.ids = embedder, ids
        self.matrix = embedder.encode_sync(texts)  # (chunks, 384) float32

    async def query(self, question: str) -> list[str]:
        import numpy as np

        (vector,) = await self.embedder.encode([question])
        best = np.argsort(-(self.matrix @ vector))[:CANDIDATES]
        return [self.ids[i] for i in best]


class Bm25:
    """The same chunks in an SQLite FTS5 table (porter stemming); a query's words OR-ed, ranked by bm25."""

    def __init__(self, texts: list[str], ids: list[str]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE chunks USING fts5(doc_id UNINDEXED, body, tokenize='porter unicode61')")
        self.db.executemany("INSERT INTO chunks VALUES (?, ?)", zip(ids, texts, strict=True))

    async def query(self, question: str) -> list[str]:
        words = " OR ".join(f'"{w}"' for w in re.findall(r"\w+", question.lower()))
        rows = self.db.execute(
            "SELECT doc_id FROM chunks WHERE chunks MATCH ? ORDER BY bm25(chunks) LIMIT ?", (words, CANDIDATES)
        )
        return [doc_id for (doc_id,) in rows]

    def close(self) -> None:
        self.db.close()
