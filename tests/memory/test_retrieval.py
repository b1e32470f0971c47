"""Retrieval on real text (issue 14): recall@3 over standard-library docstrings, 50 plain questions.

Run here against the reference searches of tests/memory/retrieval.py (exact cosine over MiniLM
vectors of 200-piece chunks; SQLite FTS5 bm25 over the same chunks); a memory bank is measured by
handing `recall_at` its query instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from memory.retrieval import Bm25, ExactCosine, chunked, recall_at
from memory.stdlib_corpus import MODULES, QUESTIONS, documents

from llama_core import embedding

pytestmark = pytest.mark.anyio

VECTOR_RECALL_MIN = 0.9  # the bar for vector banks
KEYWORD_RECALL_MIN = 0.75  # measured 0.84 (Python 3.11); vector 0.94: floors, so that a broken search shows


@pytest.fixture(scope="module")
def chunks() -> tuple[object, list[str], list[str]]:
    """(the embedder, chunk texts, their document ids)."""
    emb = anyio.run(embedding.embedder)
    return (emb, *chunked(emb, documents()))


@pytest.fixture(scope="module")
def vectors(chunks: tuple[object, list[str], list[str]]) -> ExactCosine:
    return ExactCosine(*chunks)  # encoding every chunk takes a while: once for both backends


@pytest.fixture(scope="module")
def keywords(chunks: tuple[object, list[str], list[str]]) -> Iterator[Bm25]:
    search = Bm25(*chunks[1:])
    yield search
    search.close()


def test_the_corpus_is_big_enough_and_labelled() -> None:
    docs = documents()
    assert len(docs) >= 150 and len(QUESTIONS) >= 30
    assert [answer for _, answers in QUESTIONS for answer in answers if answer not in docs] == []
    assert docs["csv"].startswith("csv\n\nCSV parsing and writing.")
    assert list(docs) == [name for name in MODULES if name in docs]  # MODULES order, every run


async def test_recall_counts_the_first_k_distinct_documents() -> None:
    answers = {"a?": ["x", "x", "x", "y", "b"], "b?": ["b"], "c?": []}

    async def query(question: str) -> list[str]:
        return answers[question]

    questions = (("a?", ("b",)), ("b?", ("z", "b")), ("c?", ("c",)))
    recall = await recall_at(3, query, questions)
    assert (recall.hits, recall.total, recall.misses) == (2, 3, [("c?", [])])  # a?: x, y, b
    assert (await recall_at(2, query, questions)).misses == [("a?", ["x", "y"]), ("c?", [])]


@pytest.mark.slow
async def test_vector_recall_at_3(vectors: ExactCosine) -> None:
    recall = await recall_at(3, vectors.query)
    print(f"\nvector recall@3 = {recall.value:.3f} over {len(set(vectors.ids))} documents, {len(vectors.ids)} chunks; misses: {recall.misses}")
    assert recall.value >= VECTOR_RECALL_MIN, recall.misses


@pytest.mark.slow
async def test_keyword_recall_at_3(keywords: Bm25) -> None:
    recall = await recall_at(3, keywords.query)
    print(f"\nkeyword (FTS5 bm25) recall@3 = {recall.value:.3f}; misses: {recall.misses}")
    assert recall.value >= KEYWORD_RECALL_MIN, recall.misses
