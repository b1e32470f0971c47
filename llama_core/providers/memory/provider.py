"""`meta-reference-faiss`: memory banks stored under ~/.llama/runtime/memory, served in-process.

    async with FaissMemory(FaissImplConfig()) as memory:
        bank = await memory.create_memory_bank(CreateMemoryBankRequest(name="docs", config=VectorMemoryBankConfig(
            embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=128)))
        await memory.insert_documents(InsertDocumentsRequest(bank_id=bank.bank_id, documents=[...]))
        hits = await memory.query_documents(QueryDocumentsRequest(bank_id=bank.bank_id, query="...",
                                                                  params={"max_chunks": 3, "score_threshold": 0.3}))

Bank types and what a query means:

| type     | a document becomes                                  | query                      | score                     |
|----------|-----------------------------------------------------|----------------------------|---------------------------|
| vector   | chunks of `chunk_size_in_tokens` word pieces of the | text, embedded by the      | cosine similarity, -1..1  |
|          | bank's embedding model, overlapping by              | same model; exact search   | (HNSW: approximate)       |
|          | `overlap_size_in_tokens` (default: a quarter)       | (faiss IndexFlatIP)        |                           |
| keyword  | one chunk: its whole text, in SQLite FTS5 (porter   | any of its words (free     | -bm25: higher is better   |
|          | stemming, case and accents folded)                  | text, never FTS5 syntax)   |                           |
| keyvalue | one chunk: its whole text, keyed by document_id     | a document_id, exactly     | 1.0                       |
| graph    | not supported (400)                                 |                            |                           |

Query params: `max_chunks` (int >= 1, default 3) and `score_threshold` (number; chunks scoring less
are left out). Chunks come best first; `scores[i]` is `chunks[i]`'s. A chunk's `token_count` counts
word pieces (vector) or words (keyword, keyvalue).

Errors: an unknown bank or document is a 404 (memory_banks/get answers null, as the reference);
a malformed bank id or document id, bad params, a bank `url`, a graph bank or a chunk overlap not
below the chunk size is a 400; so is an insert or update with no documents, or a document with no
text (nothing to retrieve); an unknown embedding model is a 404 naming the available ones, as on
the embeddings routes; inserting a document id the bank has is a 409 (update replaces); a document
whose text passes `max_document_chars` is a 413. A request with several documents stores all of
them or none.

Document ids are keys of SQLite rows, never file names: '../x' and 'a/b' are ids like any other.

Storage (bank.py): one directory and SQLite database per bank under `storage_dir`. Bank ids are
uuid4s; any id that is not a safe file name is refused before it is used in a path.

Non-goals: no `ttl_seconds` (refused), no remote `url` banks, no graph banks.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Annotated

import anyio
import anyio.to_thread
import msgspec
from msgspec import Meta

from llama_core import embedding
from llama_core.config import FaissImplConfig
from llama_core.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError, UnsupportedError, shown
from llama_core.paths import config_dir
from llama_core.providers.memory.bank import BankStore, Prepared, sweep
from llama_core.providers.memory.chunking import chunk_texts, default_overlap, fts_match, word_count
from llama_core.providers.memory.documents import document_text
from llama_core.types import content_text
from llama_core.types._base import Base
from llama_core.types.memory import (
    CreateMemoryBankRequest,
    DeleteDocumentsRequest,
    DropMemoryBankRequest,
    GetDocumentsRequest,
    GetMemoryBankRequest,
    GraphMemoryBankConfig,
    InsertDocumentsRequest,
    KeywordMemoryBankConfig,
    ListMemoryBanksRequest,
    MemoryBank,
    MemoryBankDocument,
    QueryDocumentsRequest,
    QueryDocumentsResponse,
    UpdateDocumentsRequest,
    VectorMemoryBankConfig,
)
from llama_core.types.schema import convert

log = logging.getLogger(__name__)

# A bank id names a directory: a uuid4 from us, or anything as tame (no '/', '..', dots, spaces).
BANK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DOCUMENT_ID_MAX = 256  # characters; document ids are SQLite keys, never paths
# Control characters would make ids unprintable in logs and errors.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_CHUNKS_LIMIT = 1000
CHUNK_SIZE_LIMIT = 8192  # word pieces; the model reads at most its max_tokens (256 for MiniLM) of each


class QueryParams(Base):
    """`params` of /memory_bank/query."""

    max_chunks: Annotated[int, Meta(ge=1, le=MAX_CHUNKS_LIMIT)] = 3
    score_threshold: float | None = None


class _QueryParamsField(Base):
    params: QueryParams


_document_encoder = msgspec.json.Encoder()


def check_bank_id(bank_id: str) -> str:
    """`bank_id` if it is a safe directory name; InvalidRequestError (400, field bank_id) otherwise."""
    if not BANK_ID.fullmatch(bank_id):
        raise InvalidRequestError(
            f"Invalid bank_id '{shown(bank_id, 100)}': a bank id is letters, digits, '-' or '_' (at most 64), "
            "as memory_banks/create returns it.",
            field="bank_id",
        )
    return bank_id


def check_document_ids(document_ids: list[str], field: str) -> None:
    """Each id non-empty, at most DOCUMENT_ID_MAX characters, no control characters; else 400."""
    for i, d in enumerate(document_ids):
        if not d or len(d) > DOCUMENT_ID_MAX or _CONTROL.search(d):
            raise InvalidRequestError(
                f"Invalid document id '{shown(d, 100)}': 1 to {DOCUMENT_ID_MAX} characters, no control characters.",
                field=field.format(i=i),
            )


def _check_unique(documents: list[MemoryBankDocument]) -> None:
    seen: set[str] = set()
    for i, doc in enumerate(documents):
        if doc.document_id in seen:
            raise InvalidRequestError(
                f"Document id '{shown(doc.document_id, 100)}' appears twice in one request.",
                field=f"documents[{i}].document_id",
            )
        seen.add(doc.document_id)


def _check_bank_config(request: CreateMemoryBankRequest, provider_id: str = "meta-reference-faiss") -> None:
    """Refuse what the provider cannot hold (400), before anything is written."""
    config = request.config
    if request.url is not None:
        raise UnsupportedError(f"The {provider_id} provider keeps its own banks: `url` must be null.", field="url")
    if isinstance(config, GraphMemoryBankConfig):
        raise UnsupportedError("Graph memory banks are not supported; use a vector, keyword or keyvalue bank.", field="config.type")
    if isinstance(config, VectorMemoryBankConfig):
        size = config.chunk_size_in_tokens
        if not 1 <= size <= CHUNK_SIZE_LIMIT:
            raise InvalidRequestError(
                f"Invalid `config.chunk_size_in_tokens`: {size} is not between 1 and {CHUNK_SIZE_LIMIT}.",
                field="config.chunk_size_in_tokens",
            )
        overlap = config.overlap_size_in_tokens
        if overlap is not None and not 0 <= overlap < size:
            raise InvalidRequestError(
                f"Invalid `config.overlap_size_in_tokens`: {overlap} must be at least 0 and below the chunk size ({size}).",
                field="config.overlap_size_in_tokens",
            )
        embedding.model_dir(config.embedding_model)  # 404 naming the available models; no load


class FaissMemory:
    """The Memory API over banks on disk. Enter it (`async with`) before use; leaving writes the
    faiss index files and closes the databases.

    Where banks are kept is three methods (`_open_all`, `_create_store`, `_keyword_match`) and the
    store class: remote::pgvector (pgvector.py) keeps them in PostgreSQL behind the same API.
    """

    provider_id = "meta-reference-faiss"

    def __init__(self, config: FaissImplConfig) -> None:
        self.config = config
        self.root = Path(config.storage_dir).expanduser() if config.storage_dir else config_dir() / "runtime" / "memory"
        self._banks: dict[str, BankStore] = {}

    async def __aenter__(self) -> FaissMemory:
        await anyio.to_thread.run_sync(self._open_all)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        banks, self._banks = list(self._banks.values()), {}
        with anyio.CancelScope(shield=True):
            for bank in banks:
                try:
                    await anyio.to_thread.run_sync(bank.close)
                except Exception:  # the database holds the truth; the index file is only a cache
                    log.exception("memory bank %s: writing its index file failed", bank.bank_id)

    def _open_all(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        sweep(self.root)
        found: list[BankStore] = []
        for directory in sorted(self.root.iterdir()):
            if not (directory.is_dir() and BANK_ID.fullmatch(directory.name)):
                continue
            try:
                store = BankStore.open(directory)
            except (sqlite3.Error, msgspec.DecodeError, TypeError) as e:
                log.warning("memory bank directory %s cannot be opened and is skipped: %s", directory, e)
                continue
            found.append(store)
        self._banks = {store.bank_id: store for store in sorted(found, key=lambda s: (s.created_ns, s.bank_id))}

    def _bank(self, bank_id: str) -> BankStore:
        store = self._banks.get(check_bank_id(bank_id))
        if store is None:
            raise NotFoundError(f"Unknown memory bank '{bank_id}'.")
        return store

    # -- banks -----------------------------------------------------------------------------------

    def _create_store(self, bank: MemoryBank) -> BankStore:
        return BankStore.create(self.root, bank)

    def _keyword_match(self, text: str) -> str | None:
        """What a keyword bank's store searches for `text` (an FTS5 expression; None: nothing)."""
        return fts_match(text)

    async def create_memory_bank(self, request: CreateMemoryBankRequest) -> MemoryBank:
        _check_bank_config(request, self.provider_id)
        bank = MemoryBank(bank_id=str(uuid.uuid4()), name=request.name, config=request.config, url=None)
        store = await anyio.to_thread.run_sync(self._create_store, bank)
        self._banks[bank.bank_id] = store
        return bank

    async def list_memory_banks(self, request: ListMemoryBanksRequest) -> list[MemoryBank]:
        return [store.bank for store in self._banks.values()]

    async def get_memory_bank(self, request: GetMemoryBankRequest) -> MemoryBank | None:
        store = self._banks.get(check_bank_id(request.bank_id))
        return store.bank if store is not None else None

    async def drop_memory_bank(self, request: DropMemoryBankRequest) -> str:
        store = self._bank(request.bank_id)
        del self._banks[store.bank_id]
        await anyio.to_thread.run_sync(store.drop)
        return store.bank_id

    # -- documents -------------------------------------------------------------------------------

    async def insert_documents(self, request: InsertDocumentsRequest) -> None:
        if request.ttl_seconds is not None:
            raise UnsupportedError("ttl_seconds is not supported: documents stay until deleted.", field="ttl_seconds")
        await self._put(request.bank_id, request.documents, replace=False)

    async def update_documents(self, request: UpdateDocumentsRequest) -> None:
        await self._put(request.bank_id, request.documents, replace=True)

    async def _put(self, bank_id: str, documents: list[MemoryBankDocument], replace: bool) -> None:
        store = self._bank(bank_id)
        if not documents:
            raise InvalidRequestError("`documents` is empty: send at least one document.", field="documents")
        check_document_ids([d.document_id for d in documents], "documents[{i}].document_id")
        _check_unique(documents)
        texts = [await self._text(i, doc) for i, doc in enumerate(documents)]
        prepared = await self._prepare(store.bank, documents, texts)
        await anyio.to_thread.run_sync(store.put, prepared, replace)

    async def _text(self, i: int, doc: MemoryBankDocument) -> str:
        text = await document_text(doc)
        if not text.strip():  # nothing to retrieve: a vector bank would store no chunk, a key its empty value
            raise InvalidRequestError(
                f"Document '{shown(doc.document_id, 100)}' has no text.", field=f"documents[{i}].content"
            )
        limit = self.config.max_document_chars
        if len(text) > limit:
            raise PayloadTooLargeError(
                f"Document '{shown(doc.document_id, 100)}' has {len(text)} characters of text; a document holds at most {limit}."
            )
        return text

    async def _prepare(self, bank: MemoryBank, documents: list[MemoryBankDocument], texts: list[str]) -> list[Prepared]:
        """Each document's JSON and chunks, and (vector banks) the chunks' vectors in one encode call."""
        config = bank.config
        bodies = [_document_encoder.encode(doc) for doc in documents]
        if not isinstance(config, VectorMemoryBankConfig):
            # keyword and keyvalue: one chunk, the whole text (never empty: refused before)
            chunks = [[(t, word_count(t))] for t in texts]
            return [Prepared(d.document_id, b, c, None) for d, b, c in zip(documents, bodies, chunks, strict=True)]
        emb = await embedding.embedder(config.embedding_model)
        size = config.chunk_size_in_tokens
        overlap = config.overlap_size_in_tokens if config.overlap_size_in_tokens is not None else default_overlap(size)

        def cut() -> list[list[tuple[str, int]]]:
            return [chunk_texts(t, emb.spans(t), size, overlap) for t in texts]

        chunks = await anyio.to_thread.run_sync(cut)
        flat = [text for doc_chunks in chunks for text, _ in doc_chunks]
        vectors = await emb.encode(flat)
        prepared, at = [], 0
        for doc, body, doc_chunks in zip(documents, bodies, chunks, strict=True):
            prepared.append(Prepared(doc.document_id, body, doc_chunks, vectors[at : at + len(doc_chunks)]))
            at += len(doc_chunks)
        return prepared

    async def get_documents(self, request: GetDocumentsRequest) -> list[MemoryBankDocument]:
        store = self._bank(request.bank_id)
        check_document_ids(request.document_ids, "document_ids[{i}]")
        return await anyio.to_thread.run_sync(store.get, request.document_ids)

    async def delete_documents(self, request: DeleteDocumentsRequest) -> None:
        store = self._bank(request.bank_id)
        check_document_ids(request.document_ids, "document_ids[{i}]")
        await anyio.to_thread.run_sync(store.delete, request.document_ids)

    # -- queries ---------------------------------------------------------------------------------

    async def query_documents(self, request: QueryDocumentsRequest) -> QueryDocumentsResponse:
        store = self._bank(request.bank_id)
        params = convert({"params": request.params or {}}, _QueryParamsField).params
        text = content_text(request.query)
        if not text.strip():  # a vector bank would answer arbitrary chunks with scores
            raise InvalidRequestError("The query has no text to search for.", field="query")
        config = store.bank.config
        if isinstance(config, VectorMemoryBankConfig):
            emb = await embedding.embedder(config.embedding_model)

            def search() -> QueryDocumentsResponse:  # encode and search in one trip to a worker thread
                query = emb.encode_sync([text])[0]
                return store.query_vector(query, params.max_chunks, params.score_threshold, getattr(self.config, "hnsw_min_chunks", None))

            return await anyio.to_thread.run_sync(search)
        if isinstance(config, KeywordMemoryBankConfig):
            match = self._keyword_match(text)
            return await anyio.to_thread.run_sync(store.query_keyword, match, params.max_chunks, params.score_threshold)
        return await anyio.to_thread.run_sync(store.query_key, text)
