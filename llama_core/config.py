"""Build and run configs: the TOML file `llama stack build` writes and `llama stack run` reads.

One file per build, `~/.llama/builds/<distribution>/<image type>/<name>.toml`: who built it, where
its environment is, and one `[providers.<api>]` table per API holding `provider_id` and that
provider's config fields (the original's `providers.inference = {provider_id: ..., model: ...}`).
Files are written with mode 0600, since provider tables may hold API keys.

    write_build_config    `llama stack build`: a build's file, keeping an earlier build's answers
    resolve_run_config    `CONFIG.toml | DIST --name NAME`, as `llama stack run` and `python -m llama_rpc` take it
    load_run_config       read and check one file

Also here: the config Structs of the providers the reference lists that have no module of their
own yet (safety, memory, agents, remote vendors). A provider module that lands may define its own
and point its row in llama_core.distributions at it.

Non-goals: no YAML, no config versions or migrations, no environment-variable interpolation.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec

from llama_core.errors import InvalidRequestError, NotFoundError
from llama_core.paths import builds_dir
from llama_core.types._base import Base

ImageType = Literal["venv", "conda", "container"]
IMAGE_TYPES: tuple[str, ...] = ("venv", "conda", "container")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


# -- provider configs without a module of their own yet (fields as the reference's, §9.2) --------


class RemoteProviderConfig(Base, kw_only=True):
    """Another Llama Stack server that serves this API."""

    url: str = "http://localhost:5000"

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        self.url = self.url.rstrip("/")


class RemoteStackConfig(RemoteProviderConfig, kw_only=True):
    """Another llama-toolchain server; `api_key` if it was started with one (`--api-key`)."""

    api_key: str | None = None


class OllamaImplConfig(RemoteProviderConfig, kw_only=True):
    url: str = "http://localhost:11434"


class FireworksImplConfig(RemoteProviderConfig, kw_only=True):
    url: str = "https://api.fireworks.ai/inference"
    api_key: str


class TogetherImplConfig(RemoteProviderConfig, kw_only=True):
    url: str = "https://api.together.xyz/v1"
    api_key: str


class VLLMImplConfig(RemoteProviderConfig, kw_only=True):
    """A vLLM OpenAI-compatible server (`vllm serve MODEL`); `api_token` if it runs with `--api-key`."""

    url: str = "http://localhost:8000"
    api_token: str | None = None


class TGIImplConfig(RemoteProviderConfig, kw_only=True):
    """A Text Generation Inference server; `api_token` if something in front of it asks for a bearer token."""

    url: str = "http://localhost:8080"
    api_token: str | None = None


# The Llama Guard models the llama_guard shield runs (on meta-reference's engine): Llama Guard 3, text only.
LLAMA_GUARD_MODELS = ("Llama-Guard-3-1B", "Llama-Guard-3-8B", "Llama-Guard-3-8B:int8")


class LlamaGuardShieldConfig(Base, kw_only=True):
    model: str = "Llama-Guard-3-8B"  # any spelling of one of LLAMA_GUARD_MODELS; kept as its descriptor
    excluded_categories: list[str] = []  # hazard codes "S1".."S14"
    disable_input_check: bool = False
    disable_output_check: bool = False

    def __post_init__(self) -> None:
        from llama_core.models.registry import resolve_model

        try:
            self.model = resolve_model(self.model).descriptor
        except NotFoundError:
            pass  # named in the error below
        if self.model not in LLAMA_GUARD_MODELS:
            raise ValueError(f"model must be a Llama Guard 3 model ({', '.join(LLAMA_GUARD_MODELS)}), got '{self.model[:80]}'")
        bad = [c for c in self.excluded_categories if not re.fullmatch(r"S(?:[1-9]|1[0-4])", c)]
        if bad:
            raise ValueError(f"excluded_categories are codes S1..S14, got {', '.join(bad)}")


class PromptGuardShieldConfig(Base, kw_only=True):
    # configure asks the reference's one question (model); threshold comes from --set or the file.
    unasked: ClassVar[tuple[str, ...]] = ("threshold",)

    model: str = "Prompt-Guard-86M"
    # A message is a jailbreak when P(malicious) is above this, an injection when P(embedded) +
    # P(malicious) is (llama_core/providers/safety/prompt_guard.py).
    threshold: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold is a probability between 0 and 1 (both excluded), got {self.threshold}")


class SafetyConfig(Base, kw_only=True):
    llama_guard_shield: LlamaGuardShieldConfig | None = None
    prompt_guard_shield: PromptGuardShieldConfig | None = None


class AgenticSystemConfig(Base, kw_only=True):
    """The meta-reference agentic system (llama_core/providers/agents).

    Keys: `brave_search_api_key`, `wolfram_api_key` (a request's X-LlamaStack-ProviderData may send
    its own under the same names). `brave_search_url`, `wolfram_alpha_url`: the vendors' API roots.
    """

    brave_search_api_key: str | None = None
    wolfram_api_key: str | None = None
    brave_search_url: str = "https://api.search.brave.com"
    wolfram_alpha_url: str = "https://api.wolframalpha.com"
    # configure asks only the reference's two questions (the keys); the URLs are set with --set or in the file.
    unasked: ClassVar[tuple[str, ...]] = ("brave_search_url", "wolfram_alpha_url")

    def __post_init__(self) -> None:
        for name in ("brave_search_url", "wolfram_alpha_url"):
            url = getattr(self, name)
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must start with http:// or https://, got {url!r}")
            setattr(self, name, url.rstrip("/"))


class FaissImplConfig(Base, kw_only=True):
    """The faiss memory provider (llama_core/providers/memory).

    `storage_dir`: where banks live (default ~/.llama/runtime/memory). `hnsw_min_chunks`: a vector
    bank holding at least this many chunks is searched with HNSW (approximate, fast on big banks)
    instead of exactly; None keeps every bank exact. `max_document_chars`: the most text one
    document may hold (a longer one is a 413).
    """

    # Not asked by `llama stack configure` (the reference asks nothing for memory): set with --set or in the file.
    unasked: ClassVar[tuple[str, ...]] = ("storage_dir", "hnsw_min_chunks", "max_document_chars")

    storage_dir: str | None = None
    hnsw_min_chunks: int | None = None
    max_document_chars: int = 4_000_000

    def __post_init__(self) -> None:
        if self.hnsw_min_chunks is not None and self.hnsw_min_chunks < 1:
            raise ValueError(f"hnsw_min_chunks must be at least 1, got {self.hnsw_min_chunks}")
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars must be at least 1, got {self.max_document_chars}")


class PGVectorImplConfig(Base, kw_only=True):
    """The remote::pgvector memory provider (llama_core/providers/memory/pgvector.py): a PostgreSQL
    database with the pgvector extension. `password` is a secret: the run config holding it is
    written with mode 0600, and it is never logged or repeated in an error. `max_document_chars`:
    as faiss's (a longer document is a 413)."""

    unasked: ClassVar[tuple[str, ...]] = ("max_document_chars",)

    host: str = "localhost"
    port: int = 5432
    db: str = "llama"
    user: str = "llama"
    password: str | None = None
    max_document_chars: int = 4_000_000

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars must be at least 1, got {self.max_document_chars}")


