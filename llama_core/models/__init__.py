"""The model registry (one data table) and recommended sampling parameters.

`resolve_model(id)` finds a SKU by descriptor, Hugging Face repo or an older name; `all_models()`
lists them. No torch here: `llama model list` reads this and nothing heavier.

Non-goals: no registry plugins and no remote catalogue; a checkpoint's own params.json wins over
the table when the engine loads it.
"""

from llama_core.models.download_info import MetaNetInfo, meta_net_info
from llama_core.models.registry import (
    ARCH_ARGS,
    MODELS,
    HardwareRequirements,
    Model,
    ModelFamily,
    QuantizationFormat,
    all_models,
    closest_descriptors,
    resolve_model,
)
from llama_core.models.sampling import SAMPLING_SETS, as_sampling_params

__all__ = [
    "ARCH_ARGS",
    "MODELS",
    "SAMPLING_SETS",
    "HardwareRequirements",
    "MetaNetInfo",
    "Model",
    "ModelFamily",
    "QuantizationFormat",
    "all_models",
    "as_sampling_params",
    "closest_descriptors",
    "meta_net_info",
    "resolve_model",
]
