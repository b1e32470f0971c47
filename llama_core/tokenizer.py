"""Tokenizers behind one interface: Llama 3's tiktoken `tokenizer.model`, and Hugging Face `tokenizer.json`.

`Tokenizer.from_file(path)` picks the kind by file name (a checkpoint directory works too) and loads
each file once per process. Both kinds share the interface the prompt formats and the engine use:
`encode(text, bos=, eos=)`, `decode(ids)`, `id_to_piece(id)` (one token's text, for logprobs),
`token_bytes(id)` (its exact bytes, for OpenAI's logprobs),
`special_tokens`, `bos_id`, `eos_id`, `eot_id`, `eom_id`, `python_tag_id`, `stop_tokens`, `vocab_size`.

Llama 3 (`Llama3Tokenizer`): 128,000 BPE ranks from the file, then 256 special tokens with ids
128000-128255, named as llama-models 0.0.35+ names them (128011 is `<|image|>`, and the reserved run
128012-128255 is `<|reserved_special_token_2|>`..`_245|>`). Text that merely looks like a special
token (a user typing "<|eot_id|>") is encoded as plain text; headers are built from ids, never parsed.

Hugging Face (`HFTokenizer`): any `tokenizer.json` (the demo model SmolLM2's), through the `tokenizers`
package, imported only when such a file is loaded. BOS/EOS come from a `tokenizer_config.json` beside it
when there is one, else from well-known token names.

Non-goals: SentencePiece `.model` files (Llama 2), training, and chat templates (see llama_core.prompt).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llama_core.errors import CheckpointError

# The 12 named Llama 3 special tokens, ids 128000..128011; the rest of the 256 are reserved.
LLAMA3_NAMED_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",  # end of message: a tool call waits for its result
    "<|eot_id|>",  # end of turn
    "<|python_tag|>",
    "<|image|>",
)
LLAMA3_NUM_SPECIAL_TOKENS = 256
LLAMA3_SPECIAL_TOKENS = LLAMA3_NAMED_SPECIAL_TOKENS + tuple(
    f"<|reserved_special_token_{2 + i}|>"
    for i in range(LLAMA3_NUM_SPECIAL_TOKENS - len(LLAMA3_NAMED_SPECIAL_TOKENS))
)

# Pre-tokenizer split, identical in every llama-models version.
LLAMA3_PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# tiktoken panics on very long inputs and long runs of (non-)whitespace (openai/tiktoken#195), so text
# is encoded in windows of at most 400k chars, each cut so no run exceeds 25k chars. The cut points are
# the reference's, so long inputs give the same ids as llama-models.
MAX_ENCODE_CHARS = 400_000
MAX_RUN_CHARS = 25_000

_RUN = re.compile(r"\s+|\S+")
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the character that stands for each byte in a token's name
    (printable Latin-1 for itself, the rest shifted to U+0100 and up, in byte order)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    shifted = iter(range(256, 512))
    return {chr(b if b in printable else next(shifted)): b for b in range(256)}


_BYTE_LEVEL = _byte_level_alphabet()

# Names other checkpoints use for BOS / end-of-turn, most specific first (HF tokenizers only).
_BOS_NAMES = ("<|begin_of_text|>", "<s>", "<|im_start|>", "<|endoftext|>")
_EOS_NAMES = ("<|eot_id|>", "<|im_end|>", "</s>", "<|end_of_text|>", "<|endoftext|>")
_STOP_NAMES = ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "</s>", "<|endoftext|>")


def split_long_runs(text: str, max_run: int = MAX_RUN_CHARS) -> Iterator[str]:
    """Cut `text` so no piece holds more than `max_run` consecutive whitespace or non-whitespace chars.

    A run longer than `max_run` is cut every `max_run` chars from its start; nothing else is cut.
    """
    start = 0
    for run in _RUN.finditer(text):
        for cut in range(run.start() + max_run, run.end(), max_run):
            yield text[start:cut]
            start = cut
    yield text[start:]


class Tokenizer:
    """The interface both tokenizer kinds implement; `Tokenizer.from_file` builds the right one."""

    special_tokens: dict[str, int]
    bos_id: int
    eos_id: int
    eot_id: int
    eom_id: int | None
    python_tag_id: int | None
    pad_id: int | None
    stop_tokens: list[int]
    vocab_size: int

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        """Load `tokenizer.model` (Llama 3, tiktoken) or `tokenizer.json` (Hugging Face), once per file.

        `path` may also be a checkpoint directory holding one of them (or holding `original/`).
        """
        file = _find_tokenizer_file(Path(path))
        stat = file.stat()
        # Keyed on size and mtime too, so a re-downloaded file is not served stale.
        return _load(str(file.resolve()), stat.st_size, stat.st_mtime_ns)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, allow_special: bool = False) -> list[int]:
        """Token ids of `text`, optionally wrapped in BOS/EOS.

        With `allow_special=False` (the default) special-token text is encoded as ordinary text.
        """
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; special tokens appear as their names."""
        raise NotImplementedError

    def id_to_piece(self, token_id: int) -> str:
        """The text of one token (invalid UTF-8 fragments replaced), e.g. for logprobs."""
        raise NotImplementedError

    def token_bytes(self, token_id: int) -> bytes:
        """The exact bytes of one token (part of a UTF-8 character, for some); a special token's name."""
        raise NotImplementedError

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    @functools.cached_property
    def _special_ids(self) -> frozenset[int]:
        return frozenset(self.special_tokens.values())