class ModelsConfig(Base, kw_only=True):
    """The builtin models provider has nothing to configure."""


# -- the build / run config ------------------------------------------------------------------------


class RunConfig(Base, kw_only=True):
    """One build of a distribution. `providers[api]` is `{"provider_id": ..., <config fields>}`."""

    name: str
    distribution_id: str
    image_type: ImageType = "venv"
    # venv directory, conda env name or container image tag; None: the environment running llama.
    environment: str | None = None
    built_at: str | None = None
    # Host / Origin names the HTTP server answers besides this machine's loopback (llama_rpc/origin.py).
    allowed_hosts: list[str] | None = None
    # Origins (scheme://host[:port], or "*") whose web pages may call the HTTP server (llama_rpc/cors.py).
    cors_origins: list[str] | None = None
    providers: dict[str, dict[str, Any]] = {}


def check_name(name: str) -> str:
    """`name` if it is a safe build name (a file name); `::` becomes `-` as in the original."""
    name = name.replace("::", "-")
    if not NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid build name '{name}': use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit.",
            field="name",
        )
    return name


def run_config_path(distribution_id: str, name: str, image_type: str = "venv") -> Path:
    """`~/.llama/builds/<distribution>/<image type>/<name>.toml`."""
    return builds_dir() / distribution_id / image_type / f"{check_name(name)}.toml"


