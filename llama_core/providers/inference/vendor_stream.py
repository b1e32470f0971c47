"""What every remote inference vendor's answer goes through: vendor text and tool calls to our
CompletionMessage, a vendor's stream (as Pieces) to the meta-reference chunk sequence, and an open
HTTP answer read line by line, closed when its consumer is done.

    stream = OpenStream(response, chat_chunks("Ollama", pieces_of(response), offered(request.tools)))

The chat sequence is ChatStream's: start, progress per text delta (a leading `<|python_tag|>`
turns what follows into ToolCallDelta in_progress pieces), the vendor's tool calls as success
deltas (a call whose arguments are not JSON as one failure), then complete with the stop reason.
A stream that ends before the vendor said why it stopped is a ProviderError, as is a dropped
connection: the caller already holds part of an answer, so nothing is retried then. Vendors are
sent the request's stop sequences, and their text is cut here too (`stop_at`, `cut_piece`), so a
vendor that ignores some still answers as meta-reference would. The vendor's token counts, where it
sends them (with its last event, or in one of their own), become the last chunk's `metrics`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import msgspec

from llama_core.errors import ProviderError
from llama_core.prompt.chat_format import PYTHON_TAG, decode_assistant_message_from_content
from llama_core.prompt.tool_calls import new_call_id
from llama_core.providers.inference.stops import StopCutter, cut_text
from llama_core.providers.inference.stream import ChatStream
from llama_core.types import CompletionMessage, StopReason, ToolCall
from llama_core.types.inference import (
    ChatCompletionResponseEvent,
    Metrics,
    ChatCompletionResponseEventType,
    ChatCompletionResponseStreamChunk,
    CompletionResponseStreamChunk,
    ToolCallDelta,
    ToolCallParseStatus,
)

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

# Llama stop tokens a raw-text endpoint may leave in its text.
STOP_TOKENS = ("<|eot_id|>", "<|eom_id|>")


# -- answers: vendor JSON -> our types -------------------------------------------------------------


def vendor_tool_call(call_id: str | None, name: str, arguments: str | dict[str, Any] | None) -> ToolCall | None:
    """A ToolCall from a vendor's call (arguments as a JSON string, or an object as Ollama sends them).

    None when the arguments are not a JSON object.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return None
    return ToolCall(call_id=call_id or new_call_id(), tool_name=name, arguments=arguments)


def vendor_message(
    text: str, stop_reason: StopReason, calls: Sequence[ToolCall] = (), *, tools: Collection[str]
) -> CompletionMessage:
    """The assistant message of a vendor's reply: its text parsed as meta-reference parses the model's
    (a leading <|python_tag|>, tool calls written as text, only to `tools`, the request's), plus the
    calls the vendor returned itself."""
    message = decode_assistant_message_from_content(text, stop_reason, tools=tools)
    if calls:
        message = msgspec.structs.replace(message, tool_calls=[*message.tool_calls, *calls])
    return message


def error_message(body: bytes) -> str:
    """The human part of a vendor's error body: OpenAI's {"error": {"message"}}, Ollama's {"error": "..."}."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode(errors="replace")
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)
        if error is not None:
            return str(error)
    return str(data)


# -- streams ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Piece:
    """One step of a vendor's reply stream, in our terms."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    bad_calls: list[str] = field(default_factory=list)  # raw text of calls whose arguments did not parse
    finish: StopReason | None = None  # set by the last piece
    metrics: Metrics = msgspec.UNSET  # the vendor's token counts, on whichever piece brought them


def cut_piece(piece: Piece, stops: Sequence[str]) -> Piece:
    """A whole answer's piece with its text cut before the first of `stops` (then it ends the turn)."""
    text, stopped = cut_text(piece.text, stops)
    return dataclasses.replace(piece, text=text, finish=StopReason.end_of_turn) if stopped else piece


async def stop_at(response: httpx.Response, pieces: AsyncIterator[Piece], stops: Sequence[str]) -> AsyncIterator[Piece]:
    """The pieces read from `response`, their text cut before the first of `stops`. The piece that
    completes one is the last (end_of_turn), and the vendor's answer is closed then."""
    cutter = StopCutter(stops)
    async for piece in pieces:
        text = cutter.push(piece.text)
        if cutter.stopped:
            yield dataclasses.replace(piece, text=text, finish=StopReason.end_of_turn)
            break
        yield dataclasses.replace(piece, text=text + (cutter.flush() if piece.finish is not None else ""))
    if cutter.stopped:
        await close_answer(response, pieces)


