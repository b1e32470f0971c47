"""`generate`: one sequence alone through a Batch, token by token, as the tests compare engines.

The library serves sequences through generation.Batch only (the worker loop drives it); this is
the same Batch with one slot in use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from llama_core.engine.generation import Batch, TokenResult
from llama_core.engine.messages import GenParams
from llama_core.engine.model import Transformer


def generate(model: Transformer, prompt_tokens: Sequence[int], params: GenParams) -> Iterator[TokenResult]:
    """Tokens of one sequence as they are made (slot 0 of the model's cache); the last has stop_reason."""
    batch = Batch(model)
    result = batch.add("solo", prompt_tokens, params)
    yield result
    while not result.finished:
        (result,) = batch.step()
        yield result
