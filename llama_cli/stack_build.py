"""The environments `llama stack build` creates: a venv, a conda env or a container image.

Each holds this package and the pip packages of the distribution's implemented providers, and then
runs `llama stack configure` inside itself, so a broken environment shows at build time. Commands
are built as argv lists by small functions (tests read them) and run with inherited stdio, so pip's
output and configure's prompts reach the user.

Offline: `--system-site-packages` lets a new venv see what the running environment has installed,
and `--no-deps` stops pip resolving dependencies, so nothing already present is downloaded.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from llama_core.config import display_path
from llama_core.errors import LlamaError
from llama_core.paths import builds_dir

SOURCE_PATHS = ("pyproject.toml", "README.md", "llama_core", "llama_cli", "llama_rpc")
CONTAINER_BASE = "python:3.11-slim"


def source_root() -> Path | None:
    """The llama-toolchain checkout this code runs from, or None when installed from a wheel."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "llama-toolchain"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def package_requirement() -> str:
    """What pip installs for "this package" when there is no checkout: this exact version."""
    from importlib.metadata import version

    return f"llama-toolchain=={version('llama-toolchain')}"


def run(argv: Sequence[str], what: str) -> None:
    """Run `argv` with the terminal attached; a failure is one line naming `what`."""
    print(f"$ {' '.join(argv)}", flush=True)
    try:
        done = subprocess.run(list(argv), check=False)
    except OSError as e:
        raise LlamaError(f"Could not {what}: {e}.") from None
    if done.returncode != 0:
        raise LlamaError(f"Could not {what}: `{argv[0]}` exited with status {done.returncode} (its output is above).")


def stage_source(dest: Path) -> Path:
    """A clean copy of the checkout's packaged files in `dest` (no caches, no stale build/)."""
    root = source_root()
    assert root is not None
    for rel in SOURCE_PATHS:
        src = root / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        elif src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def build_wheel(dest: Path) -> Path:
    """A wheel of the checkout, built offline with this environment's setuptools from a clean copy."""
    src = stage_source(dest / "src")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), str(src)],
        "build the llama-toolchain wheel")  # fmt: skip
    wheels = sorted(dest.glob("llama_toolchain-*.whl"))
    if not wheels:
        raise LlamaError(f"Could not build the llama-toolchain wheel: pip wrote none to {dest}.")
    return wheels[-1]


def pip_install(python: Sequence[str], requirements: Sequence[str], no_deps: bool) -> list[str]:
    """The argv that installs `requirements` with the environment's own pip."""
    return [*python, "-m", "pip", "install", *(["--no-deps"] if no_deps else []), *requirements]


def configure_argv(python: Sequence[str], distribution_id: str, name: str, image_type: str, yes: bool, sets: Sequence[str]) -> list[str]:
    """The argv of `llama stack configure` run by the environment's interpreter."""
    argv = [*python, "-m", "llama_cli", "stack", "configure", distribution_id, "--name", name, "--image-type", image_type]
    argv += ["--yes"] if yes else []
    for item in sets:
        argv += ["--set", item]
    return argv


# Packages whose build must be the one running here: the same version and local variant (torch
# 2.13.0+cpu stays CPU). Unpinned, pip takes the index's default, which for torch on Linux is the
# CUDA build and its nvidia packages (3 GB more, minutes) that a CPU machine cannot use.
SAME_BUILD = ("torch",)


def same_builds(packages: Sequence[str]) -> tuple[list[str], list[str]]:
    """(`packages` with each SAME_BUILD name pinned to its version here, e.g. `torch==2.13.0+cpu`;
    the SAME_BUILD names not installed here, which stay unpinned)."""
    from importlib.metadata import PackageNotFoundError, version

    pinned, missing = [], []
    for requirement in packages:
        if requirement in SAME_BUILD:
            try:
                requirement = f"{requirement}=={version(requirement)}"
            except PackageNotFoundError:
                missing.append(requirement)
        pinned.append(requirement)
    return pinned, missing


