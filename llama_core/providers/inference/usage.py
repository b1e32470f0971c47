"""Token counts of a response, as `metrics` (llama-stack's wire) and as OpenAI's `usage`.

    token_metrics(12, 5)   -> [prompt_tokens 12, completion_tokens 5, total_tokens 17] (MetricInResponse)
    usage(metrics)         -> {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}, or None

meta-reference counts what its engine read and wrote: the rendered prompt's tokens (special tokens
included) and every generated token (a stop token included, as vLLM counts it). Remote vendors
report their own counts, passed on as they are.
"""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from llama_core.types.inference import MetricInResponse, Metrics

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def token_metrics(prompt_tokens: int, completion_tokens: int) -> list[MetricInResponse]:
    """`prompt_tokens`, `completion_tokens` and their sum `total_tokens`, in that order."""
    values = (prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
    return [MetricInResponse(metric=name, value=value) for name, value in zip(USAGE_FIELDS, values, strict=True)]


def vendor_metrics(prompt_tokens: Any, completion_tokens: Any) -> Metrics:
    """The metrics of a vendor's counts; UNSET unless both are whole numbers (a vendor that did not count)."""
    counts = (prompt_tokens, completion_tokens)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        return UNSET
    return token_metrics(prompt_tokens, completion_tokens)


def usage(metrics: Metrics) -> dict[str, int] | None:
    """OpenAI's `usage` object from a response's metrics; None when they do not hold the three counts."""
    if metrics is UNSET:
        return None
    counts = {m.metric: m.value for m in metrics if m.metric in USAGE_FIELDS}
    if len(counts) != len(USAGE_FIELDS):
        return None
    return {name: int(counts[name]) for name in USAGE_FIELDS}
