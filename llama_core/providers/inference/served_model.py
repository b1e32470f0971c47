"""Which model a self-hosted engine (vLLM, TGI) serves, and the request's model id mapped onto it.

An engine serves what it was started with (`vllm serve meta-llama/Llama-3.1-8B-Instruct`, TGI's
`--model-id`), under that name or the one `--served-model-name` gives. It says so itself: vLLM's
GET /v1/models (`id`, and `root`: the repo or path it loaded), TGI's GET /info (`model_id`).

A request names a model as anywhere else in the stack: a descriptor (`Llama3.1-8B-Instruct`), a
Hugging Face repo, an older name, or the engine's own name. It is sent as the served name when it
is that name or the same registry model (a checkpoint folder `/models/Llama-3.1-8B-Instruct`
counts by its last part); anything else is a 404 that says what the engine serves.

    served = [Served("llama-8b", root="meta-llama/Llama-3.1-8B-Instruct")]
    served_name("Llama3.1-8B-Instruct", served, "vLLM", url)  ->  "llama-8b"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llama_core.errors import ModelNotFoundError, NotFoundError, shown
from llama_core.models.registry import Model, resolve_model


@dataclass(frozen=True, slots=True)
class Served:
    """One model an engine serves: the name requests give it, and what it was loaded from."""

    name: str
    root: str | None = None

    def registry_model(self) -> Model | None:
        """The registry model this one is, by its name or what it was loaded from; None if not one of ours."""
        for text in filter(None, (self.name, self.root)):
            folder = text.rstrip("/").rsplit("/", 1)[-1]
            # A repo id, a checkpoint folder named after a descriptor, or one named after its repo.
            for candidate in (text, folder, f"meta-llama/{folder}"):
                try:
                    return resolve_model(candidate)
                except ModelNotFoundError:
                    pass
        return None

    def descriptor(self) -> str:
        """How /models/list shows it: the registry descriptor where it is one of ours, else its name."""
        model = self.registry_model()
        return model.descriptor if model is not None else self.name


def matches(model_id: str, served: Served) -> bool:
    """Whether a request for `model_id` is one for `served`."""
    if model_id in (served.name, served.root):
        return True
    try:
        wanted = resolve_model(model_id).core_model_id
    except ModelNotFoundError:
        return False
    model = served.registry_model()
    return model is not None and model.core_model_id == wanted


def served_name(model_id: str, served: Sequence[Served], engine: str, url: str) -> str:
    """The name to send `engine` for a request's `model_id`.

    Raises NotFoundError (404) naming what the engine at `url` serves when it is none of them.
    """
    for model in served:
        if matches(model_id, model):
            return model.name
    names = ", ".join(m.name if m.root in (None, m.name) else f"{m.name} ({m.root})" for m in served) or "nothing"
    raise NotFoundError(
        f"{engine} at {url} serves {names}, not '{shown(model_id)}': ask for that model, or start {engine} with this one."
    )
