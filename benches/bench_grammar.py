"""Per-token cost of a JSON-schema token mask on CPU: llguidance, xgrammar and outlines-core, each on
our real tokenizers (the demo model SmolLM2's Hugging Face tokenizer.json, 49k ids, and Llama 3's
tiktoken tokenizer.model from the llama-models wheel, 128k ids), one thread.

For each library and tokenizer: the one-time cost of reading the tokenizer, the cost of compiling the
schema, then a walk through a valid document of that schema token by token (its ids as the
tokenizer encodes it), timing per token what constrained decoding adds to a decode step: compute the
allowed-token mask and advance the matcher by the chosen id (mask_advance_us: the library's own
share), and the same with the mask applied to a row of logits (with_apply_us). Best of --rounds
walks (the machines are shared; the minimum is the signal). One result line per pair.

    python benches/bench_grammar.py [--rounds 5] [--libs llguidance,xgrammar,outlines-core]

Needs the three libraries (pip install llguidance xgrammar outlines-core); only the one we chose
(llguidance) is a dependency of the project. This script chose it (see the module docstring of
llama_core/engine/grammar.py for the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "email": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "email", "tags", "address", "active"],
    "additionalProperties": False,
}
DOCUMENT = json.dumps(
    {
        "name": "Ada Lovelace",
        "age": 36,
        "email": "ada@example.org",
        "tags": ["mathematician", "writer", "analyst of the engine"],
        "address": {"city": "London", "zip": "W1"},
        "active": True,
    }
)


def demo_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "llama-toolchain" / "SmolLM2-135M-Instruct"


def llama3_model() -> Path:
    import llama_models

    return Path(llama_models.__file__).parent / "llama3" / "api" / "tokenizer.model"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def apply_bitmask(logits: torch.Tensor, bitmask: np.ndarray) -> None:
    """What the engine does with a mask: ids whose bit is 0 get -inf (one row of logits, in place)."""
    allowed = np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: logits.shape[0]]
    logits.masked_fill_(torch.from_numpy(allowed) == 0, float("-inf"))


# ---- the three libraries: (setup(tokenizer) -> state, compile(state) -> matcher factory, walk) -------


def llguidance_setup(tok: Any) -> Any:
    import llguidance

    if hasattr(tok, "plain"):  # HFTokenizer: the library reads tokenizer.json itself
        return llguidance.LLTokenizer(tok.model.to_str(), eos_token=tok.eos_id)
    enc = tok.model
    return llguidance.LLTokenizer.from_tiktoken(  # type: ignore[attr-defined]
        encoder=enc._mergeable_ranks, special_tokens=enc._special_tokens, pattern=enc._pat_str,
        eos_token=tok.eot_id, n_vocab=tok.vocab_size,
    )


def llguidance_compile(ll_tok: Any) -> Callable[[], Any]:
    import llguidance

    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(SCHEMA))
    llguidance.LLMatcher(ll_tok, grammar)  # compiled lazily: build one to pay the start-up here
    return lambda: llguidance.LLMatcher(ll_tok, grammar)


def llguidance_step(matcher: Any, mask: np.ndarray, logits: torch.Tensor, token: int) -> None:
    matcher.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
    if logits is not None:
        apply_bitmask(logits, mask)
    assert matcher.consume_token(token), matcher.get_error()


def xgrammar_setup(tok: Any) -> Any:
    import xgrammar as xgr

    if hasattr(tok, "plain"):
        from transformers import PreTrainedTokenizerFast

        hf = PreTrainedTokenizerFast(tokenizer_object=tok.model, eos_token=tok.id_to_piece(tok.eos_id))
        info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=tok.vocab_size, stop_token_ids=[tok.eos_id])
    else:  # raw bytes; special tokens empty, so that no grammar ever allows them
        vocab = [b"" if tok.is_special(i) else tok.model.decode_single_token_bytes(i) for i in range(tok.vocab_size)]
        info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=tok.vocab_size, stop_token_ids=[tok.eot_id])
    return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)


def xgrammar_compile(compiler: Any) -> Callable[[], Any]:
    import xgrammar as xgr

    compiled = compiler.compile_json_schema(json.dumps(SCHEMA), any_whitespace=False)
    return lambda: xgr.GrammarMatcher(compiled)


def xgrammar_step(matcher: Any, mask: np.ndarray, logits: torch.Tensor, token: int) -> None:
    t = torch.from_numpy(mask)[None]
    matcher.fill_next_token_bitmask(t)
    if logits is not None:
        apply_bitmask(logits, mask)
    assert matcher.accept_token(token)


def outlines_setup(tok: Any) -> Any:
    import outlines_core

    ids: dict[bytes, list[int]] = {}
    for i, raw in enumerate(token_bytes(tok)):
        if raw and i != tok.eos_id and i != tok.eot_id and not tok.is_special(i):
            ids.setdefault(raw, []).append(i)
    return outlines_core.Vocabulary(tok.eot_id, ids)


def outlines_compile(vocab: Any) -> Callable[[], Any]:
    import outlines_core

    index = outlines_core.Index(outlines_core.json_schema.build_regex_from_schema(json.dumps(SCHEMA)), vocab)
    return lambda: outlines_core.Guide(index)


def outlines_step(guide: Any, mask: np.ndarray, logits: torch.Tensor, token: int) -> None:
    guide.write_mask_into(mask.ctypes.data, mask.size, 4)
    if logits is not None:
        apply_bitmask(logits, mask)
    guide.advance(token)


LIBS: dict[str, tuple[Callable, Callable, Callable]] = {
    "llguidance": (llguidance_setup, llguidance_compile, llguidance_step),
    "xgrammar": (xgrammar_setup, xgrammar_compile, xgrammar_step),
    "outlines-core": (outlines_setup, outlines_compile, outlines_step),
}


def token_bytes(tok: Any) -> list[bytes]:
    """Each id's raw bytes (outlines-core takes the vocabulary so)."""
    if not hasattr(tok, "plain"):
        return [b"" if tok.is_special(i) else tok.model.decode_single_token_bytes(i) for i in range(tok.vocab_size)]
    # GPT-2 byte-level BPE: each byte is written as one printable character (bytes_to_unicode).
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    out = [b""] * tok.vocab_size
    for piece, i in tok.model.get_vocab(with_added_tokens=False).items():
        out[i] = bytes(chars[c] for c in piece)
    return out


