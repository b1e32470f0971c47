"""remote::fireworks against a loopback Fireworks API (OpenAI-style), replaying its sample answers."""

from __future__ import annotations

import pytest
from providers.fakes.openai_cases import *  # noqa: F403 -- the shared tests run for this vendor
from providers.fakes.openai_cases import Case

from llama_core.config import FireworksImplConfig
from llama_core.providers.inference.fireworks import FireworksInference

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def case() -> Case:
    # The 2024 config url has no /v1: the provider adds it.
    return Case(FireworksInference, FireworksImplConfig, "fireworks", "accounts/fireworks/models/llama-v3p1-8b-instruct", "", "call_8Yx5mQkPz1", ["The"])


@pytest.mark.parametrize(
    ("model", "fireworks_id"),
    [
        ("Llama3.1-70B-Instruct", "accounts/fireworks/models/llama-v3p1-70b-instruct"),
        ("Llama3.1-405B-Instruct:bf16-mp8", "accounts/fireworks/models/llama-v3p1-405b-instruct"),
        ("Meta-Llama3.1-8B-Instruct", "accounts/fireworks/models/llama-v3p1-8b-instruct"),
        ("Llama3.2-3B-Instruct", "accounts/fireworks/models/llama-v3p2-3b-instruct"),
        ("Llama3.3-70B-Instruct", "accounts/fireworks/models/llama-v3p3-70b-instruct"),
        ("Llama-Guard-3-8B", "accounts/fireworks/models/llama-guard-3-8b"),
    ],
    ids=lambda v: v,
)
def test_model_map(model: str, fireworks_id: str) -> None:
    assert FireworksInference(FireworksImplConfig(api_key="k")).vendor_model(model) == fireworks_id


def test_api_base_adds_v1_once() -> None:
    assert FireworksInference(FireworksImplConfig(api_key="k")).api_base == "https://api.fireworks.ai/inference/v1"
    url = "https://api.fireworks.ai/inference/v1/"
    assert FireworksInference(FireworksImplConfig(url=url, api_key="k")).api_base == "https://api.fireworks.ai/inference/v1"
