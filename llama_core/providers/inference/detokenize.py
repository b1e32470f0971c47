"""Incremental detokenization: text deltas from a growing list of token ids.

Decoding one token at a time breaks characters that span tokens (UTF-8 bytes, merged pieces), so
each step decodes a short window and emits only what is new and complete. O(1) per token.
"""

from __future__ import annotations

from llama_core.tokenizer import Tokenizer

_INCOMPLETE = "\ufffd"  # what a decode of a partial UTF-8 sequence ends with


class IncrementalDecoder:
    """Feed token ids one by one; get back the text each one completes (often '', sometimes several chars)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # window start: text before it is already emitted and final
        self._read = 0  # ids before this have been turned into text

    def push(self, token: int) -> str:
        """The new text that `token` completes."""
        self.ids.append(token)
        done = self.tokenizer.decode(self.ids[self._prefix : self._read])
        text = self.tokenizer.decode(self.ids[self._prefix :])
        if len(text) <= len(done) or text.endswith(_INCOMPLETE):
            return ""  # wait for the rest of the character
        self._prefix, self._read = self._read, len(self.ids)
        return text[len(done) :]
