"""ChatStream's hold-back (llama_core/providers/inference/stream.py): a reply streams as content or as
tool calls, never both. Text deltas go in as a model writes them; the chunks that come out are pinned,
and they always fold to the message a non-streamed call gives."""

from __future__ import annotations

from typing import Any

import pytest

from llama_core.prompt.chat_format import decode_assistant_message_from_content
from llama_core.providers.inference.stream import ChatStream
from llama_core.types import CompletionMessage, StopReason, TokenLogProbs
from llama_core.types.folds import fold_chat
from llama_core.types.inference import ToolCallDelta

EOT, OOT = StopReason.end_of_turn, StopReason.out_of_tokens


def run(pieces: list[str], tools: set[str], stop: StopReason = EOT, tagged: bool = False) -> tuple[list[Any], CompletionMessage]:
    """(what each chunk carries, the folded message) for a reply written as `pieces`."""
    chat = ChatStream(tools)
    chunks = [chat.start()]
    if tagged:
        chunks += chat.tool_call_started()
    for piece in pieces:
        chunks += chat.text(piece)
    text = ("<|python_tag|>" if tagged else "") + "".join(pieces)
    message = decode_assistant_message_from_content(text, stop, lambda: "id", tools=tools)
    chunks += chat.finish(message)
    shown = []
    for c in chunks[1:-1]:
        d = c.event.delta
        shown.append((str(d.parse_status), d.content if isinstance(d.content, str) else d.content.tool_name) if isinstance(d, ToolCallDelta) else d)
    folded = fold_chat(chunks).completion_message
    # As if not streamed (a stream keeps the spaces around the reply, which the whole message drops).
    assert (folded.content.strip(" "), folded.tool_calls) == (message.content, message.tool_calls)
    return shown, folded


JSON_PIECES = ['{"', "name", '":', ' "', "get", "_weather", '",', ' "', "parameters", '":', ' {"', "city", '":', ' "', "Paris", '"}}']


@pytest.mark.parametrize(
    ("pieces", "tools", "stop", "shown"),
    [
        pytest.param(JSON_PIECES, {"get_weather"}, EOT, [("success", "get_weather")], id="json-call-held"),
        pytest.param(JSON_PIECES, {"other"}, EOT, ['{"name": "get_weather", "parameters": {"city": "Paris"}}'], id="unoffered-is-text"),
        pytest.param(JSON_PIECES[:12], {"get_weather"}, OOT, ['{"name": "get_weather", "parameters": {"city'], id="truncated-is-text"),
        pytest.param(["[get", "-weather", '(city="Paris")]'], {"get-weather"}, EOT, [("success", "get-weather")], id="hyphen"),
        pytest.param(["Hel", "lo", " there"], {"get_weather"}, EOT, ["Hel", "lo", " there"], id="prose-not-held"),
        pytest.param(["brave", "_search", " is", " a tool"], {"brave_search"}, EOT, ["brave_search is", " a tool"], id="builtin-name-held-then-released"),
        pytest.param(["  ", "Hi"], {"get_weather"}, EOT, ["  Hi"], id="leading-space-held-then-released"),
        pytest.param(["[1", ", 2]", " ok"], {"get_weather"}, EOT, ["[1, 2] ok"], id="bracket-prose-held-whole"),
        pytest.param(JSON_PIECES, set(), EOT, JSON_PIECES, id="no-tools-nothing-held"),
    ],
)  # fmt: skip
def test_held_back_until_content_or_call(pieces: list[str], tools: set[str], stop: StopReason, shown: list[Any]) -> None:
    assert run(pieces, tools, stop)[0] == shown


def test_a_tagged_reply_streams_as_tool_call_text_then_its_outcome() -> None:
    shown, message = run(['brave_search.call(query="x")'], {"brave_search"}, StopReason.end_of_message, tagged=True)
    assert shown == [("started", ""), ("in_progress", 'brave_search.call(query="x")'), ("success", "brave_search")]
    shown, message = run(['{"name": "get_weather", "parameters": {"ci'], {"get_weather"}, OOT, tagged=True)
    assert shown == [
        ("started", ""),
        ("in_progress", '{"name": "get_weather", "parameters": {"ci'),
        ("failure", ""),
        '{"name": "get_weather", "parameters": {"ci',
    ]
    assert (message.content, message.tool_calls, message.stop_reason) == ('{"name": "get_weather", "parameters": {"ci', [], OOT)
    # No tools offered: the tag starts nothing, and the text is content.
    shown, _ = run(["print(1)"], set(), StopReason.end_of_message, tagged=True)
    assert shown == ["print(1)"]


def test_held_logprobs_come_once_with_what_the_reply_turned_out_to_be() -> None:
    def lp(i: int) -> list[TokenLogProbs]:
        return [TokenLogProbs(logprobs_by_token={f"t{i}": -float(i)})]

    for tagged, pieces, tools, stop in (
        (True, ['brave_search.call(query="x")'], {"brave_search"}, StopReason.end_of_message),  # a call
        (True, ['{"name": "f", "par'], {"f"}, OOT),  # a failed call: its text is content
        (False, ["[1", ", 2]"], {"f"}, EOT),  # held prose
    ):
        chat = ChatStream(tools)
        chunks = [chat.start(), *(chat.tool_call_started() if tagged else [])]
        for i, piece in enumerate(pieces):
            chunks += chat.text(piece, lp(i))
        text = ("<|python_tag|>" if tagged else "") + "".join(pieces)
        chunks += chat.finish(decode_assistant_message_from_content(text, stop, tools=tools))
        carried = [c for c in chunks if c.event.logprobs]
        assert len(carried) == 1 and carried[0].event.logprobs == [x for i in range(len(pieces)) for x in lp(i)]
        assert not isinstance(carried[0].event.delta, ToolCallDelta) or carried[0].event.delta.parse_status == "success"
