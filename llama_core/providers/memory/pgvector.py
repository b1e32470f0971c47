"""`remote::pgvector`: the memory API of meta-reference-faiss, its banks kept in PostgreSQL with pgvector.

    [providers.memory]
    provider_id = "remote::pgvector"
    host = "db.internal"  port = 5432  db = "llama"  user = "llama"  password = "..."

Everything a request goes through before storage is FaissMemory's (provider.py): ids, documents
and their limits, chunking, MiniLM embeddings in this process, query params, the same errors. The
banks live in three tables, which entering creates if they are missing (with `CREATE EXTENSION
IF NOT EXISTS vector`):

    llama_memory_banks      bank_id, the bank's JSON, created_ns (banks list in creation order)
    llama_memory_documents  (bank_id, document_id), the document's JSON; cascades from its bank
    llama_memory_chunks     id, bank_id, document_id, content, token_count,
                            embedding vector (vector banks), tsv tsvector (keyword banks); cascades

| type     | query                                                  | score                          |
|----------|--------------------------------------------------------|--------------------------------|
| vector   | `ORDER BY embedding <=> query` (exact, cosine)         | 1 - cosine distance, -1..1     |
| keyword  | any of its words, English stemming (`to_tsquery` of    | BM25 as FTS5's (computed here  |
|          | `'w1' | 'w2'`; stop words match nothing)               | from the index's counts)       |
| keyvalue | the chunk whose document_id is exactly the query       | 1.0                            |

A change of any number of documents is one transaction. The provider holds one connection, its
calls serialised by a lock and run in worker threads (psycopg's blocking API works under asyncio
and trio alike). Other stacks may share the database: each reads the banks at start.

The password goes to libpq as a connection parameter (never in a URL) and is redacted from any
error; a refused connection says which host, port, db and user were tried.

Non-goals: no HNSW or IVFFlat index yet (exact search), several connections, or banks created by
another running stack seen before a restart.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from llama_core.config import PGVectorImplConfig
from llama_core.errors import InvalidRequestError, NotFoundError, UnavailableError, shown
from llama_core.providers.memory.bank import Prepared, conflict_error, missing_error
from llama_core.providers.memory.provider import FaissMemory
from llama_core.redact import known_secrets, redact
from llama_core.types.memory import Chunk, KeywordMemoryBankConfig, MemoryBank, MemoryBankDocument, QueryDocumentsResponse

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import psycopg

_SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    """CREATE TABLE IF NOT EXISTS llama_memory_banks (
        bank_id text PRIMARY KEY, body bytea NOT NULL, created_ns bigint NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS llama_memory_documents (
        bank_id text NOT NULL REFERENCES llama_memory_banks ON DELETE CASCADE,
        document_id text NOT NULL, body bytea NOT NULL, PRIMARY KEY (bank_id, document_id))""",
    """CREATE TABLE IF NOT EXISTS llama_memory_chunks (
        id bigserial PRIMARY KEY, bank_id text NOT NULL, document_id text NOT NULL,
        content text NOT NULL, token_count integer NOT NULL, embedding vector, tsv tsvector,
        FOREIGN KEY (bank_id, document_id) REFERENCES llama_memory_documents ON DELETE CASCADE)""",
    "CREATE INDEX IF NOT EXISTS llama_memory_chunks_by_document ON llama_memory_chunks (bank_id, document_id)",
    "CREATE INDEX IF NOT EXISTS llama_memory_chunks_tsv ON llama_memory_chunks USING gin (tsv)",
)
TEXT_SEARCH = "english"  # stemming as faiss's porter tokenizer does: "files" finds "file"
_WORD = re.compile(r"\w+")

_bank_decoder = msgspec.json.Decoder(MemoryBank)
_document_decoder = msgspec.json.Decoder(MemoryBankDocument)


def vector_text(row: np.ndarray) -> str:
    """pgvector's text form of a float32 row, exact: `[0.1,-0.25,...]`."""
    return "[" + ",".join(map(repr, row.astype(np.float32).tolist())) + "]"


def tsquery(words: Sequence[str]) -> str:
    """`'w1' | 'w2'`: any of the words (each only word characters, so no quoting can break)."""
    return " | ".join(f"'{w}'" for w in words)


BM25_K1, BM25_B = 1.2, 0.75  # FTS5's


def bm25_term(tf: int, df: int, n: int, length: int, avgdl: float) -> float:
    """One query term's share of a chunk's BM25 score, as FTS5 computes it (its IDF floored at 1e-6)."""
    idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
    norm = 1 - BM25_B + BM25_B * (length / avgdl if avgdl else 1.0)
    return idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * norm)


