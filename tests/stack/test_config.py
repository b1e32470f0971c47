"""Run config files: paths, TOML round trip, mode 0600, and one-line errors for bad files."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import msgspec
import pytest

from llama_core import config as c
from llama_core.errors import InvalidRequestError, NotFoundError


def sample() -> c.RunConfig:
    return c.RunConfig(
        name="8b-instruct",
        distribution_id="local",
        environment="/envs/8b",
        built_at="2026-11-28T03:04:05Z",
        providers={
            "inference": {"provider_id": "meta-reference", "model": "Llama3.1-8B-Instruct", "max_seq_len": 4096, "device": None},
            "safety": {"provider_id": "meta-reference", "llama_guard_shield": {"model": "Llama-Guard-3-8B", "excluded_categories": []}},
            "agentic_system": {"provider_id": "remote::fireworks", "api_key": "sk-secret"},
        },
    )


def test_path_layout(llama_home):
    assert c.run_config_path("local", "8b-instruct") == llama_home / "builds/local/venv/8b-instruct.toml"
    assert c.run_config_path("local", "remote::x", "conda") == llama_home / "builds/local/conda/remote-x.toml"


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "x" * 65, "a b"], ids=repr)
def test_unsafe_names_are_refused(name):
    with pytest.raises(InvalidRequestError, match="^Invalid build name") as e:
        c.check_name(name)
    assert e.value.field == "name"


def test_toml_round_trip_drops_none_and_is_private(tmp_path):
    path = c.save_run_config(sample(), tmp_path / "deep/x.toml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == textwrap.dedent(
        """\
        # Written by `llama stack build` / `llama stack configure`; rerun configure to change it.
        name = "8b-instruct"
        distribution_id = "local"
        image_type = "venv"
        environment = "/envs/8b"
        built_at = "2026-11-28T03:04:05Z"

        [providers.inference]
        provider_id = "meta-reference"
        model = "Llama3.1-8B-Instruct"
        max_seq_len = 4096

        [providers.safety]
        provider_id = "meta-reference"

        [providers.safety.llama_guard_shield]
        model = "Llama-Guard-3-8B"
        excluded_categories = []

        [providers.agentic_system]
        provider_id = "remote::fireworks"
        api_key = "sk-secret"
        """
    )
    loaded = c.load_run_config(path)
    expected = sample()
    del expected.providers["inference"]["device"]
    assert loaded == expected
    assert list(tmp_path.joinpath("deep").iterdir()) == [path]  # no temp file left behind


def test_overwriting_keeps_mode_0600(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("old")
    path.chmod(0o644)
    c.save_run_config(sample(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_file(tmp_path):
    with pytest.raises(NotFoundError, match=r"^File .*nope.toml does not exist. Did you run `llama stack build`\?$"):
        c.load_run_config(tmp_path / "nope.toml")


def test_find_run_config_searches_image_types(llama_home):
    with pytest.raises(NotFoundError, match=r"^Could not find .*builds/local/venv/x.toml. Please run `llama stack build local --name x` first.$"):
        c.find_run_config("local", "x")
    conda = c.save_run_config(c.RunConfig(name="x", distribution_id="local", image_type="conda"), c.run_config_path("local", "x", "conda"))
    assert c.find_run_config("local", "x") == conda
    with pytest.raises(NotFoundError):
        c.find_run_config("local", "x", "container")


def test_resolve_run_config(llama_home, tmp_path):
    assert c.resolve_run_config(None, None) is None  # the default stack
    assert c.resolve_run_config("my.toml", None) == Path("my.toml")  # need not exist yet: load_run_config says so
    assert c.resolve_run_config(f"builds{os.sep}local", None) == Path(f"builds{os.sep}local")  # a path, never a distribution id
    (tmp_path / "plain").write_text("")
    assert c.resolve_run_config(str(tmp_path / "plain"), None) == tmp_path / "plain"
    saved = c.save_run_config(c.RunConfig(name="x", distribution_id="local"), c.run_config_path("local", "x"))
    assert c.resolve_run_config("local", "x") == saved
    assert c.resolve_run_config("local", "x", "venv") == saved


@pytest.mark.parametrize(
    ("config", "name", "error", "message"),
    [
        (None, "x", InvalidRequestError, "--name needs a distribution before it: DIST --name NAME."),
        ("local", None, InvalidRequestError, "Which build of local? Add --name NAME (see `llama stack build local --name NAME`)."),
        ("nosuch", "x", NotFoundError, "Unknown distribution 'nosuch'"),
        ("local", "nope", NotFoundError, "Could not find"),
    ],
)
def test_resolve_run_config_errors(llama_home, config, name, error, message):
    with pytest.raises(error) as info:
        c.resolve_run_config(config, name)
    assert info.value.message.startswith(message) and "\n" not in info.value.message


@pytest.mark.parametrize(
    ("text", "message", "field"),
    [
        ("name = ", r"Could not read .*bad.toml: Invalid value \(at end of document\)", None),
        ('distribution_id = "local"', r"is not a valid run config: Object missing required field `name`$", None),
        ('name = "x"\ndistribution_id = "local"\nimage_type = "docker"', r"Invalid enum value 'docker' - at `\$.image_type`", "image_type"),
        ('name = "x"\ndistribution_id = "local"\nport = 5', r"unknown field `port`", None),
    ],
    ids=["syntax", "missing", "enum", "unknown"],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidRequestError, match=message) as e:
        c.load_run_config(path)
    assert "\n" not in e.value.message and e.value.field == field


def test_remote_config_checks_and_trims_url():
    assert msgspec.convert({"url": "http://h:5000/"}, c.RemoteProviderConfig).url == "http://h:5000"
    with pytest.raises(msgspec.ValidationError, match="url must start with http:// or https://, got 'h:5000'"):
        msgspec.convert({"url": "h:5000"}, c.RemoteProviderConfig)


def test_llama_guard_categories_are_hazard_codes():
    assert msgspec.convert({"excluded_categories": ["S1", "S14"]}, c.LlamaGuardShieldConfig).excluded_categories == ["S1", "S14"]
    with pytest.raises(msgspec.ValidationError, match="codes S1..S14, got S15, violence"):
        msgspec.convert({"excluded_categories": ["S15", "violence"]}, c.LlamaGuardShieldConfig)
