"""Every memory route over HTTP against a real stack (meta-reference-faiss): answers and error bodies."""

from __future__ import annotations

import re

import pytest

from .conftest import Client
from .corpus import DOCS

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
VECTOR = {"type": "vector", "embedding_model": "all-MiniLM-L6-v2", "chunk_size_in_tokens": 64}


def error(status: int, type_: str, message: str, field: str | None = None) -> tuple[int, dict]:
    body = {"type": type_, "message": message, "status": status} | ({"field": field} if field else {})
    return status, {"error": body}


def test_bank_lifecycle(served: Client) -> None:
    status, bank = served.post("memory_banks/create", {"name": "docs", "config": VECTOR})
    assert status == 200 and UUID4.fullmatch(bank["bank_id"])
    assert bank == {"bank_id": bank["bank_id"], "name": "docs", "config": {**VECTOR, "overlap_size_in_tokens": None}, "url": None}
    bank_id = bank["bank_id"]
    assert served.get("memory_banks/get", bank_id=bank_id) == (200, bank)
    assert bank in served.get("memory_banks/list")[1]
    assert served.delete("memory_banks/drop", {"bank_id": bank_id}) == (200, bank_id)
    assert served.get("memory_banks/get", bank_id=bank_id) == (200, None)
    assert bank not in served.get("memory_banks/list")[1]
    assert served.delete("memory_banks/drop", {"bank_id": bank_id}) == error(404, "not_found", f"Unknown memory bank '{bank_id}'.")


def test_vector_query_update_delete(served: Client) -> None:
    bank_id = served.create(VECTOR)
    served.insert(bank_id, DOCS)
    ids, scores = served.query(bank_id, "How do I read rows from a spreadsheet file?")
    assert ids[0] == "csv" and len(ids) == 3 and scores == sorted(scores, reverse=True)
    assert served.query(bank_id, "pick a random item from a list", max_chunks=1)[0] == ["random"]
    assert served.query(bank_id, "zip archive", max_chunks=6)[0][0] == "zipfile"
    # score_threshold leaves out what scores less; max_chunks beyond the bank returns all it has
    all_ids, all_scores = served.query(bank_id, "zip archive", max_chunks=100)
    assert len(all_ids) == len(DOCS)
    kept = served.query(bank_id, "zip archive", max_chunks=100, score_threshold=all_scores[2])
    assert kept == (all_ids[:3], all_scores[:3])
    assert served.query(bank_id, "zip archive", score_threshold=1.01) == ([], [])

    # documents come back as inserted
    status, docs = served.get("memory_bank/documents/get", bank_id=bank_id, document_ids=["json", "csv"])
    assert (status, docs) == (200, [{"document_id": d, "content": DOCS[d], "mime_type": None, "metadata": {}} for d in ("json", "csv")])

    # update replaces the document's chunks in the index, not only its row
    served.insert(bank_id, {"csv": "Brewing green tea: steep the leaves for two minutes."}, route="memory_bank/update")
    assert served.query(bank_id, "How do I read rows from a spreadsheet file?", max_chunks=1)[0] != ["csv"]
    assert served.query(bank_id, "how long to steep tea", max_chunks=1)[0] == ["csv"]
    status, docs = served.get("memory_bank/documents/get", bank_id=bank_id, document_ids=["csv"])
    assert docs[0]["content"] == "Brewing green tea: steep the leaves for two minutes."

    # delete removes its chunks from the index
    assert served.delete("memory_bank/documents/delete", {"bank_id": bank_id, "document_ids": ["csv", "zipfile"]}) == (200, None)
    ids, _ = served.query(bank_id, "how long to steep tea", max_chunks=10)
    assert sorted(ids) == ["datetime", "json", "random", "sqlite3"]
    assert served.get("memory_bank/documents/get", bank_id=bank_id, document_ids=["csv"]) == error(
        404, "not_found", f"Memory bank '{bank_id}' has no document 'csv'."
    )


