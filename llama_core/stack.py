"""A Stack: the providers of one run config, started in dependency order.

    async with Stack.from_config("~/.llama/builds/local/venv/my.toml") as stack:
        reply = await stack.inference.chat_completion(request)

`from_config` reads and checks the whole config first (unknown provider ids and bad fields fail
before anything starts). Entering starts each provider after the APIs it depends on: the class is
called with its decoded config Struct (and the Stack, if its row names dependencies), then entered
if it is an async context manager. Exiting closes them in reverse. Works under asyncio and trio.

An API whose provider is not written yet, or which the config does not list, is unserved: its
attribute is None and `stack.api(name)` raises NotConfiguredError, which transports answer with 501.

`health()` asks each running provider how it stands (GET /health answers it).

Non-goals: no routing between several providers of one API, no hot reload.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from llama_core import paths
from llama_core.config import RunConfig, display_path, error_field, load_run_config
from llama_core.distributions import (
    IMPLICIT_PROVIDERS,
    Api,
    ProviderSpec,
    distribution,
    import_path,
    provider_spec,
)
from llama_core.distributions import api as parse_api
from llama_core.errors import InvalidRequestError, NotConfiguredError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    """One API's provider as the config names it, its config decoded."""

    spec: ProviderSpec
    config: Any  # the provider's config Struct


# The guard checkpoints `llama stack run` turns shields on for, in order of preference (smallest first).
LLAMA_GUARDS = ("Llama-Guard-3-1B", "Llama-Guard-3-8B")
PROMPT_GUARD = "Prompt-Guard-86M"

# What makes a folder a usable checkpoint: one of the layouts, each a list of requirements that
# each need one of their names (globs) present.
Layout = tuple[tuple[str, ...], ...]
_TOKENIZERS = ("tokenizer.model", "tokenizer.json", "original/tokenizer.model", "original/tokenizer.json")
LLAMA_LAYOUTS: tuple[Layout, ...] = (  # what the engine loads (engine/checkpoint.py, engine/hf.py)
    (("params.json",), ("consolidated.*.pth",), _TOKENIZERS),
    (("original/params.json",), ("original/consolidated.*.pth",), _TOKENIZERS),
    (("config.json",), ("*.safetensors",), _TOKENIZERS),
)
CLASSIFIER_LAYOUTS: tuple[Layout, ...] = (  # what transformers' from_pretrained loads
    (("config.json",), ("*.safetensors", "pytorch_model.bin"), ("tokenizer.json", "spm.model")),
)


def has_checkpoint(folder: Path, layouts: tuple[Layout, ...]) -> bool:
    """Whether `folder` holds the files of one of `layouts` (names only: nothing is read)."""
    return folder.is_dir() and any(all(any(any(folder.glob(n)) for n in need) for need in layout) for layout in layouts)


def default_run_config() -> RunConfig:
    """`local` with every provider at its defaults (the demo model): what `llama stack run` runs bare.

    Safety is on: its provider always serves code_scanner_guard (it needs no model), llama_guard
    when a Llama Guard 3 checkpoint is downloaded (LLAMA_GUARDS order; inference then serves it
    too, beside the demo model) and the Prompt Guard shields when Prompt-Guard-86M is.
    """
    local = distribution("local")
    providers: dict[str, dict[str, Any]] = {str(a): {"provider_id": pid} for a, pid in local.providers}
    guard = next((m for m in LLAMA_GUARDS if has_checkpoint(paths.model_checkpoint_dir(m), LLAMA_LAYOUTS)), None)
    if guard is not None:
        providers["safety"]["llama_guard_shield"] = {"model": guard}
        providers["inference"]["extra_models"] = [{"model": guard}]
    if has_checkpoint(paths.model_checkpoint_dir(PROMPT_GUARD), CLASSIFIER_LAYOUTS):
        providers["safety"]["prompt_guard_shield"] = {"model": PROMPT_GUARD}
    return RunConfig(name="default", distribution_id=local.distribution_id, providers=providers)


