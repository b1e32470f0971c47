"""Talk to a local model without a server (`llama model run`): stream one reply, with timings.

The CLI prints; this module owns the loop over the provider's tokens and the numbers that
`--verbose` reports, in Ollama's terms (prompt eval = prefill, eval = decode).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence

import msgspec

from llama_core.errors import InvalidRequestError

from llama_core.providers.inference.meta_reference import MetaReferenceInference
from llama_core.types import Message, SamplingParams, SamplingStrategy, StopReason
from llama_core.types.inference import ChatCompletionRequest


@dataclasses.dataclass
class ReplyStats:
    """Timings of one reply. The first token's time counts as prompt eval (prefill + one sample)."""

    prompt_tokens: int = 0
    prompt_eval_s: float = 0.0
    eval_tokens: int = 0  # tokens after the first
    eval_s: float = 0.0
    stop_reason: StopReason = StopReason.out_of_tokens

    @property
    def prompt_eval_rate(self) -> float:
        return self.prompt_tokens / self.prompt_eval_s if self.prompt_eval_s > 0 else 0.0

    @property
    def eval_rate(self) -> float:
        return self.eval_tokens / self.eval_s if self.eval_s > 0 else 0.0


async def stream_reply(
    inference: MetaReferenceInference,
    messages: Sequence[Message],
    sampling: SamplingParams,
    stats: ReplyStats | None = None,
) -> AsyncIterator[str]:
    """The assistant's reply to `messages`, as text pieces while it is generated; fills `stats`."""
    stats = stats if stats is not None else ReplyStats()
    request = ChatCompletionRequest(model=inference.model.descriptor, messages=list(messages), sampling_params=sampling)
    prompt = inference.chat_prompt(request)
    stats.prompt_tokens = len(prompt)
    start = time.perf_counter()
    first: float | None = None
    async with contextlib.aclosing(inference.token_stream(prompt, inference.gen_params(sampling))) as tokens:
        async for out, text in tokens:
            now = time.perf_counter()
            if first is None:
                first, stats.prompt_eval_s = now, now - start
            else:
                stats.eval_tokens += 1
                stats.eval_s = now - first
            if out.stop_reason is not None:
                stats.stop_reason = StopReason(out.stop_reason)
            if text:
                yield text


def sampling_for(
    temperature: float | None, top_p: float | None, max_tokens: int, recommended: SamplingParams | None
) -> SamplingParams:
    """The sampling of a chat: the model's `recommended` one (its card's temperature and top_p) where
    `temperature` and `top_p` are None, else nucleus sampling (greedy at temperature 0).

    Raises InvalidRequestError naming the option out of range.
    """
    base = recommended if recommended is not None else SamplingParams()
    if temperature is None and top_p is None:
        return _checked(msgspec.structs.replace(base, max_tokens=max_tokens), _FLAGS)
    t = temperature if temperature is not None else (base.temperature if base.temperature > 0 else 1.0)
    p = top_p if top_p is not None else 0.9
    return _checked(msgspec.structs.replace(base, strategy=_strategy(t), temperature=t, top_p=p, max_tokens=max_tokens), _FLAGS)


_FLAGS = {"temperature": "--temperature", "top_p": "--top-p", "max_tokens": "--max-tokens"}


# `/set parameter NAME VALUE` in the chat: Ollama's parameter names, and ours, for SamplingParams' fields.
CHAT_PARAMETERS: dict[str, str] = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "num_predict": "max_tokens",
    "max_tokens": "max_tokens",
    "repeat_penalty": "repetition_penalty",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
}


def with_parameter(sampling: SamplingParams, name: str, value: str) -> SamplingParams:
    """`sampling` with the chat parameter `name` (a key of CHAT_PARAMETERS) set from its typed `value`;
    a temperature of 0 is greedy, above 0 nucleus sampling.

    Raises InvalidRequestError for an unknown name or a value of the wrong type or out of range.
    """
    field = CHAT_PARAMETERS.get(name)
    if field is None:
        raise InvalidRequestError(f"Unknown parameter {name!r}; one of: {', '.join(CHAT_PARAMETERS)}.")
    try:
        typed = msgspec.json.decode(value)
    except msgspec.DecodeError:
        raise InvalidRequestError(f"{name} must be a number, got {value!r}.") from None
    changed = {**msgspec.structs.asdict(sampling), field: typed}
    if field == "temperature" and isinstance(typed, int | float):
        changed["strategy"] = _strategy(typed)
    return _checked(changed, {field: name})


def _strategy(temperature: float) -> SamplingStrategy:
    return SamplingStrategy.greedy if temperature == 0 else SamplingStrategy.top_p


def _checked(raw: SamplingParams | dict, names: dict[str, str]) -> SamplingParams:
    # SamplingParams() does not check its ranges; a conversion does: "Invalid NAME: expected ..., got V",
    # NAME as the user typed it (`names`: field -> (name, value)).
    if isinstance(raw, SamplingParams):
        raw = msgspec.structs.asdict(raw)
    try:
        return msgspec.convert(raw, SamplingParams)
    except msgspec.ValidationError as e:
        expected, _, where = str(e).partition(" - at ")
        field = where.strip("`").removeprefix("$.")
        name = names.get(field, field)
        got = "" if ", got " in expected else f", got {raw.get(field)!r}"
        raise InvalidRequestError(f"Invalid {name}: {expected[:1].lower()}{expected[1:]}{got}.") from None
