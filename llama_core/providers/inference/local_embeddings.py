"""Embeddings from this machine's embedding models (llama_core.embedding), for every inference provider.

/inference/embeddings answers with the local model in every distribution: meta-reference serves a
generative Llama, so it answers embeddings only this way; the vendor providers (Ollama, Fireworks,
Together) answer a local model's name here and forward any other name to the vendor, whose own
embedding models stay reachable; the remote provider forwards, and the stack there does the same.

    if is_embedding_model(request.model):
        return await local_embeddings(request)

Each item of `contents` is one text (its parts joined), embedded in one batch; usage counts the word
pieces the model read.
"""

from __future__ import annotations

import anyio.to_thread

from llama_core.embedding import available_models, embedder, is_embedding_model, unknown_model_message
from llama_core.errors import LlamaError, ModelNotFoundError, NotFoundError, UnsupportedError
from llama_core.models.registry import resolve_model
from llama_core.types import content_text
from llama_core.types.inference import EmbeddingsRequest, EmbeddingsResponse, EmbeddingsUsage

__all__ = ["is_embedding_model", "local_embeddings", "not_an_embedding_model"]


async def local_embeddings(request: EmbeddingsRequest) -> EmbeddingsResponse:
    """One unit float32 vector per item of `request.contents`, from the local model `request.model`,
    with usage. Raises what `embedder` raises (404 for an unknown name, 501 without the wheel)."""
    model = await embedder(request.model)
    texts = [content_text(c) for c in request.contents]
    vectors = await model.encode(texts)
    tokens = await anyio.to_thread.run_sync(model.count_tokens, texts) if texts else 0
    return EmbeddingsResponse(
        embeddings=vectors.tolist(), usage=EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens)
    )


def not_an_embedding_model(name: str) -> LlamaError:
    """The error for embeddings asked of `name`, which no local embedding model answers to: a
    generative model of the registry computes none (400); any other name is unknown (404, as on the
    other inference routes), and the message names the embedding models there are."""
    try:
        model = resolve_model(name)
    except ModelNotFoundError:
        return NotFoundError(unknown_model_message(name))
    names = ", ".join(available_models()) or "none"
    return UnsupportedError(
        f"{model.descriptor} is a generative model: it computes no embeddings. Embedding models here: {names}.",
        field="model",
    )