def decode_provider_config(spec: ProviderSpec, section: dict[str, Any]) -> Any:
    """The config Struct of `spec` from its `[providers.<api>]` table (minus `provider_id`)."""
    cls = load(spec, spec.config_class)
    fields = {k: v for k, v in section.items() if k != "provider_id"}
    try:
        return msgspec.convert(fields, cls)
    except msgspec.ValidationError as e:
        prefix = f"providers.{spec.api}"
        raise InvalidRequestError(
            f"Invalid config for {spec.api} provider {spec.provider_id}: {e}", field=error_field(e, prefix)
        ) from None


def load(spec: ProviderSpec, path: str | type) -> Any:
    """Import a provider's class by path; a missing module is a one-line NotConfiguredError."""
    try:
        return import_path(path)
    except ModuleNotFoundError as e:
        what = f"The {spec.api} provider {spec.provider_id}"
        if (e.name or "").partition(".")[0] in ("llama_core", "llama_cli", "llama_rpc"):
            raise NotConfiguredError(f"{what} is missing from this installation ({e.name}).") from None
        packages = " ".join(spec.pip_packages) or e.name
        raise NotConfiguredError(
            f"{what} needs the Python package '{e.name}', which is not installed here: "
            f"build an environment with `llama stack build` or run `pip install {packages}`."
        ) from None


def plan(config: RunConfig) -> dict[Api, Planned]:
    """Each configured API's provider and decoded config, dependencies first."""
    sections = {parse_api(name): section for name, section in config.providers.items()}
    for implicit, provider_id in IMPLICIT_PROVIDERS.items():
        sections.setdefault(implicit, {"provider_id": provider_id})
    planned: dict[Api, Planned] = {}
    for api, section in sections.items():
        provider_id = section.get("provider_id")
        if not isinstance(provider_id, str):
            raise InvalidRequestError(
                f"The [providers.{api}] table has no provider_id.", field=f"providers.{api}.provider_id"
            )
        spec = provider_spec(api, provider_id)
        planned[api] = Planned(spec, decode_provider_config(spec, section))
    return {api: planned[api] for api in dependency_order({a: p.spec.api_dependencies for a, p in planned.items()})}


async def api_health(providers: Mapping[Any, Any]) -> dict[str, Any]:
    """{"status": "OK" | "Error", "apis": {api: {"status": "ok" | ..., ...}}} of running providers.

    A provider reports itself with `async def health() -> dict` whose "status" is "ok" when it can
    serve (meta-reference: "starting", "restarting" or "down" otherwise; cheap, no network call). One
    without `health` is "ok". The whole is "OK" only when every API is "ok".
    """
    apis: dict[str, Any] = {}
    for api, impl in providers.items():
        probe = getattr(impl, "health", None)
        try:
            apis[str(api)] = await probe() if probe is not None else {"status": "ok"}
        except Exception:  # a health check must answer: this API is not ok, the reason goes to the log
            log.exception("the %s provider's health check failed", api)
            apis[str(api)] = {"status": "error"}
    healthy = all(report.get("status") == "ok" for report in apis.values())
    return {"status": "OK" if healthy else "Error", "apis": apis}


def dependency_order(deps: dict[Api, tuple[Api, ...]]) -> list[Api]:
    """The APIs of `deps` so that each comes after those it depends on (absent ones are ignored)."""
    order: list[Api] = []
    visiting: set[Api] = set()

    def visit(api: Api) -> None:
        if api in order:
            return
        if api in visiting:
            raise InvalidRequestError(f"The providers' dependencies form a cycle through {api}.")
        visiting.add(api)
        for dep in deps[api]:
            if dep in deps:
                visit(dep)
        visiting.discard(api)
        order.append(api)

    for api in deps:
        visit(api)
    return order