def test_chunks_are_token_windows_of_the_original_text(served: Client) -> None:
    bank_id = served.create({**VECTOR, "chunk_size_in_tokens": 8, "overlap_size_in_tokens": 2})
    text = "Ünïcode Text, KEPT as-is: the quick brown fox jumps over the lazy dog again and again."
    served.insert(bank_id, {"t": text})
    _, body = served.post("memory_bank/query", {"bank_id": bank_id, "query": "fox", "params": {"max_chunks": 100}})
    chunks = sorted((c["content"], c["token_count"]) for c in body["chunks"])
    assert all(content in text for content, _ in chunks)  # cut from the text: case and accents kept
    assert {c["document_id"] for c in body["chunks"]} == {"t"}
    assert any(content.startswith("Ünïcode Text, KEPT") for content, _ in chunks)
    assert all(n <= 8 for _, n in chunks) and sum(n for _, n in chunks) > 8


def test_default_overlap_is_a_quarter(served: Client) -> None:
    bank_id = served.create({**VECTOR, "chunk_size_in_tokens": 8})
    words = " ".join(f"w{i}" for i in range(20))  # each "wN" is 2 word pieces: 40 pieces
    served.insert(bank_id, {"w": words})
    _, body = served.post("memory_bank/query", {"bank_id": bank_id, "query": "w1", "params": {"max_chunks": 100}})
    starts = sorted(int(c["content"].split()[0].lstrip("w")) for c in body["chunks"])
    assert starts == [0, 3, 6, 9, 12, 15, 18]  # step 8 - 2 pieces = 3 words


# provider -> (ranking of "read a CSV file", its BM25 scores, after csv's update, after zipfile's delete).
# Both score as FTS5's bm25; faiss's SQLite matches "a" (in half the documents, an IDF near 0), where
# PostgreSQL's English text search drops it as a stop word, and stems "reads" with Snowball, not Porter.
KEYWORD_RANKINGS = {
    "meta-reference-faiss": (["csv", "zipfile", "sqlite3", "random"], [2.7959, 0.6548, 0.0, 0.0],
                             ["zipfile", "sqlite3", "random"], ["sqlite3", "random"]),
    "remote::pgvector": (["csv", "zipfile", "sqlite3"], [2.3472, 0.6548, 0.0], ["zipfile", "sqlite3"], ["sqlite3"]),
}  # fmt: skip


def test_keyword_bank_ranks_by_bm25(served: Client) -> None:
    ranking, rounded, after_update, after_delete = KEYWORD_RANKINGS[served.provider_id]
    bank_id = served.create({"type": "keyword"})
    served.insert(bank_id, DOCS)
    ids, scores = served.query(bank_id, "read a CSV file", max_chunks=6)
    # "csv" and "read" are in one document; "file" in three ("files": stemmed)
    assert ids == ranking
    assert [round(s, 4) for s in scores] == rounded
    # any user text is words, never FTS5 syntax: quotes, operators, column filters, stars
    for hostile in ['"csv', "csv AND", "NEAR(csv json)", "content: csv", "csv*", "^csv", "-", "NOT", ")", "''"]:
        status, body = served.post("memory_bank/query", {"bank_id": bank_id, "query": hostile})
        assert status == 200, (hostile, body)
    assert served.query(bank_id, "?!")[0] == []
    served.insert(bank_id, {"csv": "nothing about spreadsheets any more"}, route="memory_bank/update")
    assert served.query(bank_id, "read a CSV file", max_chunks=6)[0] == after_update
    assert served.delete("memory_bank/documents/delete", {"bank_id": bank_id, "document_ids": ["zipfile"]}) == (200, None)
    assert served.query(bank_id, "read a CSV file", max_chunks=6)[0] == after_delete


