"""One memory bank on disk: a directory holding its SQLite database and its faiss index cache.

    <root>/<bank_id>/bank.sqlite     the bank, its documents, chunks (and their vectors), FTS5 rows
    <root>/<bank_id>/index.faiss     vector banks: the index, a cache tagged with the write generation

The database is the truth. Every change (an insert, update or delete of any number of documents)
is one SQLite transaction in WAL mode, which also bumps the bank's `generation`; the faiss index in
memory follows after the commit, and its file is written when the bank closes (or after an HNSW
build). A process killed at any point leaves the database as before or after the transaction; an
index file whose generation differs from the database's is stale and rebuilt from the stored
vectors when the bank is next used.

A bank directory appears whole: it is written as `.new-<id>` and renamed. Dropping renames it to
`.drop-<id>` before removing it, and `sweep` removes what a crash left of either.

Every method blocks (SQLite, faiss): the provider calls them in worker threads. A per-bank lock
serialises them, so inserts and queries may run concurrently from any number of tasks.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from llama_core.errors import ConflictError, NotFoundError, shown
from llama_core.providers.memory.vectors import VectorIndex, fsync_dir
from llama_core.types.memory import Chunk, KeywordMemoryBankConfig, MemoryBank, MemoryBankDocument, QueryDocumentsResponse

DB_NAME = "bank.sqlite"
INDEX_NAME = "index.faiss"
NEW_PREFIX, DROP_PREFIX = ".new-", ".drop-"

_SCHEMA = """
CREATE TABLE bank (
    id INTEGER PRIMARY KEY CHECK (id = 0), body BLOB NOT NULL, generation INTEGER NOT NULL,
    created_ns INTEGER NOT NULL  -- banks are listed in the order they were created
);
CREATE TABLE documents (document_id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    embedding BLOB  -- vector banks: float32 row of the embedding model's dimension
);
CREATE INDEX chunks_by_document ON chunks (document_id);
-- keyword banks: rowid = chunks.id; porter stemming so "files" finds "file"
CREATE VIRTUAL TABLE chunks_fts USING fts5 (content, tokenize = 'porter unicode61 remove_diacritics 2');
"""

_bank_decoder = msgspec.json.Decoder(MemoryBank)
_document_decoder = msgspec.json.Decoder(MemoryBankDocument)


@dataclass(slots=True)
class Prepared:
    """A document ready to store: its JSON, its chunks (text, token count) and their vectors."""

    document_id: str
    body: bytes
    chunks: list[tuple[str, int]]
    vectors: np.ndarray | None  # (len(chunks), d) float32, vector banks only


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # in WAL: durable against a process crash, never corrupt
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def missing_error(bank_id: str, missing: Sequence[str]) -> NotFoundError:
    """404 naming (up to five of) the documents `bank_id` lacks."""
    names = ", ".join(f"'{shown(d, 100)}'" for d in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return NotFoundError(f"Memory bank '{bank_id}' has no document {names}.")


def conflict_error(bank_id: str, document_id: str) -> ConflictError:
    """409: an insert of a document id the bank has."""
    return ConflictError(f"Memory bank '{bank_id}' already has document '{shown(document_id, 100)}'; use /memory_bank/update to replace it.")


def sweep(root: Path) -> None:
    """Remove what a crash left of a bank being created or dropped."""
    for path in root.iterdir():
        if path.name.startswith((NEW_PREFIX, DROP_PREFIX)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


class BankStore:
    """One open bank. Build with `create` or `open`; every method blocks and takes the bank's lock."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, bank: MemoryBank, generation: int) -> None:
        self.directory = directory
        self.conn = conn
        self.bank = bank
        self.generation = generation
        self.lock = threading.Lock()
        self.closed = False
        self.created_ns = 0
        self.index: VectorIndex | None = None  # vector banks, once used
        self._saved_generation = -1  # generation of the index file this process wrote or read

    @property
    def bank_id(self) -> str:
        return self.bank.bank_id

    @classmethod
    def create(cls, root: Path, bank: MemoryBank) -> BankStore:
        """A new bank directory under `root`, appearing whole (built aside, then renamed)."""
        staging = root / f"{NEW_PREFIX}{bank.bank_id}"
        staging.mkdir()
        conn = _connect(staging / DB_NAME)
        try:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT INTO bank VALUES (0, ?, 0, ?)", (msgspec.json.encode(bank), time.time_ns()))
        finally:
            conn.close()
        final = root / bank.bank_id
        staging.rename(final)
        fsync_dir(root)
        return cls.open(final)

    @classmethod
    def open(cls, directory: Path) -> BankStore:
        """The bank stored in `directory` (sqlite3.DatabaseError if it is not one)."""
        (directory / f"{INDEX_NAME}.tmp").unlink(missing_ok=True)  # an index write a crash cut short
        conn = _connect(directory / DB_NAME)
        try:
            body, generation, created_ns = conn.execute("SELECT body, generation, created_ns FROM bank").fetchone()
            bank = _bank_decoder.decode(body)
        except BaseException:
            conn.close()
            raise
        store = cls(directory, conn, bank, generation)
        store.created_ns = created_ns
        return store

    def _check_open(self) -> None:
        if self.closed:
            raise NotFoundError(f"Memory bank '{self.bank_id}' was dropped.")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("UPDATE bank SET generation = generation + 1")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.generation += 1

    # -- documents ---------------------------------------------------------------------------

    def _existing(self, document_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(document_ids), 500):  # SQLite's bound on host parameters
            part = document_ids[i : i + 500]
            marks = ",".join("?" * len(part))
            found.update(r[0] for r in self.conn.execute(f"SELECT document_id FROM documents WHERE document_id IN ({marks})", part))
        return found

    def _missing_error(self, missing: Sequence[str]) -> NotFoundError:
        return missing_error(self.bank_id, missing)

    def _chunk_ids(self, document_ids: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for d in document_ids:
            ids.extend(r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE document_id = ?", (d,)))
        return ids

    def put(self, documents: Sequence[Prepared], replace: bool) -> None:
        """Store documents in one transaction. `replace` False (insert): ConflictError (409) if one
        exists; True (update): NotFoundError (404) unless all exist, whose chunks are replaced."""
        with self.lock:
            self._check_open()
            ids = [d.document_id for d in documents]
            removed: list[int] = []
            added_ids: list[int] = []
            with self._transaction() as db:
                existing = self._existing(ids)
                if replace and len(existing) < len(ids):
                    raise self._missing_error([d for d in ids if d not in existing])
                if not replace and existing:
                    raise conflict_error(self.bank_id, next(d for d in ids if d in existing))
                if replace:
                    removed = self._chunk_ids(ids)
                    self._delete_fts(removed)
                    db.executemany("DELETE FROM documents WHERE document_id = ?", [(d,) for d in ids])
                keyword = isinstance(self.bank.config, KeywordMemoryBankConfig)
                for doc in documents:
                    db.execute("INSERT INTO documents VALUES (?, ?)", (doc.document_id, doc.body))
                    for j, (text, count) in enumerate(doc.chunks):
                        blob = doc.vectors[j].tobytes() if doc.vectors is not None else None
                        cur = db.execute(
                            "INSERT INTO chunks (document_id, content, token_count, embedding) VALUES (?, ?, ?, ?)",
                            (doc.document_id, text, count, blob),
                        )
                        added_ids.append(int(cur.lastrowid))
                        if keyword:
                            db.execute("INSERT INTO chunks_fts (rowid, content) VALUES (?, ?)", (cur.lastrowid, text))
            if self.index is not None and self.index.built:
                self.index.remove(np.asarray(removed, dtype=np.int64))
                vectors = [d.vectors for d in documents if d.vectors is not None and len(d.vectors)]
                if self.index.built and vectors:
                    self.index.add(np.asarray(added_ids, dtype=np.int64), np.concatenate(vectors))

    def _delete_fts(self, chunk_ids: Sequence[int]) -> None:
        if isinstance(self.bank.config, KeywordMemoryBankConfig):
            self.conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in chunk_ids])

    def delete(self, document_ids: Sequence[str]) -> None:
        """Remove documents and their chunks; NotFoundError (404), removing none, unless all exist."""
        with self.lock:
            self._check_open()
            with self._transaction() as db:
                existing = self._existing(document_ids)
                missing = [d for d in document_ids if d not in existing]
                if missing:
                    raise self._missing_error(missing)
                removed = self._chunk_ids(document_ids)
                self._delete_fts(removed)
                db.executemany("DELETE FROM documents WHERE document_id = ?", [(d,) for d in document_ids])
            if self.index is not None:
                self.index.remove(np.asarray(removed, dtype=np.int64))

    def get(self, document_ids: Sequence[str]) -> list[MemoryBankDocument]:
        """The stored documents, in the order asked; NotFoundError (404) naming any missing."""
        with self.lock:
            self._check_open()
            bodies: dict[str, bytes] = {}
            for d in dict.fromkeys(document_ids):
                row = self.conn.execute("SELECT body FROM documents WHERE document_id = ?", (d,)).fetchone()
                if row is not None:
                    bodies[d] = row[0]
            missing = [d for d in document_ids if d not in bodies]
            if missing:
                raise self._missing_error(missing)
            return [_document_decoder.decode(bodies[d]) for d in document_ids]

    # -- queries -------------------------------------------------------------------------------

    def _chunks(self, ids: Sequence[int]) -> dict[int, Chunk]:
        out: dict[int, Chunk] = {}
        for i in ids:
            row = self.conn.execute("SELECT document_id, content, token_count FROM chunks WHERE id = ?", (i,)).fetchone()
            if row is not None:
                out[i] = Chunk(document_id=row[0], content=row[1], token_count=row[2])
        return out

    def query_vector(self, query: np.ndarray, k: int, threshold: float | None, hnsw_min_chunks: int | None) -> QueryDocumentsResponse:
        """The `k` chunks nearest to the unit row `query` (cosine), best first, none under `threshold`."""
        with self.lock:
            self._check_open()
            index = self._ready_index(query.shape[-1], hnsw_min_chunks)
            scores, ids = index.search(query.astype(np.float32, copy=False), k)
            return self._answer(scores, ids, threshold)

    def query_keyword(self, match: str | None, k: int, threshold: float | None) -> QueryDocumentsResponse:
        """The `k` chunks that best match the FTS5 expression `match` (bm25, negated: higher is better)."""
        with self.lock:
            self._check_open()
            if match is None:
                return QueryDocumentsResponse(chunks=[], scores=[])
            rows = self.conn.execute(
                "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts), rowid LIMIT ?",
                (match, k),
            ).fetchall()
            return self._answer([r[1] for r in rows], [r[0] for r in rows], threshold)

    def query_key(self, key: str) -> QueryDocumentsResponse:
        """The document whose id is exactly `key`, as one chunk scored 1.0; nothing if there is none."""
        with self.lock:
            self._check_open()
            rows = self.conn.execute("SELECT id FROM chunks WHERE document_id = ? ORDER BY id", (key,)).fetchall()
            return self._answer([1.0] * len(rows), [r[0] for r in rows], None)

    def _answer(self, scores: Sequence[float], ids: Sequence[int], threshold: float | None) -> QueryDocumentsResponse:
        chunks = self._chunks(ids)
        kept = [(s, chunks[i]) for s, i in zip(scores, ids, strict=True) if i in chunks and (threshold is None or s >= threshold)]
        return QueryDocumentsResponse(chunks=[c for _, c in kept], scores=[float(s) for s, _ in kept])

    # -- the faiss index -------------------------------------------------------------------------

    def _ready_index(self, dimension: int, hnsw_min_chunks: int | None) -> VectorIndex:
        """The built index: as it is, else from its file if current, else rebuilt from the rows."""
        if self.index is None or self.index.dimension != dimension:
            self.index = VectorIndex(dimension, hnsw_min_chunks)
        index = self.index
        if index.built:
            return index
        path = self.directory / INDEX_NAME
        if index.load(path, self.generation):
            self._saved_generation = self.generation
            return index
        ids, vectors = self._stored_vectors(dimension)
        index.build(ids, vectors)
        if index.kind == "hnsw":  # minutes to rebuild at 1M chunks: keep it
            index.save(path, self.generation)
            self._saved_generation = self.generation
        return index

    def _stored_vectors(self, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        # Row by row into arrays of the final size: a 100k-chunk bank's 150 MB of vectors is held once.
        (n,) = self.conn.execute("SELECT count(*) FROM chunks WHERE embedding IS NOT NULL").fetchone()
        ids = np.empty(n, dtype=np.int64)
        vectors = np.empty((n, dimension), dtype=np.float32)
        rows = self.conn.execute("SELECT id, embedding FROM chunks WHERE embedding IS NOT NULL ORDER BY id")
        for i, (chunk_id, blob) in enumerate(rows):
            ids[i] = chunk_id
            vectors[i] = np.frombuffer(blob, dtype=np.float32)
        return ids, vectors

    # -- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Write the index file if it is behind, then close the database."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self.index is not None and self.index.built and self._saved_generation != self.generation:
                    self.index.save(self.directory / INDEX_NAME, self.generation)
            finally:
                self.conn.close()

    def drop(self) -> None:
        """Close the bank and remove its directory (renamed first, so a crash leaves no half bank)."""
        with self.lock:
            self.closed = True
            self.conn.close()
            trash = self.directory.with_name(f"{DROP_PREFIX}{self.directory.name}")
            self.directory.rename(trash)
            fsync_dir(trash.parent)
            shutil.rmtree(trash, ignore_errors=True)


def stats(store: BankStore) -> dict[str, Any]:
    """Counts for tests and benches: documents, chunks, index kind and size."""
    with store.lock:
        docs = store.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = store.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        index = store.index
        built = index is not None and index.built
        return {
            "documents": docs,
            "chunks": chunks,
            "index": index.kind if built else None,
            "indexed": index.index.ntotal if built else None,
        }