class Database:
    """One connection and the lock that serialises its use; `transaction()` and `rows()` block.

    A connection that breaks (the server restarted, a network cut) fails the call it was in with
    UnavailableError (503); the next call connects again.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection], where: str, secrets: set[str]) -> None:
        self.connect = connect
        self.where = where
        self.secrets = secrets
        self.lock = threading.Lock()
        self.conn: psycopg.Connection | None = connect()

    @contextmanager
    def _live(self) -> Iterator[psycopg.Connection]:
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = self.connect()
        try:
            yield self.conn
        except psycopg.OperationalError as e:
            if not self.conn.broken:
                raise
            self.conn.close()
            reason = redact(" ".join(str(e).split()), self.secrets)
            raise UnavailableError(f"Lost the connection to PostgreSQL at {self.where}: {reason}; the next request connects again.") from None

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self.lock, self._live() as conn, conn.transaction():
            yield conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock, self._live() as conn:
            return conn.execute(sql, params).fetchall()

    def ping(self) -> None:
        """Ask the server `SELECT 1` (UnavailableError when it does not answer, as for any call); while a
        request holds the connection, that request answers for it (no wait on the lock)."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            with self._live() as conn:
                conn.execute("SELECT 1")
        finally:
            self.lock.release()

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()


class PGBankStore:
    """One bank in PostgreSQL, with BankStore's blocking methods (put, delete, get, query_*, drop)."""

    def __init__(self, db: Database, bank: MemoryBank, created_ns: int) -> None:
        self.db = db
        self.bank = bank
        self.created_ns = created_ns

    @property
    def bank_id(self) -> str:
        return self.bank.bank_id

    @classmethod
    def create(cls, db: Database, bank: MemoryBank) -> PGBankStore:
        created_ns = time.time_ns()
        with db.transaction() as conn:
            conn.execute("INSERT INTO llama_memory_banks VALUES (%s, %s, %s)", (bank.bank_id, msgspec.json.encode(bank), created_ns))
        return cls(db, bank, created_ns)

    def _existing(self, conn: psycopg.Connection, document_ids: Sequence[str]) -> set[str]:
        rows = conn.execute(
            "SELECT document_id FROM llama_memory_documents WHERE bank_id = %s AND document_id = ANY(%s)", (self.bank_id, list(document_ids))
        )
        return {r[0] for r in rows}

    def _check_exists(self, conn: psycopg.Connection) -> None:
        if conn.execute("SELECT 1 FROM llama_memory_banks WHERE bank_id = %s", (self.bank_id,)).fetchone() is None:
            raise NotFoundError(f"Memory bank '{self.bank_id}' was dropped.")

    def put(self, documents: Sequence[Prepared], replace: bool) -> None:
        """Store documents in one transaction: ConflictError (409) on insert of an existing id,
        NotFoundError (404) on update unless all exist (their chunks are replaced);
        InvalidRequestError (400) for text holding NUL, which PostgreSQL's text cannot."""
        ids = [d.document_id for d in documents]
        for i, d in enumerate(documents):
            if any("\x00" in text for text, _ in d.chunks):
                raise InvalidRequestError(
                    f"Document '{shown(d.document_id, 100)}' holds a NUL character, which PostgreSQL cannot store in text.",
                    field=f"documents[{i}].content",
                )
        keyword = isinstance(self.bank.config, KeywordMemoryBankConfig)
        with self.db.transaction() as conn:
            self._check_exists(conn)
            existing = self._existing(conn, ids)
            if replace and len(existing) < len(ids):
                raise missing_error(self.bank_id, [d for d in ids if d not in existing])
            if not replace and existing:
                raise conflict_error(self.bank_id, next(d for d in ids if d in existing))
            if replace:
                conn.execute("DELETE FROM llama_memory_documents WHERE bank_id = %s AND document_id = ANY(%s)", (self.bank_id, ids))
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO llama_memory_documents VALUES (%s, %s, %s)", [(self.bank_id, d.document_id, d.body) for d in documents])
                rows = [
                    (self.bank_id, d.document_id, text, count,
                     vector_text(d.vectors[j]) if d.vectors is not None else None, text if keyword else None)
                    for d in documents for j, (text, count) in enumerate(d.chunks)
                ]  # fmt: skip
                cur.executemany(
                    "INSERT INTO llama_memory_chunks (bank_id, document_id, content, token_count, embedding, tsv) "
                    f"VALUES (%s, %s, %s, %s, %s::vector, to_tsvector('{TEXT_SEARCH}', %s))",
                    rows,
                )

    def delete(self, document_ids: Sequence[str]) -> None:
        """Remove documents and their chunks; NotFoundError (404), removing none, unless all exist."""
        with self.db.transaction() as conn:
            self._check_exists(conn)
            existing = self._existing(conn, document_ids)
            missing = [d for d in document_ids if d not in existing]
            if missing:
                raise missing_error(self.bank_id, missing)
            conn.execute("DELETE FROM llama_memory_documents WHERE bank_id = %s AND document_id = ANY(%s)", (self.bank_id, list(document_ids)))

    def get(self, document_ids: Sequence[str]) -> list[MemoryBankDocument]:
        """The stored documents, in the order asked; NotFoundError (404) naming any missing."""
        rows = self.db.rows(
            "SELECT document_id, body FROM llama_memory_documents WHERE bank_id = %s AND document_id = ANY(%s)",
            (self.bank_id, list(dict.fromkeys(document_ids))),
        )
        bodies = {d: bytes(b) for d, b in rows}
        missing = [d for d in document_ids if d not in bodies]
        if missing:
            raise missing_error(self.bank_id, missing)
        return [_document_decoder.decode(bodies[d]) for d in document_ids]

    def query_vector(self, query: np.ndarray, k: int, threshold: float | None, hnsw_min_chunks: int | None = None) -> QueryDocumentsResponse:
        """The `k` chunks nearest to the unit row `query` (cosine), best first, none under `threshold`."""
        rows = self.db.rows(
            "SELECT document_id, content, token_count, 1 - (embedding <=> %s::vector) AS score FROM llama_memory_chunks "
            "WHERE bank_id = %s AND embedding IS NOT NULL ORDER BY embedding <=> %s::vector, id LIMIT %s",
            (vector_text(query), self.bank_id, vector_text(query), k),
        )
        return answer(rows, threshold)

    def query_keyword(self, words: Sequence[str] | None, k: int, threshold: float | None) -> QueryDocumentsResponse:
        """The `k` chunks holding any of `words` (stemmed), by BM25 as FTS5 computes it, best first.

        PostgreSQL's own ts_rank knows no document frequencies (a word in every chunk counts as
        much as a rare one), so the score is computed here from what the GIN index finds: each
        query lexeme's document count, each matching chunk's term counts, and its length in words.
        """
        if not words:
            return QueryDocumentsResponse(chunks=[], scores=[])
        query = tsquery(words)
        with self.db.transaction() as conn:  # one snapshot for the counts and the matches
            (lexemes,) = conn.execute(f"SELECT tsvector_to_array(to_tsvector('{TEXT_SEARCH}', %s))", (" ".join(words),)).fetchone()
            if not lexemes:  # only stop words
                return QueryDocumentsResponse(chunks=[], scores=[])
            n, avgdl = conn.execute(
                "SELECT count(*), coalesce(avg(token_count), 0) FROM llama_memory_chunks WHERE bank_id = %s AND tsv IS NOT NULL", (self.bank_id,)
            ).fetchone()
            df = dict(conn.execute(
                "SELECT l, (SELECT count(*) FROM llama_memory_chunks c WHERE c.bank_id = %s AND c.tsv @@ plainto_tsquery('simple', l)) "
                "FROM unnest(%s::text[]) l", (self.bank_id, lexemes)).fetchall())  # fmt: skip
            matches = conn.execute(
                "SELECT c.id, c.document_id, c.content, c.token_count, u.lexeme, coalesce(array_length(u.positions, 1), 1) "
                f"FROM llama_memory_chunks c, unnest(c.tsv) u WHERE c.bank_id = %s AND c.tsv @@ to_tsquery('{TEXT_SEARCH}', %s) "
                "AND u.lexeme = ANY(%s)",
                (self.bank_id, query, lexemes),
            ).fetchall()
        scores: dict[int, float] = {}
        rows: dict[int, tuple[Any, ...]] = {}
        for chunk_id, document_id, content, length, lexeme, tf in matches:
            rows[chunk_id] = (document_id, content, length)
            scores[chunk_id] = scores.get(chunk_id, 0.0) + bm25_term(tf, df.get(lexeme, 0), n, length, float(avgdl))
        best = sorted(scores, key=lambda i: (-scores[i], i))[:k]
        return answer([(*rows[i], scores[i]) for i in best], threshold)

    def query_key(self, key: str) -> QueryDocumentsResponse:
        """The document whose id is exactly `key`, as one chunk scored 1.0; nothing if there is none."""
        if "\x00" in key:  # no document id holds one (provider.check_document_ids), and PostgreSQL's text cannot
            return QueryDocumentsResponse(chunks=[], scores=[])
        rows = self.db.rows(
            "SELECT document_id, content, token_count, 1.0 FROM llama_memory_chunks WHERE bank_id = %s AND document_id = %s ORDER BY id",
            (self.bank_id, key),
        )
        return answer(rows, None)

    def close(self) -> None:
        """Nothing to write back: every change is committed as it is made."""

    def drop(self) -> None:
        """Remove the bank, its documents and chunks (one cascading delete)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM llama_memory_banks WHERE bank_id = %s", (self.bank_id,))


def answer(rows: Sequence[tuple[Any, ...]], threshold: float | None) -> QueryDocumentsResponse:
    """(document_id, content, token_count, score) rows, best first, as an answer; those under `threshold` left out."""
    kept = [(float(s), Chunk(document_id=d, content=c, token_count=n)) for d, c, n, s in rows if threshold is None or float(s) >= threshold]
    return QueryDocumentsResponse(chunks=[c for _, c in kept], scores=[s for s, _ in kept])


class PGVectorMemory(FaissMemory):
    """apis.Memory over banks in PostgreSQL with pgvector. Enter it (`async with`) before use."""

    provider_id = "remote::pgvector"

    def __init__(self, config: PGVectorImplConfig) -> None:  # FaissMemory's storage_dir is not used
        self.config = config  # type: ignore[assignment]
        self._banks = {}  # type: ignore[var-annotated]
        self.db: Database | None = None

    def where(self) -> str:
        """The database as a message names it: `llama@localhost:5432/llama` (no password)."""
        c = self.config
        return f"{c.user}@{c.host}:{c.port}/{c.db}"

    def _connect(self) -> psycopg.Connection:
        import psycopg

        c = self.config
        try:
            conn = psycopg.connect(host=c.host, port=c.port, dbname=c.db, user=c.user, password=c.password,
                                   autocommit=True, connect_timeout=10, application_name="llama-stack")  # fmt: skip
        except psycopg.OperationalError as e:
            reason = redact(" ".join(str(e).split()), known_secrets(c))
            raise UnavailableError(f"Cannot connect to PostgreSQL as {self.where()}: {reason}") from None
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
        except psycopg.Error as e:
            conn.close()
            reason = redact(" ".join(str(e).split()), known_secrets(c))
            raise UnavailableError(
                f"PostgreSQL at {self.where()} cannot hold memory banks: {reason} (the pgvector extension must be "
                "installed on the server, and CREATE EXTENSION vector run once by a superuser if this user may not)."
            ) from None
        return conn

    def _open_all(self) -> None:
        self.db = db = Database(self._connect, self.where(), known_secrets(self.config))
        rows = db.rows("SELECT body, created_ns FROM llama_memory_banks ORDER BY created_ns, bank_id")
        banks = [PGBankStore(db, _bank_decoder.decode(bytes(body)), created_ns) for body, created_ns in rows]
        self._banks = {store.bank_id: store for store in banks}  # type: ignore[misc]

    def _create_store(self, bank: MemoryBank) -> PGBankStore:  # type: ignore[override]
        assert self.db is not None, "use `async with PGVectorMemory(...)` first"
        return PGBankStore.create(self.db, bank)

    def _keyword_match(self, text: str) -> list[str]:  # type: ignore[override]
        return _WORD.findall(text.lower())

    async def health(self) -> dict[str, object]:
        """{"status": "ok"} while PostgreSQL answers, else "unreachable" (the reason goes to the log, not
        to /health, which answers without the API key). A connection the server dropped is retried once."""
        import anyio.to_thread

        db = self.db
        if db is None:
            return {"status": "down"}
        for _ in range(2):
            try:
                await anyio.to_thread.run_sync(db.ping)
                return {"status": "ok"}
            except UnavailableError as e:
                reason = e.message
        log.warning("memory health: %s", reason)
        return {"status": "unreachable"}

    async def __aexit__(self, *exc_info: object) -> None:
        import anyio
        import anyio.to_thread

        self._banks = {}
        db, self.db = self.db, None
        if db is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(db.close)
