"""Long prompts are tokenized off the event loop: the tokenizers let other threads run meanwhile.

meta-reference tokenizes in a worker thread; that only frees the event loop if the tokenizer lets
go of the GIL while it works (a 10 MB prompt held every request, /health included, for 12.7 s).
Checked by counting a second thread's steps while one long encode runs, not by timing it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from llama_core.tokenizer import Tokenizer

TEXT = "hello world, this is a long prompt. " * 40_000  # 1.4 MB: a second or so of encoding


def steps_during(work: object) -> tuple[int, object]:
    """How many steps a second thread took while `work()` ran in this one, and what it returned."""
    steps, running = [0], threading.Event()

    def count() -> None:
        running.set()
        while running.is_set():
            steps[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=count, daemon=True)
    thread.start()
    running.wait()
    before = steps[0]
    result = work()  # type: ignore[operator]
    during = steps[0] - before
    running.clear()
    thread.join()
    return during, result


@pytest.mark.parametrize("kind", ["llama3", "hf"])
def test_a_long_encode_lets_other_threads_run(kind: str, tmp_path: Path) -> None:
    if kind == "llama3":
        from engine.tiny_checkpoint import llama3_tokenizer_model

        tok = Tokenizer.from_file(llama3_tokenizer_model())
    else:
        from core.test_tokenizer import make_hf_tokenizer_json

        tok = Tokenizer.from_file(make_hf_tokenizer_json(tmp_path))
    during, ids = steps_during(lambda: tok.encode(TEXT))
    assert tok.decode(ids) == TEXT
    # Held, the GIL lets the counter step only at the edges of the encode; released, it steps
    # about once per millisecond throughout.
    assert during > 20