def test_keyvalue_bank_answers_the_document_named_by_the_query(served: Client) -> None:
    bank_id = served.create({"type": "keyvalue"})
    served.insert(bank_id, {"greeting": "hello there", "other": "general kenobi"})
    status, body = served.post("memory_bank/query", {"bank_id": bank_id, "query": "greeting"})
    assert (status, body) == (200, {"chunks": [{"content": "hello there", "token_count": 2, "document_id": "greeting"}], "scores": [1.0]})
    assert served.query(bank_id, "Greeting") == ([], [])  # exact: case matters
    assert served.query(bank_id, "other") == (["other"], [1.0])


@pytest.mark.parametrize("kind", ["vector", "keyword", "keyvalue"])
def test_empty_inserts_and_documents_without_text_are_400_and_store_nothing(served: Client, kind: str) -> None:
    bank_id = served.create(VECTOR if kind == "vector" else {"type": kind})
    for route in ("memory_bank/insert", "memory_bank/update"):
        assert served.post(route, {"bank_id": bank_id, "documents": []}) == error(
            400, "invalid_request", "`documents` is empty: send at least one document.", "documents"
        )
    blank_html = {"uri": "data:text/html,%3Cp%3E%20%3C/p%3E%3Cscript%3Ex()%3C/script%3E"}
    for content in ["", " \n\t", [{"type": "text", "text": " "}], blank_html]:
        documents = [{"document_id": "full", "content": "some text"}, {"document_id": "e", "content": content}]
        assert served.post("memory_bank/insert", {"bank_id": bank_id, "documents": documents}) == error(
            400, "invalid_request", "Document 'e' has no text.", "documents[1].content"
        )
    assert served.get("memory_bank/documents/get", bank_id=bank_id, document_ids=["full"])[0] == 404  # all or nothing


def test_document_ids_with_slashes_and_dots_are_keys_never_paths(served: Client) -> None:
    bank_id = served.create({"type": "keyvalue"})
    ids = ["../../escape", "a/b", "/etc/passwd", "..", "."]
    folder = served.storage.parent if served.storage is not None else None  # pgvector's banks are in its database
    before = sorted(folder.rglob("*")) if folder else []
    served.insert(bank_id, {d: f"value of {d}" for d in ids})
    assert (sorted(folder.rglob("*")) if folder else []) == before  # no file or folder was made for them
    for d in ids:
        assert served.query(bank_id, d) == ([d], [1.0])
    status, docs = served.get("memory_bank/documents/get", bank_id=bank_id, document_ids=ids)
    assert (status, [x["content"] for x in docs]) == (200, [f"value of {d}" for d in ids])
    assert served.delete("memory_bank/documents/delete", {"bank_id": bank_id, "document_ids": ids}) == (200, None)
    assert served.query(bank_id, "a/b") == ([], [])


def test_interleaved_content_is_joined(served: Client) -> None:
    bank_id = served.create({"type": "keyvalue"})
    doc = {"document_id": "parts", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]}
    assert served.post("memory_bank/insert", {"bank_id": bank_id, "documents": [doc]}) == (200, None)
    _, body = served.post("memory_bank/query", {"bank_id": bank_id, "query": [{"type": "text", "text": "parts"}]})
    assert body["chunks"][0]["content"] == "one two"


BAD_BANK_IDS = ["../etc", "a/b", "..", ".hidden", "a b", "x" * 65, "", "é"]


@pytest.mark.parametrize("bank_id", BAD_BANK_IDS)
def test_bank_ids_that_are_not_safe_names_are_400(served: Client, bank_id: str) -> None:
    message = (
        f"Invalid bank_id '{bank_id}': a bank id is letters, digits, '-' or '_' (at most 64), as memory_banks/create returns it."
    )
    want = error(400, "invalid_request", message, "bank_id")
    assert served.post("memory_bank/query", {"bank_id": bank_id, "query": "x"}) == want
    assert served.post("memory_bank/insert", {"bank_id": bank_id, "documents": []}) == want
    assert served.delete("memory_banks/drop", {"bank_id": bank_id}) == want
    assert served.get("memory_banks/get", bank_id=bank_id) == want