def install_package(python: Sequence[str], packages: Sequence[str], no_deps: bool) -> None:
    """Install this package (a fresh wheel of the checkout, else this version) and `packages`, each
    SAME_BUILD package as the build running here; say what is installed first (pip draws the progress)."""
    packages, missing = same_builds(packages)
    with tempfile.TemporaryDirectory(prefix="llama-build-") as tmp:
        this = str(build_wheel(Path(tmp))) if source_root() else package_requirement()
        print(f"Installing {', '.join(['llama-toolchain', *packages])}", flush=True)
        for name in missing:
            print(f"Note: {name} is not installed where llama runs, so pip picks its default build "
                  f"(on Linux a CUDA one, several GB); install the {name} you want here first to get that one.", flush=True)
        run(pip_install(python, [this, *packages], no_deps), "install packages")


def create_venv(env_dir: Path, system_site_packages: bool) -> list[str]:
    """A new virtualenv at `env_dir` with pip; returns its interpreter as an argv prefix.

    With `system_site_packages`, it also sees the packages of the environment running llama (the
    base interpreter's, and this venv's through a .pth file), after its own.
    """
    import venv

    print(f"Creating a virtual environment in {display_path(env_dir)}", flush=True)
    venv.EnvBuilder(system_site_packages=system_site_packages, with_pip=True, clear=True, symlinks=os.name != "nt").create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if system_site_packages and sys.prefix != sys.base_prefix:
        inner = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        Path(inner, "_llama_parent_env.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    return [str(python)]


def build_venv(distribution_id: str, name: str, packages: Sequence[str], system_site_packages: bool, no_deps: bool) -> tuple[list[str], str]:
    """Create `~/.llama/builds/DIST/venv/NAME` and install into it: (its python argv, its path)."""
    env_dir = builds_dir() / distribution_id / "venv" / name
    python = create_venv(env_dir, system_site_packages)
    install_package(python, packages, no_deps)
    return python, str(env_dir)


def env_name(name: str) -> str:
    """The conda env or container image of build NAME: `llamastack-NAME`, as the original named them."""
    return f"llamastack-{name}"


def build_conda(name: str, packages: Sequence[str], no_deps: bool) -> tuple[list[str], str]:
    """Create (or update) conda env `llamastack-NAME` and install into it: (its python argv, its name)."""
    conda = shutil.which("conda")
    if conda is None:
        raise LlamaError("--image-type conda needs `conda` on PATH; install Miniconda, or use --image-type venv.")
    env = env_name(name)
    exists = subprocess.run([conda, "run", "-n", env, "python", "-V"], capture_output=True, check=False).returncode == 0
    if not exists:
        run([conda, "create", "-y", "-n", env, f"python={sys.version_info.major}.{sys.version_info.minor}"], f"create conda env {env}")
    python = [conda, "run", "--no-capture-output", "-n", env, "python"]
    install_package(python, packages, no_deps)
    return python, env


def container_tool() -> str | None:
    """podman, else docker ($DOCKER_BINARY first, as the original honoured it)."""
    for tool in (os.environ.get("DOCKER_BINARY"), "podman", "docker"):
        if tool and shutil.which(tool):
            return tool
    return None


def containerfile(packages: Sequence[str], from_source: bool) -> str:
    """The Containerfile of a build: this package (the staged checkout, or this version) and `packages`."""
    this = "/app/src" if from_source else package_requirement()
    lines = [
        f"FROM {CONTAINER_BASE}",
        "WORKDIR /app",
        *(["COPY src /app/src"] if from_source else []),
        f"RUN pip install --no-cache-dir {' '.join([this, *packages])}",
        "# The run config is mounted at /app/config.toml by `llama stack run`.",
        'ENTRYPOINT ["llama", "stack", "run", "/app/config.toml", "--host", "::"]',
    ]
    return "\n".join(lines) + "\n"


def build_container(distribution_id: str, name: str, packages: Sequence[str]) -> str:
    """Write the Containerfile (and stage the checkout beside it), build image `llamastack-NAME`."""
    context = builds_dir() / distribution_id / "container" / name
    if context.exists():
        shutil.rmtree(context)
    context.mkdir(parents=True)
    root = source_root()
    if root is not None:
        stage_source(context / "src")
    (context / "Containerfile").write_text(containerfile(packages, root is not None), encoding="utf-8")
    tag = env_name(name)
    tool = container_tool()
    if tool is None:
        raise LlamaError(
            f"Wrote {display_path(context / 'Containerfile')}, but building it needs podman or docker on PATH; install one, or use --image-type venv."
        )
    run([tool, "build", "-t", tag, "-f", str(context / "Containerfile"), str(context)], f"build image {tag}")
    return tag
