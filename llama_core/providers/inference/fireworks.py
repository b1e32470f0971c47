"""`remote::fireworks` inference: Fireworks AI's OpenAI-style API (https://api.fireworks.ai/inference/v1).

The API key is the config's `api_key`, or the request's `{"fireworks_api_key": ...}` provider data.
Everything else is llama_core.providers.inference.openai_compat.
"""

from __future__ import annotations

from llama_core.config import FireworksImplConfig
from llama_core.providers.inference.openai_compat import OpenAIStyleInference

_FW = "accounts/fireworks/models/"

# core model id -> Fireworks model id.
FIREWORKS_MODELS: dict[str, str] = {
    "Llama3.1-8B-Instruct": _FW + "llama-v3p1-8b-instruct",
    "Llama3.1-70B-Instruct": _FW + "llama-v3p1-70b-instruct",
    "Llama3.1-405B-Instruct": _FW + "llama-v3p1-405b-instruct",
    "Llama3.2-1B-Instruct": _FW + "llama-v3p2-1b-instruct",
    "Llama3.2-3B-Instruct": _FW + "llama-v3p2-3b-instruct",
    "Llama3.2-11B-Vision-Instruct": _FW + "llama-v3p2-11b-vision-instruct",
    "Llama3.2-90B-Vision-Instruct": _FW + "llama-v3p2-90b-vision-instruct",
    "Llama3.3-70B-Instruct": _FW + "llama-v3p3-70b-instruct",
    "Llama-Guard-3-8B": _FW + "llama-guard-3-8b",
    "Llama-Guard-3-11B-Vision": _FW + "llama-guard-3-11b-vision",
}


class FireworksInference(OpenAIStyleInference):
    """apis.Inference served by Fireworks AI."""

    vendor = "Fireworks"
    key_name = "fireworks_api_key"
    model_ids = FIREWORKS_MODELS

    def __init__(self, config: FireworksImplConfig) -> None:
        super().__init__(config)
