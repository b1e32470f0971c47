"""`llama stack`: list distributions, APIs and providers; build and configure a distribution.

`llama stack run` lives in llama_cli/stack_run.py (the server's side) and is registered at the end
of this file, lazily like every command.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Annotated, Literal

from cyclopts import App, Parameter

from llama_cli import output

app = App(name="stack", help="Operations for the Llama Stack / Distributions: list, build, configure, run.")

ImageType = Literal["venv", "conda", "container"]
Name = Annotated[str, Parameter(name=["--name", "-n"], help="Name of the build (a file name).")]
Yes = Annotated[bool, Parameter(name=["--yes", "-y"], negative=(), help="No prompts: keep existing values, else defaults.")]
Sets = Annotated[
    tuple[str, ...],
    Parameter(name="--set", negative=(), help="API.FIELD=VALUE answered ahead of the prompts (repeatable)."),
]


@app.command(name="list-distributions")
def list_distributions() -> None:
    """Show the available Llama Stack distributions."""
    import json

    from llama_core.distributions import DISTRIBUTIONS

    rows = [(d.distribution_id, json.dumps(d.provider_map, indent=2), d.description) for d in DISTRIBUTIONS]
    output.console().print(output.grid(("Distribution ID", "Providers", "Description"), rows))


@app.command(name="list-apis")
def list_apis() -> None:
    """List the APIs a stack serves."""
    from llama_core.distributions import Api

    output.console().print(output.grid(("API",), [(a.value,) for a in Api]))


@app.command(name="list-providers")
def list_providers(api: Annotated[str, Parameter(help="The API: inference, safety, agentic_system, memory, models.")]) -> None:
    """Show the providers of one API and the pip packages each needs."""
    from llama_core.distributions import api as parse_api
    from llama_core.distributions import providers_for

    rows = [(p.provider_id, ",".join(p.pip_packages)) for p in providers_for(parse_api(api))]
    output.console().print(output.grid(("Provider ID", "PIP Package Dependencies"), rows))


@app.command
def build(
    distribution: Annotated[str, Parameter(help="Distribution ID (see `llama stack list-distributions`).")],
    *,
    name: Name,
    image_type: Annotated[ImageType, Parameter(help="venv, conda or container.")] = "venv",
    use_current_env: Annotated[
        bool, Parameter(negative=(), help="Install nothing: run in the environment running llama (offline use, tests).")
    ] = False,
    system_site_packages: Annotated[
        bool, Parameter(negative=(), help="The new venv also sees the packages installed where llama runs.")
    ] = False,
    no_deps: Annotated[bool, Parameter(negative=(), help="pip --no-deps: install only the listed packages.")] = False,
    yes: Yes = False,
    set_: Sets = (),
) -> None:
    """Build a distribution's environment, write its TOML config, then configure it."""
    from llama_cli import stack_build
    from llama_cli.configure import run_configure
    from llama_core.config import check_name, write_build_config
    from llama_core.distributions import pip_packages, provider_spec
    from llama_core.distributions import distribution as find_distribution

    dist = find_distribution(distribution)
    name = check_name(name)
    specs = [provider_spec(api, pid) for api, pid in dist.providers]
    # Only the providers that exist here are worth installing.
    packages = pip_packages([s for s in specs if s.implementation is not None])
    if use_current_env:
        python, environment = [sys.executable], sys.prefix
        print(f"Using the current environment ({environment}). Configuring build...")
    elif image_type == "venv":
        python, environment = stack_build.build_venv(dist.distribution_id, name, packages, system_site_packages, no_deps)
    elif image_type == "conda":
        python, environment = stack_build.build_conda(name, packages, no_deps)
    else:
        python, environment = [sys.executable], stack_build.build_container(dist.distribution_id, name, packages)
    if not use_current_env:
        print(f"Successfully set up {image_type} environment {environment}. Configuring build...", flush=True)

    path = write_build_config(dist.distribution_id, name, image_type, environment)

    if python == [sys.executable]:  # the current environment (or the host, for a container)
        run_configure(path, set_, yes)
    else:  # inside the new environment, which also proves it works
        argv = stack_build.configure_argv(python, dist.distribution_id, name, image_type, yes, set_)
        stack_build.run(argv, "configure the build")


@app.command
def configure(
    distribution: Annotated[str, Parameter(help="Distribution ID of the build.")],
    *,
    name: Name,
    image_type: Annotated[ImageType | None, Parameter(help="Image type of the build (default: the one that exists).")] = None,
    yes: Yes = False,
    set_: Sets = (),
) -> None:
    """(Re)configure a build's providers: prompts for every field, existing values as defaults."""
    from llama_cli.configure import run_configure
    from llama_core.config import find_run_config
    from llama_core.distributions import distribution as find_distribution

    dist = find_distribution(distribution)
    run_configure(find_run_config(dist.distribution_id, name, image_type), set_, yes)


# `llama stack run` is written beside this file; register it once it is there.
if importlib.util.find_spec("llama_cli.stack_run") is not None:
    app.command("llama_cli.stack_run:run", name="run", help="Start the server of a built distribution (or of `local` with defaults).")
    app.command("llama_cli.stack_worker:worker", name="worker", help="Run this host's share of a model split over several hosts.")
