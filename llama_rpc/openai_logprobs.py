"""/v1 log-probabilities that join to exactly the returned text, as OpenAI and vLLM give them.

The core gives an entry for every generated token, the end-of-turn token (`<|eot_id|>`,
`<|im_end|>`) and a stop sequence's tokens included; the text a client gets has neither. `Joined`
follows one choice's text piece by piece (streamed or whole) and lets through the entries whose
bytes lie inside the text sent so far: an entry past it waits for the next piece, and at the end
the entries past the text are dropped (a token that straddles the text's end keeps the part
inside it).
"""

from __future__ import annotations

from llama_core.types import TokenLogProbs


def entry_bytes(lp: TokenLogProbs) -> bytes:
    """The generated token's bytes (a provider without `bytes` gives its text)."""
    if lp.bytes is not None:
        return bytes(lp.bytes)
    token = lp.token if lp.token is not None else next(iter(lp.logprobs_by_token), "")
    return token.encode()


class Joined:
    """One choice's entries, kept to its text: `take(piece, entries)` per piece, `last=True` at the end."""

    def __init__(self) -> None:
        self.text = bytearray()  # the choice's text sent so far
        self.offset = 0  # how much of it the entries let through cover
        self.held: list[TokenLogProbs] = []

    def take(self, piece: str, entries: list[TokenLogProbs] | None, last: bool = False) -> list[TokenLogProbs] | None:
        """The entries to send with `piece` (None when there are none)."""
        self.text += piece.encode()
        waiting, self.held, out = [*self.held, *(entries or [])], [], []
        for i, lp in enumerate(waiting):
            data = entry_bytes(lp)
            if self.offset + len(data) <= len(self.text):
                out.append(lp)
                self.offset += len(data)
            elif not last:
                self.held = waiting[i:]  # its text has not been sent yet
                break
            else:
                inside = bytes(self.text[self.offset :])
                if inside and data.startswith(inside):  # straddles the end of the text (a stop sequence cut it)
                    text = inside.decode(errors="replace")
                    out.append(
                        TokenLogProbs(
                            logprobs_by_token={text: next(iter(lp.logprobs_by_token.values()), 0.0) if lp.logprob is None else lp.logprob},
                            token=text, logprob=lp.logprob, bytes=list(inside), top_logprobs=lp.top_logprobs,
                        )
                    )  # fmt: skip
                    self.offset += len(inside)
                break  # the rest (the end-of-turn token, a stop sequence's tokens) is not in the text
        return out or None


def joined(text: str, entries: list[TokenLogProbs] | None) -> list[TokenLogProbs] | None:
    """The entries of a whole reply `text` that join to it."""
    return Joined().take(text, entries, last=True) if entries is not None else None
