"""recall@k of any search over the stdlib corpus (tests/memory/stdlib_corpus.py).

    recall = await recall_at(3, query)      # query: async (question) -> document ids, best first
    recall.value, recall.misses

The scorer knows nothing of how `query` searches: a bank answers chunks, so ids may repeat; the
first k distinct ids count. Ask a bank for more chunks than k (e.g. max_chunks=20) so that k
distinct documents can come back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from memory.stdlib_corpus import QUESTIONS

Query = Callable[[str], Awaitable[list[str]]]


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