class Llama3Tokenizer(Tokenizer):
    """Llama 3's tiktoken BPE (`tokenizer.model`) plus its 256 special tokens."""

    def __init__(self, mergeable_ranks: dict[bytes, int], name: str = "tokenizer.model") -> None:
        import tiktoken

        n_base = len(mergeable_ranks)
        self.special_tokens = {token: n_base + i for i, token in enumerate(LLAMA3_SPECIAL_TOKENS)}
        self.model = tiktoken.Encoding(
            name=name,
            pat_str=LLAMA3_PAT_STR,
            mergeable_ranks=mergeable_ranks,
            special_tokens=self.special_tokens,
        )
        self.vocab_size = n_base + len(LLAMA3_SPECIAL_TOKENS)  # 128256
        self.bos_id = self.special_tokens["<|begin_of_text|>"]
        self.eos_id = self.special_tokens["<|end_of_text|>"]
        self.eot_id = self.special_tokens["<|eot_id|>"]
        self.eom_id = self.special_tokens["<|eom_id|>"]
        self.python_tag_id = self.special_tokens["<|python_tag|>"]
        self.pad_id = self.special_tokens["<|finetune_right_pad_id|>"]
        self.stop_tokens = [self.eos_id, self.eom_id, self.eot_id]

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, allow_special: bool = False) -> list[int]:
        allowed: Any = "all" if allow_special else set()
        ids = [self.bos_id] if bos else []
        for i in range(0, len(text), MAX_ENCODE_CHARS):
            for piece in split_long_runs(text[i : i + MAX_ENCODE_CHARS]):
                # disallowed_special=(): special-token text is plain text, never an error.
                ids.extend(self.model.encode(piece, allowed_special=allowed, disallowed_special=()))
        if eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.model.decode(list(ids))

    def id_to_piece(self, token_id: int) -> str:
        return self.model.decode_single_token_bytes(token_id).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self.model.decode_single_token_bytes(token_id)


class HFTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer (from `tokenizer.json`) behind the same interface."""

    def __init__(self, tokenizer_json: str, config: dict[str, Any] | None = None) -> None:
        from tokenizers import Tokenizer as _HF

        # Two instances: one reads special-token text as plain text (the default), one as specials
        # (for rendered chat templates). `encode_special_tokens` is per instance, so no shared toggle.
        self.plain = _HF.from_str(tokenizer_json)
        self.plain.encode_special_tokens = True
        self.model = _HF.from_str(tokenizer_json)
        self.special_tokens = {
            added.content: token_id
            for token_id, added in sorted(self.model.get_added_tokens_decoder().items())
            if added.special
        }
        self.vocab_size = self.model.get_vocab_size(with_added_tokens=True)
        config = config or {}
        bos = _token_name(config.get("bos_token")) or _first_present(_BOS_NAMES, self.special_tokens)
        eos = _token_name(config.get("eos_token")) or _first_present(_EOS_NAMES, self.special_tokens)
        if eos is None or self.model.token_to_id(eos) is None:
            raise CheckpointError(
                "tokenizer.json names no end-of-sequence token; add a tokenizer_config.json with eos_token"
            )
        self.eos_id = self.eot_id = self.model.token_to_id(eos)
        bos_id = self.model.token_to_id(bos) if bos else None
        self.bos_id = self.eos_id if bos_id is None else bos_id
        self.add_bos = bool(config.get("add_bos_token", False))
        pad = _token_name(config.get("pad_token"))
        self.pad_id = self.model.token_to_id(pad) if pad else None
        self.eom_id = None
        self.python_tag_id = None
        stops = [self.eos_id] + [self.special_tokens[n] for n in _STOP_NAMES if n in self.special_tokens]
        self.stop_tokens = list(dict.fromkeys(stops))

    def encode(self, text: str, *, bos: bool = False, eos: bool = False, allow_special: bool = False) -> list[int]:
        model = self.model if allow_special else self.plain
        # encode_batch lets go of the GIL while it works (encode holds it, 1.3 s per MB): a long
        # prompt tokenized in a worker thread then leaves the event loop free.
        ids = model.encode_batch([text], add_special_tokens=False)[0].ids
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        return self.model.decode(list(ids), skip_special_tokens=False)

    def id_to_piece(self, token_id: int) -> str:
        return self.model.decode([token_id], skip_special_tokens=False)

    def token_bytes(self, token_id: int) -> bytes:
        from tokenizers import decoders

        piece = self.model.id_to_token(token_id) or ""
        if not self.is_special(token_id):
            if isinstance(self.model.decoder, decoders.ByteLevel) and all(c in _BYTE_LEVEL for c in piece):
                return bytes(_BYTE_LEVEL[c] for c in piece)  # GPT-2 style: one printable character per byte
            if fallback := _BYTE_FALLBACK.fullmatch(piece):
                return bytes([int(fallback[1], 16)])  # SentencePiece style byte fallback
        return self.id_to_piece(token_id).encode()


def load_tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    """Parse a tiktoken BPE file: one `base64(token_bytes) rank` per line, blank lines skipped."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:  # binascii.Error is a ValueError too
            raise ValueError(f"not a tiktoken BPE file (line {number}); SentencePiece models are not supported")
    return ranks


def _find_tokenizer_file(path: Path) -> Path:
    if path.is_dir():
        for candidate in ("tokenizer.model", "tokenizer.json", "original/tokenizer.model"):
            if (path / candidate).is_file():
                return path / candidate
        raise CheckpointError(f"No tokenizer.model or tokenizer.json in {path}")
    if not path.is_file():
        raise CheckpointError(f"Tokenizer file not found: {path}")
    return path


@functools.lru_cache(maxsize=8)
def _load(path: str, size: int, mtime_ns: int) -> Tokenizer:
    file = Path(path)
    try:
        if file.suffix == ".json":
            config_file = file.with_name("tokenizer_config.json")
            config = json.loads(config_file.read_text()) if config_file.is_file() else None
            return HFTokenizer(file.read_text(encoding="utf-8"), config)
        return Llama3Tokenizer(load_tiktoken_ranks(file.read_bytes()), name=file.name)
    except CheckpointError:
        raise
    except Exception as e:  # a truncated or foreign file: one line, not a traceback
        raise CheckpointError(f"Cannot read tokenizer {file}: {type(e).__name__}: {e}") from e


def _token_name(value: Any) -> str | None:
    # tokenizer_config.json writes special tokens as "<s>" or {"content": "<s>", ...}
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _first_present(names: Sequence[str], vocab: dict[str, int]) -> str | None:
    return next((n for n in names if n in vocab), None)