def test_unknown_bank_and_document_are_404(served: Client) -> None:
    missing = "0b6f8f9e-1f0a-4c4e-9d57-0a7d3f1b2c3d"
    want = error(404, "not_found", f"Unknown memory bank '{missing}'.")
    assert served.post("memory_bank/query", {"bank_id": missing, "query": "x"}) == want
    assert served.post("memory_bank/insert", {"bank_id": missing, "documents": []}) == want
    assert served.post("memory_bank/update", {"bank_id": missing, "documents": []}) == want
    assert served.get("memory_bank/documents/get", bank_id=missing, document_ids=["a"]) == want
    assert served.delete("memory_bank/documents/delete", {"bank_id": missing, "document_ids": ["a"]}) == want
    bank_id = served.create({"type": "keyvalue"})
    served.insert(bank_id, {"a": "1"})
    assert served.delete("memory_bank/documents/delete", {"bank_id": bank_id, "document_ids": ["a", "b", "c"]}) == error(
        404, "not_found", f"Memory bank '{bank_id}' has no document 'b', 'c'."
    )
    assert served.query(bank_id, "a") == (["a"], [1.0])  # nothing was deleted
    update = {"bank_id": bank_id, "documents": [{"document_id": "a", "content": "2"}, {"document_id": "z", "content": "3"}]}
    assert served.post("memory_bank/update", update) == error(404, "not_found", f"Memory bank '{bank_id}' has no document 'z'.")
    assert served.get("memory_bank/documents/get", bank_id=bank_id, document_ids=["a"])[1][0]["content"] == "1"


def test_bad_documents(served: Client) -> None:
    bank_id = served.create({"type": "keyword"})
    served.insert(bank_id, {"a": "alpha"})

    def insert(*docs: dict, route: str = "memory_bank/insert", **extra: object) -> tuple[int, dict]:
        return served.post(route, {"bank_id": bank_id, "documents": list(docs), **extra})

    assert insert({"document_id": "b", "content": "x"}, {"document_id": "a", "content": "again"}) == error(
        409, "conflict", f"Memory bank '{bank_id}' already has document 'a'; use /memory_bank/update to replace it."
    )
    assert insert({"document_id": "c", "content": "x"}, {"document_id": "c", "content": "y"}) == error(
        400, "invalid_request", "Document id 'c' appears twice in one request.", "documents[1].document_id"
    )
    assert insert({"document_id": "", "content": "x"}) == error(
        400, "invalid_request", "Invalid document id '': 1 to 256 characters, no control characters.", "documents[0].document_id"
    )
    assert insert({"document_id": "a\nb", "content": "x"})[0] == 400
    assert insert({"document_id": "f", "content": {"uri": "ftp://example.com/a.txt"}}) == error(  # in words, not a regex
        400, "invalid_request", "Invalid `documents[0].content.uri`: Expected a URL that starts with http://, https://, file:// or data:",
        "documents[0].content.uri",
    )
    assert insert({"document_id": "big", "content": "x" * 5001}) == error(
        413, "payload_too_large", "Document 'big' has 5001 characters of text; a document holds at most 5000."
    )
    assert insert({"document_id": "t", "content": "x"}, ttl_seconds=60) == error(
        400, "unsupported", "ttl_seconds is not supported: documents stay until deleted.", "ttl_seconds"
    )
    # none of the refused requests stored anything
    assert served.query(bank_id, "x again big alpha", max_chunks=10)[0] == ["a"]