async def chat_chunks(
    vendor: str, pieces: AsyncIterator[Piece], tools: Collection[str]
) -> AsyncIterator[ChatCompletionResponseStreamChunk]:
    """The meta-reference chunk sequence from a vendor's pieces (text held back while it may become a
    call to one of `tools`, as ChatStream does); ProviderError if it never finishes."""
    chat = ChatStream(tools)
    yield chat.start()
    raw: list[str] = []
    calls: list[ToolCall] = []
    bad: list[str] = []
    stop: StopReason | None = None
    metrics: Metrics = msgspec.UNSET
    # aclosing: closing this stream early closes the vendor's pieces too (trio warns about open ones).
    async with contextlib.aclosing(pieces):  # type: ignore[type-var]
        async for piece in pieces:
            metrics = piece.metrics if piece.metrics is not msgspec.UNSET else metrics
            delta = piece.text
            for token in STOP_TOKENS:
                delta = delta.replace(token, "")
            if delta and not raw and delta.startswith(PYTHON_TAG.name):
                for chunk in chat.tool_call_started():
                    yield chunk
                raw.append(piece.text)
                delta = delta.removeprefix(PYTHON_TAG.name)
            elif piece.text:
                raw.append(piece.text)
            if delta:
                for chunk in chat.text(delta):
                    yield chunk
            calls += piece.calls
            bad += piece.bad_calls
            stop = piece.finish or stop
    if stop is None:
        raise ProviderError(f"{vendor}'s stream ended before the reply was complete.")
    message = vendor_message("".join(raw), stop, calls, tools=tools)
    for text in bad:
        failure = ToolCallDelta(content=text, parse_status=ToolCallParseStatus.failure)
        event = ChatCompletionResponseEvent(
            event_type=ChatCompletionResponseEventType.progress, delta=failure, stop_reason=stop
        )
        yield ChatCompletionResponseStreamChunk(event=event)
    *chunks, complete = chat.finish(message)
    for chunk in chunks:
        yield chunk
    yield msgspec.structs.replace(complete, metrics=metrics)


async def completion_chunks(vendor: str, pieces: AsyncIterator[Piece]) -> AsyncIterator[CompletionResponseStreamChunk]:
    """Completion chunks: each text piece, the stop reason (and the counts) on the last, sent once the
    vendor's stream ends (counts may come after the last text); ProviderError if it never finishes."""
    last: CompletionResponseStreamChunk | None = None
    metrics: Metrics = msgspec.UNSET
    async with contextlib.aclosing(pieces):  # type: ignore[type-var]
        async for piece in pieces:  # read to the end: the vendor ends the stream after the last piece
            metrics = piece.metrics if piece.metrics is not msgspec.UNSET else metrics
            if last is not None:
                continue
            if piece.finish is not None:
                last = CompletionResponseStreamChunk(delta=piece.text, stop_reason=piece.finish)
            elif piece.text:
                yield CompletionResponseStreamChunk(delta=piece.text)
    if last is None:
        raise ProviderError(f"{vendor}'s stream ended before the reply was complete.")
    yield msgspec.structs.replace(last, metrics=metrics)


class OpenStream(Generic[T]):
    """Chunks read from an open vendor answer; the end, an error or `aclose()` closes the answer."""

    def __init__(self, response: httpx.Response, chunks: AsyncIterator[T]) -> None:
        self._response = response
        self._chunks = chunks

    def __aiter__(self) -> OpenStream[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._chunks.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the answer and every reader of it (see `close_answer`)."""
        await close_answer(self._response, self._chunks)


async def close_answer(response: httpx.Response, reader: AsyncIterator[Any]) -> None:
    """Close the answer, then let every reader below fail on it and finish (a reader left
    suspended is a warning under trio, httpx's own included); quick, and shielded from cancel."""
    with anyio.CancelScope(shield=True):
        await response.aclose()
        try:
            async for _ in reader:
                pass
        except Exception:  # noqa: BLE001 -- the closed answer's read error, expected here
            pass
        await reader.aclose()  # type: ignore[attr-defined]


async def stream_lines(vendor: str, response: httpx.Response) -> AsyncIterator[str]:
    """The lines of a streamed answer; a connection that breaks off is a ProviderError."""
    import httpx

    try:
        async for line in response.aiter_lines():
            yield line
    except httpx.TransportError as e:
        raise ProviderError(f"{vendor}'s stream was cut midway: {e or type(e).__name__}") from None


async def drain(lines: AsyncIterator[str]) -> None:
    """Read to the end (the vendor closes after an error event), so every generator finishes."""
    try:
        async for _ in lines:
            pass
    except ProviderError:
        pass
