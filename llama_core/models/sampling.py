"""Recommended sampling parameters: a few named sets that registry rows point at.

Kept as plain values so that reading the registry (`llama model list`) does not build the wire
types; `as_sampling_params` turns one into a `SamplingParams` when a request needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_core.types.common import SamplingParams

# Name -> what a model card recommends, as the fields `llama model describe` prints (strategy,
# temperature, top_p, top_k; max_tokens and repetition_penalty are per request). `None` means no
# recommendation: the reference leaves base Llama 3 8B and the Llama Guard 8B classifiers without.
SAMPLING_SETS: dict[str, Mapping[str, Any] | None] = {
    # Meta's `recommended_sampling_params()`: nucleus sampling, temperature 1.0, top_p 0.9.
    "meta": MappingProxyType({"strategy": "top_p", "temperature": 1.0, "top_p": 0.9, "top_k": 0}),
    # SmolLM2's model card: temperature 0.2, top_p 0.9.
    "smollm2": MappingProxyType({"strategy": "top_p", "temperature": 0.2, "top_p": 0.9, "top_k": 0}),
    "none": None,
}


def as_sampling_params(recommended: Mapping[str, Any] | None) -> SamplingParams | None:
    """A registry recommendation as request `SamplingParams` (other fields at their defaults)."""
    if recommended is None:
        return None
    from llama_core.types.common import SamplingParams, SamplingStrategy

    return SamplingParams(**{**recommended, "strategy": SamplingStrategy(recommended["strategy"])})
