"""Types shared by every API: content, sampling parameters, stop reasons, log-probabilities."""

from __future__ import annotations

import enum
from typing import Annotated, TypeAlias

from msgspec import Meta

from llama_core.types._base import Base


class TextContentItem(Base, tag_field="type", tag="text"):
    """One text part of a message's content: `{"type": "text", "text": ...}`."""

    text: str


# A message's content: a plain string, or a list of typed parts.
Content: TypeAlias = str | list[TextContentItem]


def content_text(content: Content) -> str:
    """The text of `content`, parts joined without separators (as the reference flattens them)."""
    if isinstance(content, str):
        return content
    return "".join(item.text for item in content)


class URL(Base):
    """A link to content: http(s), file or data URIs."""

    uri: Annotated[str, Meta(pattern=r"^(https?://|file://|data:)")]


class StopReason(enum.StrEnum):
    """Why generation stopped: `<|eot_id|>`, `<|eom_id|>`, or the token budget."""

    end_of_turn = "end_of_turn"
    end_of_message = "end_of_message"
    out_of_tokens = "out_of_tokens"


class SamplingStrategy(enum.StrEnum):
    greedy = "greedy"
    top_p = "top_p"
    top_k = "top_k"


class SamplingParams(Base):
    """How to pick each token. `max_tokens=0` means "up to the context length"."""

    strategy: SamplingStrategy = SamplingStrategy.greedy
    temperature: Annotated[float, Meta(ge=0.0)] = 0.0
    top_p: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.95
    top_k: Annotated[int, Meta(ge=0)] = 0
    max_tokens: Annotated[int, Meta(ge=0)] = 0
    repetition_penalty: Annotated[float, Meta(gt=0.0)] = 1.0
    seed: int | None = None


class LogProbConfig(Base):
    """Ask for the `top_k` most likely tokens' log-probabilities at each step."""

    top_k: Annotated[int, Meta(ge=0, le=20)] = 0


class TokenLogProbs(Base):
    """Log-probabilities of the most likely tokens at one step, keyed by token text."""

    logprobs_by_token: dict[str, float]

