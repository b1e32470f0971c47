"""The sampling a chat uses: the model's recommendation unless the user asks for another, by a flag
(`llama model run --temperature`, the inference client's) or in the chat (`/set parameter NAME VALUE`).

Every value is checked as the wire checks it (SamplingParams' ranges), with the name the user typed.
"""

from __future__ import annotations

import msgspec

from llama_core.errors import InvalidRequestError
from llama_core.types import SamplingParams, SamplingStrategy


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
