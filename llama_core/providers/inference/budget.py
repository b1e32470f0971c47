"""What a request's `max_tokens` means beside its prompt: a cap, or room the context must have.

Native routes take it as a cap, as the original server did: generation ends where the context ends,
whatever max_tokens says. OpenAI's routes take it as OpenAI and vLLM do: a prompt that leaves less
room than max_tokens is refused (400) before anything is generated. The OpenAI front end asks for
that around its call, and meta-reference checks once it has counted the prompt's tokens:

    with strict_max_tokens():
        response = await inference.chat_completion(request)   # InvalidRequestError if it cannot fit

A context variable rather than a request field: the native wire (and the original's clients) has
no such field, and the OpenAI wire has no other meaning for max_tokens. Remote vendors that speak
OpenAI's API refuse such requests themselves.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from llama_core.errors import InvalidRequestError

_strict: contextvars.ContextVar[bool] = contextvars.ContextVar("llama_strict_max_tokens", default=False)


@contextlib.contextmanager
def strict_max_tokens() -> Iterator[None]:
    """Within this block, `check_room` refuses a max_tokens the context cannot hold beside its prompt."""
    token = _strict.set(True)
    try:
        yield
    finally:
        _strict.reset(token)


def check_room(prompt_tokens: int, max_tokens: int, context: int, prompt_name: str = "messages") -> None:
    """InvalidRequestError (field `max_tokens`) if strict and `prompt_tokens + max_tokens` exceeds
    `context` (max_tokens 0: no budget asked, nothing to check). `prompt_name` is how the message
    calls the prompt: "messages" for a chat, "prompt" for a raw completion."""
    if not _strict.get() or not max_tokens or prompt_tokens + max_tokens <= context:
        return
    raise InvalidRequestError(
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {prompt_name}, {max_tokens} in the "
        f"completion). Please reduce the length of the {prompt_name} or completion.",
        field="max_tokens",
    )
