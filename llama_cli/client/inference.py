"""`python -m llama_cli.client.inference HOST PORT [--no-stream]`: chat with a running stack.

With stdin a terminal it is an interactive chat (empty line or Ctrl-D ends it); otherwise it sends
one prompt (piped stdin, `--message`, or the reference's troll prompt) and prints the answer:

    Initializing client for http://localhost:5000
    User>hello world, troll me in two-paragraphs about 42

    Assistant> ...

The answer is streamed, printed word by word as the model writes it; `--no-stream` asks for it whole.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

from cyclopts import App, Parameter

from llama_cli.client import CYAN, YELLOW, ApiKey, ask, colour, host_url, run_client, stack_api_key

DEFAULT_MESSAGE = "hello world, troll me in two-paragraphs about 42"
DEFAULT_MAX_TOKENS = 512  # as `llama model run`: a reply of a few paragraphs, not the whole context

app = App(name="python -m llama_cli.client.inference", help_format="plaintext", result_action="return_value")


@app.default
def inference(
    host: Annotated[str, Parameter(help="Host of the stack server.")],
    port: Annotated[int, Parameter(help="Its port.")],
    *,
    stream: Annotated[bool, Parameter(help="Print the answer as it is generated; --no-stream: whole, once done.")] = True,
    model: Annotated[str | None, Parameter(help="Model to ask (default: the first the stack serves).")] = None,
    message: Annotated[str | None, Parameter(help="The prompt (default: piped stdin, else the reference's).")] = None,
    max_tokens: Annotated[int, Parameter(help="Most tokens per answer (0: up to the context).")] = DEFAULT_MAX_TOKENS,
    temperature: Annotated[
        float | None, Parameter(help="0 is greedy. Default: the model's recommended sampling, where the stack lists one.")
    ] = None,
    api_key: ApiKey = None,
) -> None:
    """Send a chat to a stack's /inference/chat_completion and print the assistant's answer."""
    import anyio

    api_key = stack_api_key(api_key)  # before stdin's message
    interactive = message is None and sys.stdin.isatty()
    if message is None and not interactive:
        message = sys.stdin.read().strip() or DEFAULT_MESSAGE
    base_url = host_url(host, port)
    print(f"Initializing client for {base_url}")
    anyio.run(_chat, base_url, api_key, model, message, stream, max_tokens, temperature)


async def _chat(
    base_url: str, api_key: str | None, model: str | None, message: str | None, stream: bool, max_tokens: int,
    temperature: float | None,
) -> None:
    from llama_core.chat_sampling import sampling_for
    from llama_core.client import StackClient
    from llama_core.types import CompletionMessage, Message, UserMessage

    async with StackClient(base_url, api_key=api_key) as client:
        models = await client.list_models()
        if model is None:
            model = models[0].descriptor if models else "SmolLM2-135M-Instruct"
        # the model's recommended sampling where the stack lists one (the demo model's card: temperature 0.2)
        served = next((m for m in models if m.descriptor == model), None)
        recommended = served.recommended_sampling_params if served is not None else None
        sampling = sampling_for(temperature, None, max_tokens, recommended)
        history: list[Message] = []
        while True:
            text = message if message is not None else ask()
            if not text:
                return
            if message is not None:
                print(f"User>{text}")
            history.append(UserMessage(content=text))
            answer, stop = await _answer(client, model, history, stream, sampling)
            history.append(CompletionMessage(content=answer, stop_reason=stop))
            if message is not None:
                return


async def _answer(client: Any, model: str, history: list[Any], stream: bool, sampling: Any) -> tuple[str, Any]:
    """Ask, print `Assistant> ...` (deltas as they come when streaming); the answer and stop reason."""
    from llama_core.types import StopReason, content_text
    from llama_core.types.inference import ChatCompletionRequest

    request = ChatCompletionRequest(model=model, messages=list(history), sampling_params=sampling, stream=stream)
    print("\n" + colour("Assistant> ", CYAN), end="", flush=True)
    if not stream:
        reply = (await client.chat_completion(request)).completion_message
        text = content_text(reply.content)
        print(colour(text, YELLOW))
        return text, reply.stop_reason
    pieces, stop = [], StopReason.end_of_turn
    async for chunk in await client.chat_completion(request):
        event = chunk.event
        if isinstance(event.delta, str) and event.delta:
            pieces.append(event.delta)
            print(colour(event.delta, YELLOW), end="", flush=True)
        if event.stop_reason is not None:
            stop = event.stop_reason
    print()
    return "".join(pieces), stop


def main(argv: Sequence[str] | None = None) -> int:
    return run_client(app, argv)


if __name__ == "__main__":
    sys.exit(main())
