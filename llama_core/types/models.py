"""Models wire types: what /models/list and /models/get answer.

A plain record of one registry row plus the provider serving it. The registry table itself lives in
llama_core/models/; a server turns its rows into `Model`s.
"""

from __future__ import annotations

from typing import Any

from llama_core.types._base import Base
from llama_core.types.common import SamplingParams


class HardwareRequirements(Base):
    memory_gb_per_gpu: int
    gpu_count: int


class Model(Base, kw_only=True):
    """One model SKU. `descriptor` is `<core_model_id>[:<variant>]`; `arch_args` is its params.json."""

    descriptor: str
    core_model_id: str
    huggingface_repo: str | None = None
    description: str = ""
    max_seq_length: int
    arch_args: dict[str, Any] = {}
    recommended_sampling_params: SamplingParams | None = None
    quantization_format: str = "bf16"
    pth_file_count: int = 1
    hardware_requirements: HardwareRequirements | None = None
    provider: str | None = None  # the provider serving it in this stack; None from the bare registry


class ModelsListRequest(Base):
    """GET /models/list (no parameters)."""


class ModelsGetRequest(Base):
    """GET /models/get; `core_model_id` may be a descriptor or a Hugging Face repo."""

    core_model_id: str