BAD_CONFIGS = [
    pytest.param({"name": "b", "config": {"type": "graph"}},
                 error(400, "unsupported", "Graph memory banks are not supported; use a vector, keyword or keyvalue bank.", "config.type"),
                 id="graph"),
    pytest.param({"name": "b", "config": {"type": "keyword"}, "url": {"uri": "http://example.com/bank"}},
                 error(400, "unsupported", "The {provider} provider keeps its own banks: `url` must be null.", "url"),
                 id="url"),
    pytest.param({"name": "b", "config": {**VECTOR, "chunk_size_in_tokens": 0}},
                 error(400, "invalid_request", "Invalid `config.chunk_size_in_tokens`: 0 is not between 1 and 8192.",
                       "config.chunk_size_in_tokens"),
                 id="chunk-size"),
    pytest.param({"name": "b", "config": {**VECTOR, "overlap_size_in_tokens": 64}},
                 error(400, "invalid_request", "Invalid `config.overlap_size_in_tokens`: 64 must be at least 0 and below the chunk size (64).",
                       "config.overlap_size_in_tokens"),
                 id="overlap"),
    pytest.param({"name": "b", "config": {**VECTOR, "embedding_model": "all-MiniLM-L6"}}, None, id="unknown-model"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "want"), BAD_CONFIGS)
def test_bad_bank_configs_are_refused_and_create_nothing(served: Client, body: dict, want: tuple | None) -> None:
    before = served.get("memory_banks/list")[1]
    status, answer = served.post("memory_banks/create", body)
    if want is None:  # the message lists this machine's models: its start is pinned
        assert (status, answer["error"]["type"], answer["error"].get("field")) == (404, "not_found", None)  # as on /inference/embeddings
        assert answer["error"]["message"].startswith("Unknown embedding model 'all-MiniLM-L6'. Did you mean 'all-MiniLM-L6-v2'? Available: all-MiniLM-L6-v2")
    else:
        message = want[1]["error"]["message"].replace("{provider}", served.provider_id)
        assert (status, answer) == (want[0], {"error": {**want[1]["error"], "message": message}})
    assert served.get("memory_banks/list")[1] == before


BAD_PARAMS = [
    pytest.param({"max_chunks": "3"}, "Invalid `params.max_chunks`: Expected `int`, got `str`", "params.max_chunks", id="str"),
    pytest.param({"max_chunks": True}, "Invalid `params.max_chunks`: Expected `int`, got `bool`", "params.max_chunks", id="bool"),
    pytest.param({"max_chunks": 0}, "Invalid `params.max_chunks`: Expected `int` >= 1", "params.max_chunks", id="zero"),
    pytest.param({"max_chunks": 1001}, "Invalid `params.max_chunks`: Expected `int` <= 1000", "params.max_chunks", id="huge"),
    pytest.param({"score_threshold": "high"}, "Invalid `params.score_threshold`: Expected `float | null`, got `str`",
                 "params.score_threshold", id="threshold"),
    pytest.param({"top_k": 3}, "Unknown field `params.top_k`", "params.top_k", id="unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("params", "message", "field"), BAD_PARAMS)
def test_bad_query_params_are_400(served: Client, params: dict, message: str, field: str) -> None:
    bank_id = served.create({"type": "keyword"})
    body = {"bank_id": bank_id, "query": "x", "params": params}
    assert served.post("memory_bank/query", body) == error(400, "invalid_request", message, field)


@pytest.mark.parametrize("kind", ["vector", "keyword", "keyvalue"])
@pytest.mark.parametrize("query", ["", "   \n", [{"type": "text", "text": " "}]], ids=["empty", "blank", "blank-parts"])
def test_a_query_without_text_is_400(served: Client, kind: str, query: object) -> None:
    config = {"type": kind} if kind != "vector" else {"type": "vector", "embedding_model": "all-MiniLM-L6-v2", "chunk_size_in_tokens": 64}
    bank_id = served.create(config)
    body = {"bank_id": bank_id, "query": query}
    assert served.post("memory_bank/query", body) == error(400, "invalid_request", "The query has no text to search for.", "query")
