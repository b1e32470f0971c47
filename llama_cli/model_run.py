"""`llama model run`: chat with a local model without a server, like `ollama run`.

One prompt (argument or piped stdin) prints only the answer on stdout; no prompt on a terminal
starts an interactive chat. `--verbose` adds timings on stderr.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

from cyclopts import Parameter

from llama_cli.model import ModelId


def run(
    prompt: Annotated[str | None, Parameter(help="What to ask. Omit for an interactive chat.")] = None,
    *,
    model_id: ModelId,
    temperature: Annotated[float, Parameter(help="0 is greedy.")] = 0.0,
    top_p: Annotated[float, Parameter(help="Nucleus sampling mass when temperature > 0.")] = 0.9,
    max_tokens: Annotated[int, Parameter(help="Most tokens per reply.")] = 512,
    max_seq_len: Annotated[int, Parameter(help="Context size to allocate.")] = 4096,
    dtype: Annotated[
        Literal["fp32", "bf16", "int8"] | None,
        Parameter(help="Weights: fp32, bf16, or int8 (weight-only, per-row scales). Default: bf16 on CUDA, else fp32."),
    ] = None,
    verbose: Annotated[bool, Parameter(negative=(), help="Print timings (prompt eval rate, eval rate) to stderr.")] = False,
) -> None:
    """Run a model locally and chat with it."""
    import anyio

    from llama_core.local_chat import sampling_for

    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()
    sampling = sampling_for(temperature, top_p, max_tokens)
    anyio.run(_main, model_id, prompt, sampling, max_seq_len, dtype, verbose)


async def _main(model_id: str, prompt: str | None, sampling: object, max_seq_len: int, dtype: str | None,
                verbose: bool) -> None:
    import time

    from llama_core.errors import InvalidRequestError
    from llama_core.local_chat import ReplyStats, stream_reply
    from llama_core.models.registry import resolve_model
    from llama_core.providers.inference.meta_reference import MetaReferenceInference, MetaReferenceInferenceConfig
    from llama_core.types import CompletionMessage, Message, UserMessage

    started = time.perf_counter()
    resolve_model(model_id)  # ModelNotFoundError, with the closest names, before the config's own check
    try:
        config = MetaReferenceInferenceConfig(model=model_id, max_seq_len=max_seq_len, max_batch_size=1, dtype=dtype)
    except ValueError as e:  # what the engine cannot run (a size out of range): a usage error
        raise InvalidRequestError(str(e)) from None
    async with MetaReferenceInference(config) as inference:
        load_s = time.perf_counter() - started
        history: list[Message] = []
        while True:
            text = prompt if prompt is not None else _ask()
            if text is None:
                return
            history.append(UserMessage(content=text))
            stats = ReplyStats()
            pieces = []
            async for piece in stream_reply(inference.primary, history, sampling, stats):  # type: ignore[arg-type]
                pieces.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            history.append(CompletionMessage(content="".join(pieces), stop_reason=stats.stop_reason))
            if verbose:
                _print_stats(stats, load_s, time.perf_counter() - started)
            if prompt is not None:
                return
            started, load_s = time.perf_counter(), 0.0


def _ask() -> str | None:
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            return None
        if line.strip() in ("/bye", "/exit"):
            return None
        if line.strip():
            return line


def _print_stats(stats: object, load_s: float, total_s: float) -> None:
    from llama_core.local_chat import ReplyStats

    assert isinstance(stats, ReplyStats)
    lines = [
        ("total duration", f"{total_s:.3f}s"),
        ("load duration", f"{load_s:.3f}s"),
        ("prompt eval count", f"{stats.prompt_tokens} token(s)"),
        ("prompt eval duration", f"{stats.prompt_eval_s:.3f}s"),
        ("prompt eval rate", f"{stats.prompt_eval_rate:.2f} tokens/s"),
        ("eval count", f"{stats.eval_tokens + 1} token(s)"),
        ("eval duration", f"{stats.eval_s:.3f}s"),
        ("eval rate", f"{stats.eval_rate:.2f} tokens/s"),
    ]
    for name, value in lines:
        print(f"{name + ':':<22}{value}", file=sys.stderr)