def find_run_config(distribution_id: str, name: str, image_type: str | None = None) -> Path:
    """The existing config of this build (any image type unless given); NotFoundError otherwise."""
    types = (image_type,) if image_type else IMAGE_TYPES
    paths = [run_config_path(distribution_id, name, t) for t in types]
    for path in paths:
        if path.is_file():
            return path
    raise NotFoundError(
        f"Could not find {display_path(paths[0])}. Please run `llama stack build {distribution_id} --name {name}` first."
    )


def resolve_run_config(config: str | None, name: str | None, image_type: str | None = None) -> Path | None:
    """The run config that a front end's `[CONFIG.toml | DIST --name NAME]` arguments name.

    None when both are absent (the default stack). `config` is a path when it ends in `.toml`,
    holds a path separator or names a file; else a distribution id, whose build `name` (of
    `image_type`, or any) must exist. The file itself is not read here (load_run_config does).
    Raises InvalidRequestError (field "name") for --name without a distribution or a
    distribution without --name; NotFoundError for an unknown distribution or build.
    """
    from llama_core.distributions import distribution

    if config is None:
        if name is not None:
            raise InvalidRequestError("--name needs a distribution before it: DIST --name NAME.", field="name")
        return None
    if config.endswith(".toml") or os.sep in config or Path(config).is_file():
        return Path(config).expanduser()
    dist = distribution(config)  # unknown -> NotFoundError with suggestions
    if name is None:
        raise InvalidRequestError(
            f"Which build of {dist.distribution_id}? Add --name NAME (see `llama stack build {dist.distribution_id} --name NAME`).",
            field="name",
        )
    return find_run_config(dist.distribution_id, name, image_type)


def write_build_config(distribution_id: str, name: str, image_type: ImageType, environment: str | None) -> Path:
    """Write the config of a new build of `distribution_id` (save_run_config) and return its path.

    One `[providers.<api>]` table per API the distribution serves, in API order. A table that an
    earlier build of the same name filled in is kept while its provider is unchanged, so that
    rebuilding does not lose answers. Raises NotFoundError for an unknown distribution,
    InvalidRequestError for a bad build name or an unreadable earlier file.
    """
    from llama_core.distributions import Api, distribution

    dist = distribution(distribution_id)
    name = check_name(name)
    path = run_config_path(dist.distribution_id, name, image_type)
    previous = load_run_config(path).providers if path.is_file() else {}
    providers = {}
    for api in (a for a in Api if a in dist.provider_map):  # API order; earlier answers kept unless changed
        provider_id = dist.provider_map[api]
        kept = previous.get(str(api), {})
        providers[str(api)] = kept if kept.get("provider_id") == provider_id else {"provider_id": provider_id}
    config = RunConfig(name=name, distribution_id=dist.distribution_id, image_type=image_type,
                       environment=environment, built_at=now(), providers=providers)  # fmt: skip
    return save_run_config(config, path)


def load_run_config(path: str | Path) -> RunConfig:
    """Read and check a run config TOML; one-line errors for a missing, unparsable or wrong file."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"File {display_path(path)} does not exist. Did you run `llama stack build`?") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InvalidRequestError(f"Could not read {display_path(path)}: {e}") from None
    try:
        return msgspec.convert(data, RunConfig)
    except msgspec.ValidationError as e:
        raise InvalidRequestError(f"{display_path(path)} is not a valid run config: {e}", field=error_field(e)) from None


def save_run_config(config: RunConfig, path: str | Path) -> Path:
    """Write `config` as TOML, atomically and with mode 0600 (provider tables may hold secrets)."""
    import tomli_w

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by `llama stack build` / `llama stack configure`; rerun configure to change it.\n"
    text += tomli_w.dumps(without_none(msgspec.to_builtins(config)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def now() -> str:
    """The current UTC time as the configs record it: 2026-11-28T03:04:05Z."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_none(value: Any) -> Any:
    """`value` with None dropped from every mapping (TOML has no null; absent means default)."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    return value


def error_field(error: msgspec.ValidationError, prefix: str = "") -> str | None:
    """The dotted field path of a msgspec error ("... - at `$.a.b[0]`" -> "prefix.a.b[0]")."""
    match = re.search(r"at `\$(.*)`$", str(error))
    if not match:
        return prefix or None
    return (prefix + match.group(1)).lstrip(".") or None


def display_path(path: Path) -> str:
    """`path` with the home directory shown as `~`, as the reference prints it."""
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)
