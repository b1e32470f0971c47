"""Stop sequences: cut generated text before the first one that appears, in time linear in the text.

    cutter = StopCutter(request.sampling_params.stop)
    for piece in pieces:               # the text as it is generated
        send(cutter.push(piece))       # what is safe to send now ('' while a stop may be starting)
        if cutter.stopped:
            break                      # stop generating: the rest would be cut anyway
    else:
        send(cutter.flush())           # the held-back tail, once no more text comes

Every inference provider runs its output through this, so `stop` means the same whatever serves a
request: meta-reference's worker ends the engine sequence on the token that completes a stop
(StopWatch: the batch slot is free at once, no step is spent past it) and the provider cuts the
text; the remote vendors are sent `stop` too and are cut here all the same.

The cut is at the stop sequence that *ends* first, then the one that starts first: what an engine
that checks after every token answers, so the result does not depend on how the text was split
into pieces. Each push scans only the new text plus a tail shorter than the longest stop (with
str.find, in C), and looks for a partly written stop in that tail alone: a push of n characters
costs O(n + k * L) for k stops of at most L characters (types.common caps both), so a whole text
costs time linear in its length, however it is split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_core.tokenizer import Tokenizer


def _partial(text: str, stop: str) -> int:
    """The length of the longest end of `text` that `stop` begins with (shorter than `stop`)."""
    i = text.find(stop[0], max(0, len(text) - len(stop) + 1))
    while i >= 0:
        if stop.startswith(text[i:]):
            return len(text) - i
        i = text.find(stop[0], i + 1)
    return 0


class StopCutter:
    """Cuts streamed text before the first stop sequence, holding back what may be the start of one.

    `stops` are non-empty strings. After a stop is seen, `stopped` is true and pushes return ''.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.stopped = False
        self._keep = max((len(s) for s in self.stops), default=1) - 1  # the tail a stop may span into
        self._tail = ""  # the last `_keep` characters pushed
        self._held = 0  # how many characters at the end of `_tail` are not sent yet

    def push(self, text: str) -> str:
        """The text that is safe to send now; sets `stopped` once a stop sequence is complete."""
        if self.stopped or not text or not self.stops:
            return "" if self.stopped else text
        region = self._tail + text
        sent = len(self._tail) - self._held  # region[:sent] is already out
        first = min(((i + len(s), i) for s in self.stops if (i := region.find(s)) >= 0), default=None)
        if first is not None:
            self.stopped, self._tail, self._held = True, "", 0
            return region[sent : first[1]]  # a stop starts in the held text or later, never before
        hold = max(_partial(region, s) for s in self.stops)
        self._tail = region[max(0, len(region) - self._keep) :]
        self._held = hold
        return region[sent : len(region) - hold]

    def flush(self) -> str:
        """The held-back text, once no more text will come (it did not become a stop)."""
        out = self._tail[len(self._tail) - self._held :] if self._held else ""
        self._held = 0
        return out


def cut_text(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """(`text` up to its first stop sequence, whether one was found): the cut of a whole answer."""
    cutter = StopCutter(stops)
    out = cutter.push(text)
    return (out, True) if cutter.stopped else (out + cutter.flush(), False)


class StopWatch:
    """Token ids in, whether their text holds a stop sequence yet: how the engine's worker ends a
    sequence at a stop (generation.Batch), on the very token that completes it, so no step is spent
    past it. Fed the ids the provider decodes (stop tokens aside), it matches where the provider's
    own StopCutter over the same text cuts."""

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str]) -> None:
        from llama_core.providers.inference.detokenize import IncrementalDecoder

        self.decoder = IncrementalDecoder(tokenizer)
        self.cutter = StopCutter(stops)

    def __call__(self, token: int) -> bool:
        self.cutter.push(self.decoder.push(token))
        return self.cutter.stopped
