"""`llama model run`: chat with a local model without a server, like `ollama run`.

One prompt (argument or piped stdin) prints only the answer on stdout; no prompt on a terminal
starts an interactive chat. `--verbose` adds timings on stderr.

In the chat, lines starting with "/" are commands (COMMANDS), never sent to the model. Ctrl-C
during a reply stops the reply and returns to the prompt; at the prompt it leaves the chat, as
Ctrl-D and /bye do.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import Parameter

from llama_cli.errors import EXIT_INTERRUPTED, not_utf8
from llama_cli.model import ModelId

if TYPE_CHECKING:
    from llama_cli.chat_keys import CtrlC
    from llama_core.types import Message, SamplingParams


def run(
    prompt: Annotated[str | None, Parameter(help="What to ask. Omit for an interactive chat.")] = None,
    *,
    model_id: ModelId,
    temperature: Annotated[
        float | None, Parameter(help="0 is greedy. Default: the model's recommended sampling (`llama model describe`).")
    ] = None,
    top_p: Annotated[float | None, Parameter(help="Nucleus sampling mass when temperature > 0 (default 0.9).")] = None,
    max_tokens: Annotated[int, Parameter(help="Most tokens per reply.")] = 512,
    max_seq_len: Annotated[int, Parameter(help="Context size to allocate.")] = 4096,
    dtype: Annotated[
        Literal["fp32", "bf16", "int8", "gguf"] | None,
        Parameter(help="Weights: fp32, bf16, int8 (weight-only, per-row scales), or gguf (the model's own GGUF "
                  "blocks, where its folder has the file: the demo model does). Default: bf16 on CUDA, else fp32."),
    ] = None,
    verbose: Annotated[bool, Parameter(negative=(), help="Print timings (prompt eval rate, eval rate) to stderr.")] = False,
) -> int:
    """Run a model locally and chat with it."""
    import anyio

    from llama_core.chat_sampling import sampling_for
    from llama_core.models.registry import resolve_model

    model = resolve_model(model_id)  # ModelNotFoundError, with the closest names, before any load
    sampling = sampling_for(temperature, top_p, max_tokens, model.recommended_sampling_params)
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()
    if prompt is not None and (problem := not_utf8(prompt)) is not None:
        from llama_core.errors import InvalidRequestError

        raise InvalidRequestError(f"The prompt {problem}.", field="prompt")
    interrupted = anyio.run(_main, model_id, prompt, sampling, max_seq_len, dtype, verbose)
    return EXIT_INTERRUPTED if interrupted else 0  # quietly, as cyclopts ends on Ctrl-C elsewhere


async def _main(model_id: str, prompt: str | None, sampling: SamplingParams, max_seq_len: int, dtype: str | None,
                verbose: bool) -> bool:
    """Load the model, then answer `prompt` or chat; True when Ctrl-C stopped the run (its load, its one reply)."""
    from llama_cli.chat_keys import CtrlC

    ctrl_c = CtrlC()
    with ctrl_c.handling():  # from before the load (a press stops it) until the workers are closed
        await _session(model_id, prompt, sampling, max_seq_len, dtype, verbose, ctrl_c)
    return ctrl_c.interrupted


async def _session(model_id: str, prompt: str | None, sampling: SamplingParams, max_seq_len: int, dtype: str | None,
                   verbose: bool, ctrl_c: CtrlC) -> None:
    import time

    import anyio

    from llama_core.errors import InvalidRequestError
    from llama_core.providers.inference.meta_reference import MetaReferenceInference, MetaReferenceInferenceConfig

    started = time.perf_counter()
    try:
        config = MetaReferenceInferenceConfig(model=model_id, max_seq_len=max_seq_len, max_batch_size=1, dtype=dtype)
    except ValueError as e:  # what the engine cannot run (a size out of range): a usage error
        raise InvalidRequestError(str(e)) from None
    with anyio.CancelScope() as session:
        ctrl_c.stops(session, interrupts=True)  # while it loads, and a one-prompt run: stop, exit 130
        async with contextlib.AsyncExitStack() as running:
            with _said_while_loading(config.model):
                inference = await running.enter_async_context(MetaReferenceInference(config))
            chat = _Chat(inference, sampling, verbose, ctrl_c)
            load_s = time.perf_counter() - started
            if prompt is not None:
                await chat.reply(prompt, load_s, started)
                return
            while True:
                ctrl_c.stops(session)  # at the prompt: leave the chat
                if (text := await chat.ask()) is None:
                    return
                with anyio.CancelScope() as reply:
                    ctrl_c.stops(reply)
                    await chat.reply(text, load_s, time.perf_counter())
                if reply.cancelled_caught:
                    sys.stdout.write("\n")
                load_s = 0.0
    if session.cancelled_caught and not ctrl_c.interrupted:  # Ctrl-C at the prompt: the "^C" the terminal echoed ends its line
        sys.stdout.write("\n")


@contextlib.contextmanager
def _said_while_loading(model: str) -> Iterator[None]:
    """On a terminal, `Loading MODEL ...` on stderr while inside (a load takes seconds to minutes), erased
    after, as Ollama's spinner is; to a pipe, nothing (its reader wants the answer only)."""
    if not sys.stderr.isatty():
        yield
        return
    sys.stderr.write(f"Loading {model} ...")
    sys.stderr.flush()
    try:
        yield
    finally:  # the line is the cursor's still unless a worker wrote one (the kernels' build): then it stays above
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


