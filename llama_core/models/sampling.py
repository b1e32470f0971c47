"""Recommended sampling parameters: a few named sets that registry rows point at."""

from __future__ import annotations

from typing import Any

import msgspec

from llama_core.types.common import SamplingParams, SamplingStrategy

# Name -> the parameters a model card recommends. `None` means "no recommendation" (the
# reference leaves base Llama 3 and the Llama Guard 3 8B classifiers without one).
SAMPLING_SETS: dict[str, SamplingParams | None] = {
    # Meta's `recommended_sampling_params()`: nucleus sampling, temperature 1.0, top_p 0.9.
    "meta": SamplingParams(strategy=SamplingStrategy.top_p, temperature=1.0, top_p=0.9),
    # SmolLM2's model card: temperature 0.2, top_p 0.9.
    "smollm2": SamplingParams(strategy=SamplingStrategy.top_p, temperature=0.2, top_p=0.9),
    "none": None,
}

# The fields `llama model describe` prints, in its order (max_tokens, repetition_penalty and seed
# are request-level knobs, not model recommendations).
DESCRIBED_FIELDS = ("strategy", "temperature", "top_p", "top_k")


def sampling_set(name: str) -> SamplingParams | None:
    """The named recommendation; a fresh copy, so callers may not mutate the table."""
    params = SAMPLING_SETS[name]
    return None if params is None else msgspec.structs.replace(params)


def describe_sampling(params: SamplingParams | None) -> dict[str, Any] | None:
    """The recommendation as `llama model describe` shows it: strategy, temperature, top_p, top_k."""
    if params is None:
        return None
    return {f: str(v) if f == "strategy" else v for f in DESCRIBED_FIELDS for v in [getattr(params, f)]}
