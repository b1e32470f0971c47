"""The `builtin` Models provider: /models/list and /models/get over the registry.

It reports what this stack serves: the model its inference provider is configured with, as the
registry describes it, tagged with that provider's id. A model the registry does not know (a
vendor's own name) is still listed, with what the config says about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_core.config import ModelsConfig
from llama_core.distributions import Api
from llama_core.errors import ModelNotFoundError, NotFoundError, shown
from llama_core.models import registry
from llama_core.types.models import HardwareRequirements, Model, ModelsGetRequest, ModelsListRequest

if TYPE_CHECKING:
    from llama_core.stack import Stack


def wire_model(m: registry.Model, provider: str | None) -> Model:
    """The /models record of registry row `m`, served by `provider`."""
    hw = m.hardware_requirements
    return Model(
        descriptor=m.descriptor,
        core_model_id=m.core_model_id,
        huggingface_repo=m.huggingface_repo,
        description=m.description,
        max_seq_length=m.context_length,
        arch_args=dict(m.arch_args),
        recommended_sampling_params=m.recommended_sampling_params,
        quantization_format=str(m.quantization_format),
        pth_file_count=m.pth_file_count,
        hardware_requirements=HardwareRequirements(memory_gb_per_gpu=hw.memory_gb_per_gpu, gpu_count=hw.gpu_count),
        provider=provider,
    )


class ModelsProvider:
    """apis.Models for one Stack: the models its running inference provider serves."""

    def __init__(self, config: ModelsConfig, stack: Stack) -> None:
        self.config = config
        self.stack = stack

    async def served(self) -> list[Model]:
        """The models served right now (none while inference is unserved).

        An inference provider with `served_models()` says which (Ollama's pulled tags, a vendor's
        table, an upstream stack's list); otherwise it serves the one model its config names.
        """
        inference = self.stack.inference
        if inference is None:
            return []
        provider = self.stack.served.get(Api.inference)
        inference_config = self.stack.provider_config(Api.inference)
        served_models = getattr(inference, "served_models", None)
        if served_models is not None:
            model_ids = list(await served_models())
        else:
            model_id = getattr(inference_config, "model", None)
            model_ids = [model_id] if isinstance(model_id, str) else []
        seq_len = getattr(inference_config, "max_seq_len", 0)
        return [self._record(model_id, provider, seq_len) for model_id in model_ids]

    @staticmethod
    def _record(model_id: str, provider: str | None, seq_len: int) -> Model:
        try:
            return wire_model(registry.resolve_model(model_id), provider)
        except ModelNotFoundError:  # a vendor's own name: listed with what we know of it
            return Model(descriptor=model_id, core_model_id=model_id, max_seq_length=seq_len, provider=provider)

    async def list_models(self, request: ModelsListRequest) -> list[Model]:
        """Every model this stack serves."""
        return await self.served()

    async def get_model(self, request: ModelsGetRequest) -> Model:
        """The served model named by descriptor, older name or Hugging Face repo; 404 otherwise."""
        served = await self.served()
        wanted = request.core_model_id
        try:
            descriptor = registry.resolve_model(wanted).descriptor
        except ModelNotFoundError:
            descriptor = wanted  # a vendor's own name is matched as is
        for model in served:
            if model.descriptor == descriptor:
                return model
        names = ", ".join(m.descriptor for m in served) or "none"
        raise NotFoundError(f"Model '{shown(wanted)}' is not served by this stack; it serves: {names}.")
