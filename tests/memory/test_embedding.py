"""The embedder against an independent reference: transformers with mean pooling and L2 norm."""

from __future__ import annotations

import numpy as np
import pytest

from llama_core import embedding
from llama_core.errors import NotFoundError

pytestmark = pytest.mark.anyio

TEXTS = ["How do I read a CSV file?", "The csv module implements classes to read and write tabular data.", "é ü 漢字"]


def reference_vectors(texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = embedding.available_models()[embedding.DEFAULT_MODEL]
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy()


async def test_vectors_equal_mean_pooled_transformers():
    emb = await embedding.embedder("sentence-transformers/all-MiniLM-L6-v2")
    assert emb is await embedding.embedder()  # one load per process, whatever the spelling
    got = await emb.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == (3, 384)
    want = reference_vectors(TEXTS)
    assert np.min(np.sum(got * want, axis=1)) >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


async def test_spans_cover_the_text_and_count_tokens():
    emb = await embedding.embedder()
    text = "Reading CSV files: csv.reader()."
    spans = emb.spans(text)
    assert [text[a:b] for a, b in spans] == ["Reading", "CS", "V", "files", ":", "cs", "v", ".", "reader", "(", ")", "."]
    assert emb.count_tokens([text]) == len(spans) + 2  # [CLS] and [SEP]


async def test_unknown_model_names_the_available(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_STACK_CONFIG_DIR", str(tmp_path))
    (tmp_path / "checkpoints" / "my-minilm").mkdir(parents=True)
    (tmp_path / "checkpoints" / "my-minilm" / "modules.json").write_text("[]")
    with pytest.raises(NotFoundError) as e:
        await embedding.embedder("all-MiniLM-L6")
    assert e.value.message == (
        "Unknown embedding model 'all-MiniLM-L6'. Did you mean 'all-MiniLM-L6-v2'? Available: all-MiniLM-L6-v2, "
        "my-minilm (a sentence-transformers folder in the server's checkpoints folder is one too)."
    )


async def test_a_long_encode_lets_a_waiting_query_in_between_slices(monkeypatch):
    # An insert's thousands of chunks once held the model for the whole encode, and every vector query
    # of the stack waited behind it (a minute for a 1.5 MB document on two cores).
    import threading
    import time

    import anyio.to_thread

    emb = await embedding.embedder()
    monkeypatch.setattr(embedding, "ENCODE_SLICE", 4)
    encode = emb.model.encode
    batches: list[list[str]] = []
    answered: list[np.ndarray] = []

    def query() -> None:
        answered.append(emb.encode_sync(["the query"]))

    def recording(texts, **kwargs):  # sentence-transformers' encode, noting each call's texts
        batches.append(list(texts))
        if len(batches) == 1:  # the long encode's first slice: queue the query behind it
            threading.Thread(target=query).start()
            deadline = time.monotonic() + 60
            while emb._lock.queued < 2:
                assert time.monotonic() < deadline, "the query never queued for the lock"
                time.sleep(0.01)
        return encode(texts, **kwargs)

    monkeypatch.setattr(emb.model, "encode", recording)
    texts = [f"document chunk number {i}" for i in range(9)]
    got = await anyio.to_thread.run_sync(emb.encode_sync, texts)
    assert [len(b) for b in batches[:3]] == [4, 1, 4] and batches[1] == ["the query"]
    assert [len(b) for b in batches] == [4, 1, 4, 1]
    monkeypatch.setattr(emb.model, "encode", encode)
    assert got.shape == (9, 384) and got.flags["C_CONTIGUOUS"]
    assert np.min(np.sum(got * emb.encode_sync(texts), axis=1)) >= 0.9999
    assert answered and answered[0].shape == (1, 384)
