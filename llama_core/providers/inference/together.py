"""`remote::together` inference: Together AI's OpenAI-style API (https://api.together.xyz/v1).

The API key is the config's `api_key`, or the request's `{"together_api_key": ...}` provider data.
Everything else is llama_core.providers.inference.openai_compat.
"""

from __future__ import annotations

from llama_core.config import TogetherImplConfig
from llama_core.providers.inference.openai_compat import OpenAIStyleInference

# core model id -> Together model id.
TOGETHER_MODELS: dict[str, str] = {
    "Llama3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
    "Llama3.1-70B-Instruct": "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
    "Llama3.1-405B-Instruct": "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
    "Llama3.2-3B-Instruct": "meta-llama/Llama-3.2-3B-Instruct-Turbo",
    "Llama3.2-11B-Vision-Instruct": "meta-llama/Llama-3.2-11B-Vision-Instruct-Turbo",
    "Llama3.2-90B-Vision-Instruct": "meta-llama/Llama-3.2-90B-Vision-Instruct-Turbo",
    "Llama3.3-70B-Instruct": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "Llama-Guard-3-8B": "meta-llama/Meta-Llama-Guard-3-8B",
    "Llama-Guard-3-11B-Vision": "meta-llama/Llama-Guard-3-11B-Vision-Turbo",
}


class TogetherInference(OpenAIStyleInference):
    """apis.Inference served by Together AI."""

    vendor = "Together"
    key_name = "together_api_key"
    model_ids = TOGETHER_MODELS

    def __init__(self, config: TogetherImplConfig) -> None:
        super().__init__(config)
