"""Token windows and the FTS5 expression a keyword query becomes."""

from __future__ import annotations

import sqlite3

import pytest

from llama_core.providers.memory.chunking import chunk_texts, default_overlap, fts_match, windows


@pytest.mark.parametrize(
    ("n", "size", "overlap", "want"),
    [
        (0, 4, 1, []),
        (3, 4, 1, [(0, 3)]),
        (4, 4, 1, [(0, 4)]),
        (5, 4, 1, [(0, 4), (3, 5)]),
        (10, 4, 0, [(0, 4), (4, 8), (8, 10)]),
        (10, 4, 3, [(0, 4), (1, 5), (2, 6), (3, 7), (4, 8), (5, 9), (6, 10)]),
    ],
)
def test_windows(n: int, size: int, overlap: int, want: list) -> None:
    assert windows(n, size, overlap) == want


def test_chunks_are_slices_of_the_original_text() -> None:
    text = "Hello,  WORLD! é"
    spans = [(0, 5), (5, 6), (8, 13), (13, 14), (15, 16)]
    assert chunk_texts(text, spans, 3, 1) == [("Hello,  WORLD", 3), ("WORLD! é", 3)]
    assert default_overlap(128) == 32 and default_overlap(3) == 0


def test_fts_match_quotes_every_word() -> None:
    assert fts_match('Read "CSV" files, NEAR(x y) OR col:umn* ^z') == '"read" OR "csv" OR "files" OR "near" OR "x" OR "y" OR "or" OR "col" OR "umn" OR "z"'
    assert fts_match("¿?! -- ") is None
    assert fts_match("Ünïcode 漢字 read read") == '"ünïcode" OR "漢字" OR "read"'


@pytest.mark.parametrize("query", ['"', "AND", "NOT x", "x:y", "*", "a NEAR/2 b", "(", "{a b}:c", "\x00", "-x", "+"])
def test_any_query_is_a_valid_match_expression(query: str) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5 (content, tokenize = 'porter unicode61 remove_diacritics 2')")
    db.execute("INSERT INTO t VALUES ('x y a b c and not near')")
    match = fts_match(query)
    if match is not None:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (match,)).fetchall()
