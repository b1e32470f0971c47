"""Cutting a document's text into chunks, and a keyword query into a safe FTS5 expression.

    windows(spans, size=8, overlap=2)   -> [(0, 8), (6, 14), ...]   word-piece index ranges
    chunk_texts(text, spans, size, overlap) -> [("original text of the window", 8), ...]
    fts_match("how do I read CSV files?") -> '"how" OR "do" OR "i" OR "read" OR "csv" OR "files"'

A vector bank's chunks are windows of the embedding model's word pieces (`Embedder.spans`), each cut
from the original text between its first piece's start and its last piece's end, so a chunk keeps
the document's case, accents and spacing. Consecutive windows share `overlap` pieces.
"""

from __future__ import annotations

import re

# A query word for FTS5: letters, digits and underscores in any script (what unicode61 indexes).
_WORD = re.compile(r"\w+", re.UNICODE)


def default_overlap(chunk_size: int) -> int:
    """The overlap a vector bank uses when its config gives none: a quarter of the chunk."""
    return chunk_size // 4


def windows(n_pieces: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) piece ranges of `size` covering `n_pieces`, each starting `size - overlap` after
    the last; the last window ends at `n_pieces`. Requires 0 <= overlap < size."""
    step = size - overlap
    out: list[tuple[int, int]] = []
    start = 0
    while start < n_pieces:
        end = min(start + size, n_pieces)
        out.append((start, end))
        if end == n_pieces:
            break
        start += step
    return out


def chunk_texts(text: str, spans: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[str, int]]:
    """(chunk text, its word-piece count) per window of `text`, whose pieces are at `spans`."""
    return [(text[spans[a][0] : spans[b - 1][1]], b - a) for a, b in windows(len(spans), size, overlap)]


def word_count(text: str) -> int:
    """The words of `text` as FTS5 indexes them: a keyword or key-value chunk's token_count."""
    return sum(1 for _ in _WORD.finditer(text))


def fts_match(query: str) -> str | None:
    """An FTS5 MATCH expression that finds rows holding any word of `query` (bm25 ranks those with
    more and rarer ones first), or None when `query` has no word. Each word is a quoted string, so
    nothing a user types (quotes, NEAR, *, ^, column filters, AND/OR/NOT) is read as FTS5 syntax."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)
