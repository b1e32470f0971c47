"""The chat format of other Llama-architecture models: their own Jinja chat template (the demo model SmolLM2).

Renders like Hugging Face's `apply_chat_template`: a sandboxed Jinja environment with `trim_blocks`
and `lstrip_blocks`, messages as `{"role", "content"}` dicts, `add_generation_prompt=True`,
`bos_token` / `eos_token`, `raise_exception` and `strftime_now`. The rendered text is tokenized with
special tokens recognized (the template writes them as text), as Hugging Face does; so, as there,
special-token text inside a message is read as that token.

Non-goals: tool calling (tools, tool results and assistant tool calls raise UnsupportedError),
Hugging Face's `{% generation %}` masks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from llama_core.errors import CheckpointError, InvalidRequestError, UnsupportedError
from llama_core.prompt.tool_calls import new_call_id
from llama_core.tokenizer import Tokenizer
from llama_core.types import (
    CompletionMessage,
    Content,
    Message,
    StopReason,
    SystemMessage,
    ToolPromptFormat,
    ToolResponseMessage,
    UserMessage,
    content_text,
)

# Where a checkpoint keeps its template: a file, or Hugging Face's tokenizer_config.json key.
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.j2")


def load_chat_template(checkpoint_dir: str | Path) -> str:
    """The Jinja chat template of a checkpoint: `chat_template.jinja`, or `tokenizer_config.json`'s key."""
    root = Path(checkpoint_dir)
    for name in CHAT_TEMPLATE_FILES:
        if (root / name).is_file():
            return (root / name).read_text(encoding="utf-8")
    config = root / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        if isinstance(template, str):
            return template
    raise CheckpointError(f"No chat template in {root} (expected chat_template.jinja)")


def _raise_exception(message: str) -> None:
    raise InvalidRequestError(f"Chat template rejected the dialog: {message}", field="messages")


def _tojson(value: Any, indent: int | None = None) -> str:
    # Hugging Face's tojson: keys kept in order, non-ASCII kept.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _compile(source: str) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except TemplateError as e:
        raise CheckpointError(f"Chat template does not compile: {e}") from e


def message_dict(message: Message) -> dict[str, str]:
    """A message as a template sees it; RAG context follows the content after a blank line."""
    if isinstance(message, ToolResponseMessage):
        raise UnsupportedError("This model's chat template has no tool results (ipython role)", field="messages")
    if isinstance(message, CompletionMessage) and message.tool_calls:
        raise UnsupportedError("This model's chat template has no tool calls", field="messages")
    text = content_text(message.content)
    if isinstance(message, UserMessage) and message.context is not None:
        text += "\n\n" + content_text(message.context)
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": text}
    return {"role": "assistant" if isinstance(message, CompletionMessage) else "user", "content": text}


class JinjaChatFormat:
    """A chat format from a Jinja template over any tokenizer; same interface as ChatFormat, no tools."""

    supports_tools = False

    def __init__(self, tokenizer: Tokenizer, template_source: str) -> None:
        self.tokenizer = tokenizer
        self.template = _compile(template_source)
        self.stop_tokens = list(tokenizer.stop_tokens)

    def render_dialog_text(
        self, messages: Iterable[Message], tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
    ) -> str:
        """The prompt text, special tokens inline, ending where the assistant's reply starts."""
        from jinja2.exceptions import TemplateError

        dicts = [message_dict(m) for m in messages]
        try:
            return self.template.render(
                messages=dicts,
                add_generation_prompt=True,
                bos_token=self.tokenizer.id_to_piece(self.tokenizer.bos_id),
                eos_token=self.tokenizer.id_to_piece(self.tokenizer.eos_id),
            )
        except TemplateError as e:
            raise InvalidRequestError(f"Chat template failed on this dialog: {e}", field="messages") from e

    def encode_dialog_prompt(
        self, messages: Iterable[Message], tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
    ) -> list[int]:
        """Token ids of the rendered prompt (`tool_prompt_format` is accepted for interface parity)."""
        return self.tokenizer.encode(self.render_dialog_text(messages), allow_special=True)

    def encode_content(self, content: Content) -> list[int]:
        """A bare completion prompt: the text, with BOS when the tokenizer's config asks for it."""
        bos = getattr(self.tokenizer, "add_bos", False)
        return self.tokenizer.encode(content_text(content), bos=bos)

    def decode_assistant_message(
        self,
        tokens: Sequence[int],
        stop_reason: StopReason,
        make_call_id: Callable[[], str] = new_call_id,
        *,
        tools: Collection[str] | None = None,
    ) -> CompletionMessage:
        """The reply as text (these models take no tools; `tools` is for interface parity); a
        trailing stop token means the turn ended (end_of_turn)."""
        ids = list(tokens)
        if ids and ids[-1] in self.stop_tokens:
            ids, stop_reason = ids[:-1], StopReason.end_of_turn
        return CompletionMessage(content=self.tokenizer.decode(ids), stop_reason=stop_reason)
