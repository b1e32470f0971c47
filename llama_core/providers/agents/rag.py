"""Retrieval before inference, through the Memory API (`stack.memory`).

    bank = await session_bank(stack, session)                     # created on a session's first attachment
    await insert_attachments(stack, bank, turn_id, attachments)
    context = await retrieve(stack, tool, bank_ids, query)        # None when nothing was found

A turn's query is its messages' text joined by the memory tool's `sep`. Every bank is asked for
PER_BANK_CHUNKS; the chunks from all banks are ranked by score, and kept best first while they fit
`max_chunks` and `max_tokens_in_context`. The context is set on the turn's last user message:

    Here are the retrieved documents for relevant context:
    === START-RETRIEVED-CONTEXT ===

    id:<document id>; content:<chunk>
    ...
    === END-RETRIEVED-CONTEXT ===

A key-value bank is looked up by each of its configured `keys` instead of the query text.
"""

from __future__ import annotations

from typing import Any

from llama_core.types.agents import (
    AgenticSystemKeyValueMemoryBankConfig,
    AgenticSystemMemoryBankConfig,
    Attachment,
    MemoryToolDefinition,
)
from llama_core.types.common import content_text
from llama_core.types.memory import (
    Chunk,
    CreateMemoryBankRequest,
    InsertDocumentsRequest,
    MemoryBank,
    MemoryBankDocument,
    QueryDocumentsRequest,
    VectorMemoryBankConfig,
)

PER_BANK_CHUNKS = 5
SESSION_BANK_CONFIG = VectorMemoryBankConfig(embedding_model="all-MiniLM-L6-v2", chunk_size_in_tokens=512)
HEADER = "Here are the retrieved documents for relevant context:\n=== START-RETRIEVED-CONTEXT ===\n"
FOOTER = "\n=== END-RETRIEVED-CONTEXT ===\n"


async def create_session_bank(stack: Any, session_id: str) -> MemoryBank:
    """A new vector bank for one session's attachments."""
    request = CreateMemoryBankRequest(name=f"session-{session_id}", config=SESSION_BANK_CONFIG)
    return await stack.api("memory").create_memory_bank(request)


async def insert_attachments(stack: Any, bank: MemoryBank, turn_id: str, attachments: list[Attachment]) -> None:
    documents = [
        MemoryBankDocument(document_id=f"{turn_id}-{i}", content=a.content, mime_type=a.mime_type)
        for i, a in enumerate(attachments)
    ]
    await stack.api("memory").insert_documents(InsertDocumentsRequest(bank_id=bank.bank_id, documents=documents))


async def _query(stack: Any, ref: AgenticSystemMemoryBankConfig | str, query: str) -> list[tuple[float, Chunk]]:
    memory = stack.api("memory")
    if isinstance(ref, AgenticSystemKeyValueMemoryBankConfig):
        bank_id, queries = ref.bank_id, ref.keys
    else:
        bank_id, queries = (ref, [query]) if isinstance(ref, str) else (ref.bank_id, [query])
    found = []
    for q in queries:
        params = {"max_chunks": PER_BANK_CHUNKS}
        result = await memory.query_documents(QueryDocumentsRequest(bank_id=bank_id, query=q, params=params))
        found += list(zip(result.scores, result.chunks, strict=True))
    return found


async def retrieve(
    stack: Any, tool: MemoryToolDefinition, banks: list[AgenticSystemMemoryBankConfig | str], query: str
) -> str | None:
    """The context text of the best chunks of `banks` for `query`, within the tool's budgets; None if none."""
    found: list[tuple[float, Chunk]] = []
    for ref in banks:
        found += await _query(stack, ref, query)
    found.sort(key=lambda pair: pair[0], reverse=True)
    picked, tokens = [], 0
    for _, chunk in found:
        if len(picked) == tool.max_chunks or tokens + chunk.token_count > tool.max_tokens_in_context:
            break
        picked.append(chunk)
        tokens += chunk.token_count
    if not picked:
        return None
    body = "\n".join(f"id:{c.document_id}; content:{content_text(c.content)}" for c in picked)
    return HEADER + body + FOOTER


def bank_ids(banks: list[AgenticSystemMemoryBankConfig | str]) -> list[str]:
    return list(dict.fromkeys(b if isinstance(b, str) else b.bank_id for b in banks))
