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


URL_PATTERN = r"^(https?://|file://|data:)"


class URL(Base):
    """A link to content: http(s), file or data URIs."""

    uri: Annotated[str, Meta(pattern=URL_PATTERN)]


class StopReason(enum.StrEnum):
    """Why generation stopped: `<|eot_id|>` (or a stop sequence), `<|eom_id|>`, or the token budget."""

    end_of_turn = "end_of_turn"
    end_of_message = "end_of_message"
    out_of_tokens = "out_of_tokens"


class SamplingStrategy(enum.StrEnum):
    greedy = "greedy"
    top_p = "top_p"
    top_k = "top_k"


# --- sampling limits ------------------------------------------------------------------------------
# One table of what every route accepts. msgspec checks these when a request is decoded, so native
# HTTP, JSON-RPC and MCP (SamplingParams) and the OpenAI routes (llama_rpc/openai_types.py, same
# aliases) refuse the same values with a 400 / -32602 naming the field, and JSON Schema shows them.

SEED_RANGE = (-(2**63), 2**63 - 1)  # int64, as OpenAI and vLLM document it; torch's generators take it
TEMPERATURE_MAX = 2.0  # OpenAI's range is [0, 2]; above it sampling is noise
REPETITION_PENALTY_MAX = 2.0  # vLLM's range is (0, 2]; 1.0 is off
TOKENS_MAX = 2**31 - 1  # max_tokens and top_k: counts, far beyond any context
STOP_MAX_COUNT = 4  # stop sequences per request: OpenAI's and TGI's cap, which Fireworks and Together take
STOP_MAX_CHARS = 256  # per stop sequence: a stream holds back at most this many characters minus one
TOP_LOGPROBS_MAX = 20  # likeliest tokens' log-probabilities per step: OpenAI's cap (and vLLM's default)

Seed: TypeAlias = Annotated[int, Meta(ge=SEED_RANGE[0], le=SEED_RANGE[1])]
Temperature: TypeAlias = Annotated[float, Meta(ge=0.0, le=TEMPERATURE_MAX)]
TopP: TypeAlias = Annotated[float, Meta(gt=0.0, le=1.0)]
TopK: TypeAlias = Annotated[int, Meta(ge=0, le=TOKENS_MAX)]
RepetitionPenalty: TypeAlias = Annotated[float, Meta(gt=0.0, le=REPETITION_PENALTY_MAX)]
StopSequence: TypeAlias = Annotated[str, Meta(min_length=1, max_length=STOP_MAX_CHARS)]
StopSequences: TypeAlias = Annotated[list[StopSequence], Meta(max_length=STOP_MAX_COUNT)]


class SamplingParams(Base):
    """How to pick each token, and when to stop.

    `max_tokens=0` means "up to the context length" (the original wire's default; the OpenAI routes,
    where 0 means nothing, refuse it). Generation ends at the first of `stop` to appear in the text,
    which is cut before it; the stop reason is then `end_of_turn`.
    """

    strategy: SamplingStrategy = SamplingStrategy.greedy
    temperature: Temperature = 0.0
    top_p: TopP = 0.95
    top_k: TopK = 0
    max_tokens: Annotated[int, Meta(ge=0, le=TOKENS_MAX)] = 0
    repetition_penalty: RepetitionPenalty = 1.0
    seed: Seed | None = None
    stop: StopSequences = []


class LogProbConfig(Base):
    """Ask for each generated token's log-probability, and the `top_k` most likely tokens' at each step."""

    top_k: Annotated[int, Meta(ge=0, le=TOP_LOGPROBS_MAX)] = 0


class TopLogProb(Base):
    """One likely token at a step: its text, log-probability and UTF-8 bytes (a token may hold part
    of a character, whose text then shows U+FFFD while `bytes` keeps it exactly)."""

    token: str
    logprob: float
    bytes: list[int]


class TokenLogProbs(Base, omit_defaults=True):
    """Log-probabilities at one generated step.

    `logprobs_by_token` is the original wire's: the generated token and the `top_k` most likely,
    keyed by text (tokens that read alike share a key). The engine also says which token it was
    (`token`, `logprob`, `bytes`) and the `top_k` most likely in order (`top_logprobs`), each apart,
    as OpenAI's logprobs need them. Log-probabilities are the model's raw distribution (before
    temperature, top-p and penalties).
    """

    logprobs_by_token: dict[str, float]
    token: str | None = None
    logprob: float | None = None
    bytes: list[int] | None = None
    top_logprobs: list[TopLogProb] | None = None

