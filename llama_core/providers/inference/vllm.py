"""`remote::vllm` inference: a vLLM server's OpenAI-compatible API (`vllm serve MODEL`, default http://localhost:8000).

    start            ->  GET  {url}/v1/models            what it serves (served_model.py maps names)
    chat_completion  ->  POST {url}/v1/chat/completions  messages, tools, sampling (SSE if stream)
    completion       ->  POST {url}/v1/completions       prompt, sampling (SSE if stream)
    embeddings       ->  POST {url}/v1/embeddings        (a local embedding model's name: answered here)

One vLLM server may span many GPUs and hosts (tensor and pipeline parallel, over Ray): to us it is
one URL. Tool calls come back as vLLM's parser wrote them (`--enable-auto-tool-choice
--tool-call-parser llama3_json`); without those flags vLLM refuses `tools`, and its 400 says so.
`api_token` is sent as a bearer token when set (`vllm serve --api-key`). Everything else, streams
and errors included, is llama_core.providers.inference.openai_compat's.
"""

from __future__ import annotations

from typing import Any

from llama_core.errors import ProviderError
from llama_core.providers.inference.self_hosted import SelfHostedInference
from llama_core.providers.inference.served_model import Served


class VLLMInference(SelfHostedInference):
    """apis.Inference served by a vLLM server. An async context manager: entering asks what it serves."""

    vendor = "vLLM"
    info_path = "/models"  # under api_base, {url}/v1
    start_hint = "start it with `vllm serve MODEL`"
    key_hint = "the api_token in the run config (vLLM's --api-key)"

    def parse_served(self, data: Any) -> list[Served]:
        """vLLM's /v1/models cards: `id` (the served name) and `root` (what it loaded)."""
        cards = data.get("data")
        if not isinstance(cards, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cards):
            raise ProviderError("vLLM's /v1/models answer has no list of models.")
        return [Served(c["id"], c.get("root") if isinstance(c.get("root"), str) else None) for c in cards]
