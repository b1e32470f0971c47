"""The Llama 3.1/3.2/3.3 chat format: messages to token ids, and the model's reply back to a message.

A dialog is first laid out as segments, each plain text or a special token, so it renders as text
with no tokenizer at all (`render_dialog_text`, for `llama model template`), and tokenizes the same
way the reference does (each text segment is encoded on its own, so ids match llama-models 0.0.63):

    <|begin_of_text|>
    <|start_header_id|> role <|end_header_id|> "\\n\\n"                       once per message, then
        [<|python_tag|>] content... ["\\n\\n" context...] [tool call...]     (python_tag iff tool calls)
        <|eom_id|> if an assistant stopped with end_of_message, else <|eot_id|>
    <|start_header_id|> assistant <|end_header_id|> "\\n\\n"                  the open turn to complete

Roles: system, user, assistant, and ipython for tool results. A list content gives one segment per
text item. Non-goals: images (`<|image|>`), and the Llama 3.2 vision cross-attention mask.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from llama_core.errors import CheckpointError
from llama_core.prompt.tool_calls import encode_tool_calls, new_call_id, parse_tool_calls
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
)


@dataclass(frozen=True, slots=True)
class Special:
    """A special token in a segment list, by name (`<|eot_id|>`)."""

    name: str


# A prompt before tokenization: text pieces (each encoded on its own) and special tokens.
Segment = str | Special

BEGIN_OF_TEXT = Special("<|begin_of_text|>")
END_OF_TEXT = Special("<|end_of_text|>")
START_HEADER = Special("<|start_header_id|>")
END_HEADER = Special("<|end_header_id|>")
EOT = Special("<|eot_id|>")
EOM = Special("<|eom_id|>")
PYTHON_TAG = Special("<|python_tag|>")


def role_of(message: Message) -> str:
    """The header text of a message: system, user, assistant or ipython."""
    if isinstance(message, ToolResponseMessage):
        return "ipython"
    if isinstance(message, CompletionMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    return "user"


def header_segments(role: str) -> list[Segment]:
    return [START_HEADER, role, END_HEADER, "\n\n"]


def content_segments(content: Content) -> list[Segment]:
    return [content] if isinstance(content, str) else [item.text for item in content]


def message_segments(message: Message, tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json) -> list[Segment]:
    """One message: header, body, and its end token."""
    segments = header_segments(role_of(message))
    if isinstance(message, CompletionMessage):
        # 0.0.63 marks any reply with tool calls, whatever their format, with <|python_tag|>.
        segments += [PYTHON_TAG] if message.tool_calls else []
        segments += content_segments(message.content)
        segments += encode_tool_calls(message.tool_calls, tool_prompt_format)
        return segments + [EOM if message.stop_reason == StopReason.end_of_message else EOT]
    segments += content_segments(message.content)
    if isinstance(message, UserMessage) and message.context is not None:
        # RAG context follows the question after a blank line.
        segments += ["\n\n", *content_segments(message.context)]
    return segments + [EOT]


def dialog_segments(
    messages: Iterable[Message], tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
) -> list[Segment]:
    """The whole prompt: BOS, every message, and an open assistant header for the model to complete."""
    segments: list[Segment] = [BEGIN_OF_TEXT]
    for message in messages:
        segments += message_segments(message, tool_prompt_format)
    return segments + header_segments("assistant")


def render_segments(segments: Iterable[Segment]) -> str:
    """Segments as text, special tokens written inline (`<|eot_id|>`)."""
    return "".join(s.name if isinstance(s, Special) else s for s in segments)


def render_dialog_text(
    messages: Iterable[Message], tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
) -> str:
    """The prompt `encode_dialog_prompt` would tokenize, as text; needs no tokenizer."""
    return render_segments(dialog_segments(messages, tool_prompt_format))


def decode_assistant_message_from_content(
    content: str,
    stop_reason: StopReason,
    make_call_id: Callable[[], str] = new_call_id,
    *,
    tools: Collection[str] | None = None,
) -> CompletionMessage:
    """Parse a reply given as text with special tokens inline (as llama-models does; for text APIs).

    Strips a leading assistant header and `<|python_tag|>`; a trailing `<|eot_id|>` or `<|eom_id|>`
    sets the stop reason, a trailing `<|end_of_text|>` leaves `stop_reason` as given. Spaces around
    the body are dropped, as `decode_assistant_message` does. `tools`: as `assistant_message`.
    """
    content = content.strip(" ")
    header = render_segments(header_segments("assistant"))
    content = content.removeprefix(header)
    ipython = content.startswith(PYTHON_TAG.name)
    content = content.removeprefix(PYTHON_TAG.name)
    for token, reason in ((EOT, StopReason.end_of_turn), (EOM, StopReason.end_of_message), (END_OF_TEXT, stop_reason)):
        if content.endswith(token.name):
            content, stop_reason = content.removesuffix(token.name), reason
            break
    return assistant_message(content.strip(" "), ipython, stop_reason, make_call_id, tools=tools)


def assistant_message(
    body: str,
    ipython: bool,
    stop_reason: StopReason,
    make_call_id: Callable[[], str] = new_call_id,
    *,
    tools: Collection[str] | None = None,
) -> CompletionMessage:
    """A CompletionMessage from the reply's body; any tool call empties the content (as the reference).

    `tools` names the tools the request offered (None: any; see parse_tool_calls). A reply cut by
    the token budget (out_of_tokens) is never a call: its text is the content.
    """
    if stop_reason == StopReason.out_of_tokens:
        return CompletionMessage(content=body, stop_reason=stop_reason)
    tool_calls = parse_tool_calls(body, ipython=ipython, tools=tools, make_call_id=make_call_id)
    return CompletionMessage(content="" if tool_calls else body, stop_reason=stop_reason, tool_calls=tool_calls)


class ChatFormat:
    """The Llama 3 chat format over a Llama 3 tokenizer: token ids in, CompletionMessage out."""

    supports_tools = True

    def __init__(self, tokenizer: Tokenizer) -> None:
        needed = (START_HEADER, END_HEADER, EOT, EOM, PYTHON_TAG)
        missing = [s.name for s in needed if s.name not in tokenizer.special_tokens]
        if missing:
            raise CheckpointError(f"Not a Llama 3 tokenizer: it lacks {', '.join(missing)}")
        self.tokenizer = tokenizer
        self.stop_tokens = list(tokenizer.stop_tokens)
        self._header = self.tokenize(header_segments("assistant"))

    def tokenize(self, segments: Iterable[Segment]) -> list[int]:
        """Token ids of a segment list: each text piece encoded alone, specials by id."""
        ids: list[int] = []
        for s in segments:
            if isinstance(s, Special):
                ids.append(self.tokenizer.special_tokens[s.name])
            else:
                ids += self.tokenizer.encode(s)
        return ids

    def encode_message(
        self, message: Message, tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
    ) -> list[int]:
        return self.tokenize(message_segments(message, tool_prompt_format))

    def encode_dialog_prompt(
        self, messages: Iterable[Message], tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
    ) -> list[int]:
        """Token ids of the whole dialog, ending in an open assistant header."""
        return self.tokenize(dialog_segments(messages, tool_prompt_format))

    def render_dialog_text(
        self, messages: Iterable[Message], tool_prompt_format: ToolPromptFormat = ToolPromptFormat.json
    ) -> str:
        return render_dialog_text(messages, tool_prompt_format)

    def encode_content(self, content: Content) -> list[int]:
        """A bare completion prompt (base models): BOS, then the text, no headers."""
        return [self.tokenizer.bos_id] + self.tokenize(content_segments(content))

    def decode_assistant_message(
        self,
        tokens: Sequence[int],
        stop_reason: StopReason,
        make_call_id: Callable[[], str] = new_call_id,
        *,
        tools: Collection[str] | None = None,
    ) -> CompletionMessage:
        """The assistant's reply from its generated ids (stop token included or not).

        A trailing `<|eot_id|>` / `<|eom_id|>` sets the stop reason; a trailing `<|end_of_text|>` is
        dropped and `stop_reason` stands. The markers are read as ids, so a user's text that merely
        spells `<|eot_id|>` stays text. `tools`: as `assistant_message`.
        """
        ids = list(tokens)
        if ids[: len(self._header)] == self._header:
            ids = ids[len(self._header) :]
        ipython = bool(ids) and ids[0] == self.tokenizer.python_tag_id
        if ipython:
            ids = ids[1:]
        if ids and ids[-1] == self.tokenizer.eot_id:
            ids, stop_reason = ids[:-1], StopReason.end_of_turn
        elif ids and ids[-1] == self.tokenizer.eom_id:
            ids, stop_reason = ids[:-1], StopReason.end_of_message
        elif ids and ids[-1] == self.tokenizer.eos_id:
            ids = ids[:-1]
        body = self.tokenizer.decode(ids).strip(" ")
        return assistant_message(body, ipython, stop_reason, make_call_id, tools=tools)
