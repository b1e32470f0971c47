"""remote::together against a loopback Together API (OpenAI-style), replaying its sample answers."""

from __future__ import annotations

import pytest
from providers.fakes import Reply, sample
from providers.fakes.openai_cases import *  # noqa: F403 -- the shared tests run for this vendor
from providers.fakes.openai_cases import Case, FakeVendor

from llama_core.config import TogetherImplConfig
from llama_core.providers.inference.openai_compat import OpenAIStyleInference
from llama_core.providers.inference.together import TogetherInference
from llama_core.types.inference import EmbeddingsRequest

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def case() -> Case:
    return Case(TogetherInference, TogetherImplConfig, "together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "/v1", "call_q1w2e3r4t5y6u7i8o9p0",
                ["The", " capital of France is"])


@pytest.mark.parametrize(
    ("model", "together_id"),
    [
        ("Llama3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"),
        ("Llama3.1-405B-Instruct", "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo"),
        ("Llama3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct-Turbo"),
        ("Llama3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("Llama-Guard-3-8B", "meta-llama/Meta-Llama-Guard-3-8B"),
    ],
    ids=lambda v: v,
)
def test_model_map(model: str, together_id: str) -> None:
    assert TogetherInference(TogetherImplConfig(api_key="k")).vendor_model(model) == together_id


async def test_embeddings(provider: OpenAIStyleInference, vendor: FakeVendor) -> None:
    vendor.then("/v1/embeddings", Reply(body=sample("together/embeddings.json")))
    request = EmbeddingsRequest(model="togethercomputer/m2-bert-80M-8k-retrieval", contents=["a", "b"])
    response = await provider.embeddings(request)
    assert response.embeddings == [[0.2633975, 0.13856211, -0.0094281, 0.5], [-0.1, 0.2, 0.3, -0.4]]
    assert vendor.requests[0].json == {"model": "togethercomputer/m2-bert-80M-8k-retrieval", "input": ["a", "b"]}
