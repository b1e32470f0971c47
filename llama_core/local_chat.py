"""Talk to a local model without a server (`llama model run`): stream one reply, with timings.

The CLI prints; this module owns the loop over the provider's tokens and the numbers that
`--verbose` reports, in Ollama's terms (prompt eval = prefill, eval = decode).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence

from llama_core.providers.inference.local_model import LocalModel
from llama_core.types import Message, SamplingParams, StopReason
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
    inference: LocalModel,
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
