"""A memory document's text. Minimal on this branch: inline text only (plain or interleaved).

The memory-io branch replaces this module with the full one (data: and http(s) URLs, PDF, mime_type);
the provider only calls `document_text`.
"""

from __future__ import annotations

from llama_core.errors import UnsupportedError
from llama_core.types.common import URL, content_text
from llama_core.types.memory import MemoryBankDocument


async def document_text(doc: MemoryBankDocument) -> str:
    """The text to index for `doc`. Raises UnsupportedError (400) for URL content."""
    if isinstance(doc.content, URL):
        raise UnsupportedError(
            f"Document '{doc.document_id}': URL content is not supported in this build; send the text itself.",
            field="content",
        )
    return content_text(doc.content)