def bench(lib: str, name: str, tok: Any, rounds: int) -> dict[str, Any]:
    setup, compile_, step = LIBS[lib]
    state, t_setup = timed(lambda: setup(tok))
    new_matcher, t_compile = timed(lambda: compile_(state))
    tokens = tok.encode(DOCUMENT)
    mask = np.zeros((tok.vocab_size + 31) // 32, dtype=np.int32)
    logits = torch.randn(tok.vocab_size)

    def walk(apply: bool) -> float:
        best = float("inf")
        for _ in range(rounds):
            matcher = new_matcher()
            rows = [logits.clone() if apply else None for _ in tokens]
            start = time.perf_counter()
            for row, token in zip(rows, tokens):
                step(matcher, mask, row, token)
            best = min(best, (time.perf_counter() - start) / len(tokens))
        return best

    # The library's share (mask and advance) apart from the mask's application to the logits.
    t_library, t_all = walk(apply=False), walk(apply=True)
    return {"lib": lib, "tokenizer": name, "vocab": tok.vocab_size, "tokens": len(tokens),
            "setup_s": round(t_setup, 3), "compile_s": round(t_compile, 3),
            "mask_advance_us": round(t_library * 1e6, 1), "with_apply_us": round(t_all * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--libs", default=",".join(LIBS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from llama_core.tokenizer import Tokenizer

    tokenizers = {"smollm2-hf": Tokenizer.from_file(demo_dir()), "llama3-tiktoken": Tokenizer.from_file(llama3_model())}
    for lib in args.libs.split(","):
        for name, tok in tokenizers.items():
            print(json.dumps(bench(lib, name, tok, args.rounds)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