class Stack:
    """The providers of one run config. Use `async with Stack.from_config(...) as stack:`."""

    inference: Any
    safety: Any
    memory: Any
    agentic_system: Any
    models: Any

    def __init__(self, config: RunConfig, source: Path | None = None) -> None:
        self.config = config
        self.source = source  # the TOML file it came from, if any
        self.planned: dict[Api, Planned] = plan(config)
        self.impls: dict[Api, Any] = {}
        self._exit: contextlib.AsyncExitStack | None = None
        for api in Api:
            setattr(self, api.value, None)

    @classmethod
    def from_config(cls, source: str | Path | RunConfig) -> Stack:
        """A Stack for a run config or the path of its TOML file (read and checked now)."""
        if isinstance(source, RunConfig):
            return cls(source)
        path = Path(source).expanduser()
        return cls(load_run_config(path), path)

    @classmethod
    def default(cls) -> Stack:
        """The Stack of `default_run_config()`: `local` on the demo model, with the guards downloaded."""
        return cls(default_run_config())

    @property
    def distribution_id(self) -> str:
        return self.config.distribution_id

    @property
    def served(self) -> dict[Api, str]:
        """API -> provider id of every API with a running provider, in start order."""
        return {api: self.planned[api].spec.provider_id for api in self.impls}

    def provider_config(self, api: Api | str) -> Any:
        """The decoded config Struct of `api`'s provider, or None when the config lists none."""
        planned = self.planned.get(parse_api(str(api)))
        return planned.config if planned else None

    def unserved_reason(self, api: Api | str) -> str | None:
        """Why `api` has no provider (one line), or None when it has one."""
        api = parse_api(str(api))
        if api in self.impls:
            return None
        head = f"The {api} API has no provider in this stack (distribution {self.distribution_id})"
        planned = self.planned.get(api)
        if planned is None:
            where = display_path(self.source) if self.source else "the run config"
            return f"{head}; {where} lists none (see `llama stack list-providers {api}`)."
        if planned.spec.implementation is None:
            return f"{head}; its provider {planned.spec.provider_id} is not implemented in this version of llama-toolchain."
        return f"{head}; the stack is not started (use `async with Stack.from_config(...)`)."

    def api(self, name: Api | str) -> Any:
        """The provider serving API `name`; NotConfiguredError (501) when it is unserved."""
        reason = self.unserved_reason(name)
        if reason is not None:
            raise NotConfiguredError(reason)
        return self.impls[parse_api(str(name))]

    async def health(self) -> dict[str, Any]:
        """Each served API's state, as `api_health`; every API "down" while the stack is not started."""
        if self._exit is None:
            down = [api for api, planned in self.planned.items() if planned.spec.implementation is not None]
            return {"status": "Error", "apis": {str(api): {"status": "down"} for api in down}}
        return await api_health(self.impls)

    async def __aenter__(self) -> Stack:
        if self._exit is not None:
            raise RuntimeError("This Stack is already started.")
        self._exit = contextlib.AsyncExitStack()
        try:
            for api, planned in self.planned.items():
                impl = await self._start(planned)
                if impl is not None:
                    self.impls[api] = impl
                    setattr(self, api.value, impl)
        except BaseException:
            await self._close(*sys.exc_info())
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close(*exc_info)

    async def _start(self, planned: Planned) -> Any:
        spec = planned.spec
        if spec.implementation is None:
            log.info("%s: provider %s is not implemented yet; its routes answer 501", spec.api, spec.provider_id)
            return None
        cls = load(spec, spec.implementation)
        impl = cls(planned.config, self) if spec.api_dependencies else cls(planned.config)
        if hasattr(impl, "__aenter__"):
            assert self._exit is not None
            entered = await self._exit.enter_async_context(impl)
            return impl if entered is None else entered
        return impl

    async def _close(self, *exc_info: object) -> None:
        # Providers close in reverse start order (the exit stack's), then the attributes go None.
        exit_stack, self._exit = self._exit, None
        try:
            if exit_stack is not None:
                await exit_stack.__aexit__(*exc_info) if exc_info else await exit_stack.aclose()
        finally:
            for api in list(self.impls):
                setattr(self, api.value, None)
            self.impls.clear()