class _Chat:
    """One conversation: its history, its sampling, and the chat commands."""

    def __init__(self, inference: Any, sampling: SamplingParams, verbose: bool, ctrl_c: CtrlC) -> None:
        self.inference, self.sampling, self.verbose, self.ctrl_c = inference, sampling, verbose, ctrl_c
        self.history: list[Message] = []

    async def reply(self, text: str, load_s: float, started: float) -> None:
        """Send `text`, print the reply as it comes; a cancelled reply stays in the history as far as it got."""
        import time

        from llama_core.local_chat import ReplyStats, stream_reply
        from llama_core.types import CompletionMessage, UserMessage

        self.history.append(UserMessage(content=text))
        stats = ReplyStats()
        pieces: list[str] = []
        try:
            async for piece in stream_reply(self.inference.primary, self.history, self.sampling, stats):
                await self.ctrl_c.checkpoint()  # a piece that came in with a Ctrl-C is not printed
                pieces.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
        finally:
            self.history.append(CompletionMessage(content="".join(pieces), stop_reason=stats.stop_reason))
        if self.verbose:
            _print_stats(stats, load_s, time.perf_counter() - started)

    async def ask(self) -> str | None:
        """The next message for the model; None to leave (Ctrl-D, /bye). Runs commands on the way."""
        from llama_cli.chat_keys import read_line

        while True:
            if (line := await read_line(">>> ")) is None:  # Ctrl-D
                sys.stdout.write("\n")
                return None
            line = line.strip()
            if (problem := not_utf8(line)) is not None:
                print(f"Error: that line {problem}.")
                continue
            if not line.startswith("/"):
                if line:
                    return line
                continue
            name, _, rest = line.partition(" ")
            command = COMMANDS.get(name)
            if command is None:
                print(f"Unknown command '{name}'. Type /? for help.")
            elif command[0](self, rest.strip()) is _BYE:
                return None

    def help(self, _: str) -> None:
        print("Available commands:")
        for name, (_run, text) in COMMANDS.items():
            if text:
                print(f"  {name:<24}{text}")
        print("\nCtrl-C stops a reply; at the prompt, Ctrl-C or Ctrl-D leaves.")

    def clear(self, _: str) -> None:
        self.history.clear()
        print("Cleared session context.")

    def set(self, args: str) -> None:
        from llama_core.errors import InvalidRequestError
        from llama_core.chat_sampling import CHAT_PARAMETERS, with_parameter

        words = args.split()
        if words[:1] == ["parameter"]:  # Ollama's spelling: /set parameter temperature 0.7
            words = words[1:]
        if len(words) != 2:
            print("Usage: /set parameter NAME VALUE, NAME one of: " + ", ".join(CHAT_PARAMETERS))
            return
        try:
            self.sampling = with_parameter(self.sampling, words[0], words[1])
        except InvalidRequestError as e:
            print(f"Error: {e.message}")
            return
        print(f"Set parameter '{words[0]}' to '{words[1]}'")

    def show(self, _: str) -> None:
        s = self.sampling
        print(f"strategy {s.strategy.value}, temperature {s.temperature}, top_p {s.top_p}, top_k {s.top_k}, max_tokens {s.max_tokens}, "
              f"repetition_penalty {s.repetition_penalty}, seed {s.seed}")

    def bye(self, _: str) -> object:
        return _BYE


_BYE = object()

# name -> (method, help line); "" hides an alias from /?.
COMMANDS: dict[str, tuple[Callable[[_Chat, str], object], str]] = {
    "/set": (_Chat.set, "Set a sampling parameter: /set parameter temperature 0.7"),
    "/show": (_Chat.show, "Show the sampling parameters"),
    "/clear": (_Chat.clear, "Clear the session context"),
    "/bye": (_Chat.bye, "Leave the chat (also Ctrl-D)"),
    "/?": (_Chat.help, "List these commands (also /help)"),
    "/help": (_Chat.help, ""),
    "/exit": (_Chat.bye, ""),
}


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
