"""Memory wire types: banks (configs tagged on `type`), documents, chunks, and one request per route."""

from __future__ import annotations

import enum
from typing import Any, TypeAlias

from llama_core.types._base import Base
from llama_core.types.common import URL, Content


class MemoryBankType(enum.StrEnum):
    vector = "vector"
    keyvalue = "keyvalue"
    keyword = "keyword"
    graph = "graph"


class MemoryBankDocument(Base):
    """A document to index: inline content, or a URL the provider fetches."""

    document_id: str
    content: Content | URL
    mime_type: str | None = None
    metadata: dict[str, Any] = {}


class VectorMemoryBankConfig(Base, tag_field="type", tag="vector"):
    """Chunks of `chunk_size_in_tokens`, overlapping by `overlap_size_in_tokens` (default: a quarter)."""

    embedding_model: str
    chunk_size_in_tokens: int
    overlap_size_in_tokens: int | None = None


class KeyValueMemoryBankConfig(Base, tag_field="type", tag="keyvalue"):
    pass


class KeywordMemoryBankConfig(Base, tag_field="type", tag="keyword"):
    pass


class GraphMemoryBankConfig(Base, tag_field="type", tag="graph"):
    pass


MemoryBankConfig: TypeAlias = (
    VectorMemoryBankConfig | KeyValueMemoryBankConfig | KeywordMemoryBankConfig | GraphMemoryBankConfig
)


class MemoryBank(Base):
    """A bank; `url` points at a pre-existing store that already answers queries."""

    bank_id: str
    name: str
    config: MemoryBankConfig
    url: URL | None = None


class Chunk(Base):
    """A window of a document's tokens, as indexed and returned by a query."""

    content: Content
    token_count: int
    document_id: str


class QueryDocumentsResponse(Base):
    """Best chunks first; `scores[i]` belongs to `chunks[i]`."""

    chunks: list[Chunk]
    scores: list[float]


# --- one request per route --------------------------------------------------------------------


class CreateMemoryBankRequest(Base):
    """POST /memory_banks/create."""

    name: str
    config: MemoryBankConfig
    url: URL | None = None


class ListMemoryBanksRequest(Base):
    """GET /memory_banks/list (no parameters)."""


class GetMemoryBankRequest(Base):
    """GET /memory_banks/get."""

    bank_id: str


class DropMemoryBankRequest(Base):
    """DELETE /memory_banks/drop."""

    bank_id: str


class InsertDocumentsRequest(Base):
    """POST /memory_bank/insert; returns once the documents are indexed."""

    bank_id: str
    documents: list[MemoryBankDocument]
    ttl_seconds: int | None = None


class UpdateDocumentsRequest(Base):
    """POST /memory_bank/update: replace documents with the same `document_id`."""

    bank_id: str
    documents: list[MemoryBankDocument]


class QueryDocumentsRequest(Base):
    """POST /memory_bank/query; `params` holds e.g. `{"max_chunks": 3}`."""

    bank_id: str
    query: Content
    params: dict[str, Any] | None = None


class GetDocumentsRequest(Base):
    """GET /memory_bank/documents/get."""

    bank_id: str
    document_ids: list[str]


class DeleteDocumentsRequest(Base):
    """DELETE /memory_bank/documents/delete."""

    bank_id: str
    document_ids: list[str]
