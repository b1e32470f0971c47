"""The configure prompt engine: the reference transcript, re-asks, --set/--yes, and the CLI on stdin."""

from __future__ import annotations

import enum
import io
import textwrap
from collections.abc import Iterable
from typing import Literal

import msgspec
import pytest

from llama_cli.app import main
from llama_cli.configure import Prompter, configure_run_config, configure_struct, parse_sets, parse_value
from llama_core.config import RunConfig, without_none, load_run_config, run_config_path, save_run_config
from llama_core.errors import InvalidRequestError
from llama_core.types._base import Base

from .transcript import ANSWERS, CONFIGURED, TRANSCRIPT


class Script:
    """Answers prompts from a list and keeps the transcript (prompt + answer per line)."""

    def __init__(self, answers: Iterable[str]) -> None:
        self.answers = list(answers)
        self.lines: list[str] = []

    def ask(self, prompt: str) -> str:
        if not self.answers:
            raise EOFError
        answer = self.answers.pop(0)
        self.lines.append(prompt + answer)
        return answer

    def say(self, text: str) -> None:
        self.lines.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def local_build(**sections: dict) -> RunConfig:
    providers = {
        "inference": {"provider_id": "meta-reference"},
        "safety": {"provider_id": "meta-reference"},
        "agentic_system": {"provider_id": "meta-reference"},
        "memory": {"provider_id": "meta-reference-faiss"},
    }
    for api, section in sections.items():
        providers[api] |= section
    return RunConfig(name="8b-instruct", distribution_id="local", providers=providers)


def test_reference_transcript():
    script = Script(ANSWERS)
    configured = configure_run_config(local_build(), {}, Prompter(script.ask, script.say))
    assert script.text == TRANSCRIPT
    assert configured.providers == CONFIGURED


def test_existing_values_are_the_defaults_and_secrets_are_masked():
    build = local_build(inference={"max_seq_len": 2048}, agentic_system={"brave_search_api_key": "bsk-1"})
    build.providers["safety"]["prompt_guard_shield"] = {"model": "Prompt-Guard-86M"}
    script = Script([""] * 8 + ["n", ""] + [""] * 3)  # 8 inference fields
    configured = configure_run_config(build, {}, Prompter(script.ask, script.say))
    assert "Enter value for max_seq_len (existing: 2048): " in script.lines
    assert "Enter value for brave_search_api_key (existing: ********): " in script.lines
    # An empty answer to (y/n) keeps an existing sub-config, and declines a missing one.
    assert "Do you want to configure prompt_guard_shield? (y/n): " in script.lines
    assert configured.providers["safety"] == {"provider_id": "meta-reference", "llama_guard_shield": None,
                                              "prompt_guard_shield": {"model": "Prompt-Guard-86M", "threshold": 0.9}}  # fmt: skip
    assert configured.providers["inference"]["max_seq_len"] == 2048
    assert configured.providers["agentic_system"]["brave_search_api_key"] == "bsk-1"


class Color(enum.StrEnum):
    red = "red"
    blue = "blue"


class Inner(Base, kw_only=True):
    depth: int = 1


class Toy(Base, kw_only=True):
    """Every kind of field the engine handles."""

    count: int
    ratio: float = 0.5
    color: Color = Color.red
    mode: Literal["fast", "slow"] = "fast"
    tags: list[str] = []
    note: str | None = None
    inner: Inner = msgspec.field(default_factory=Inner)
    extra: Inner | None = None

    def __post_init__(self) -> None:
        if self.count > 100:
            raise ValueError("count must be at most 100")
        if self.extra is not None and self.extra.depth > self.count:
            raise ValueError("extra.depth must be at most count")


def test_reasks_invalid_input_required_fields_choices_and_validation():
    answers = [
        "", "many", "500", "9",  # count: required, not an int, refused by __post_init__ at once (never offered back)
        "1e-3", "green", "blue", "slow", "a, b", "none", "", "maybe", "y", "30",
        # the whole Struct again after __post_init__ rejected extra.depth > count (two fields: no one answer to
        # blame), the answers now the existing values
        "", "", "", "", "", "", "", "y", "3",
    ]
    script = Script(answers)
    values = configure_struct(Toy, {}, {}, Prompter(script.ask, script.say), "toy")
    assert script.text == textwrap.dedent(
        """\
        Enter value for count (required): 
        This field is required.
        Enter value for count (required): many
        Invalid input. Expected type: int
        Enter value for count (required): 500
        Validation error: count must be at most 100
        Enter value for count (required): 9
        Enter value for ratio (default: 0.5): 1e-3
        Choose color (options: red, blue) (default: red): green
        Invalid input. Choose one of: red, blue
        Choose color (options: red, blue) (default: red): blue
        Choose mode (options: fast, slow) (default: fast): slow
        Enter value for tags (default: []): a, b
        Enter value for note (optional): none
        Entering sub-configuration for inner:
        Enter value for depth (default: 1): 
        Do you want to configure extra? (y/n): maybe
        Please answer y or n.
        Do you want to configure extra? (y/n): y
        Entering sub-configuration for extra:
        Enter value for depth (default: 1): 30
        Validation error: extra.depth must be at most count
        Enter value for count (existing: 9): 
        Enter value for ratio (existing: 0.001): 
        Choose color (options: red, blue) (existing: blue): 
        Choose mode (options: fast, slow) (existing: slow): 
        Enter value for tags (existing: ["a", "b"]): 
        Enter value for note (optional): 
        Entering sub-configuration for inner:
        Enter value for depth (existing: 1): 
        Do you want to configure extra? (y/n): y
        Entering sub-configuration for extra:
        Enter value for depth (existing: 30): 3
        """
    )
    assert values == {"count": 9, "ratio": 0.001, "color": "blue", "mode": "slow", "tags": ["a", "b"], "note": None,
                      "inner": {"depth": 1}, "extra": {"depth": 3}}  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "annotation", "value"),
    [
        ("4096", int, 4096),
        ("False", bool, False),
        ("yes", bool, True),
        ("true", bool, True),
        ('["S1", "S2"]', list[str], ["S1", "S2"]),
        ("['S1']", list[str], ["S1"]),
        ("S1,S2", list[str], ["S1", "S2"]),
        ("[1, 2]", list[int], [1, 2]),
        ("123", str, "123"),
        ("2", int | None, 2),
        ("0.5", float, 0.5),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else "",
)
def test_parse_value(raw, annotation, value):
    assert parse_value(raw, annotation) == value


@pytest.mark.parametrize(("raw", "annotation"), [("x", int), ("maybe", bool), ("1.5", int), ("[1, 'a']", list[int])])
def test_parse_value_refuses(raw, annotation):
    with pytest.raises(ValueError, match="^Invalid input. Expected type: "):
        parse_value(raw, annotation)


def test_yes_with_sets_asks_nothing():
    script = Script([])
    sets = parse_sets(["inference.max_seq_len=2048", "safety.llama_guard_shield.excluded_categories=S1,S2"])
    configured = configure_run_config(local_build(), sets, Prompter(script.ask, script.say, interactive=False))
    assert script.lines == []
    assert configured.providers["inference"]["max_seq_len"] == 2048
    assert configured.providers["inference"]["model"] == "SmolLM2-135M-Instruct"
    # Setting a field of an optional sub-config turns it on; the others stay off.
    assert configured.providers["safety"]["llama_guard_shield"]["excluded_categories"] == ["S1", "S2"]
    assert configured.providers["safety"]["prompt_guard_shield"] is None


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["inference.max_seq_len=lots"], r"^--set inference.max_seq_len=lots: Invalid input. Expected type: int$"),
        (["inference.max_seqlen=1"], r"^--set inference.max_seqlen: MetaReferenceInferenceConfig has no such field \(fields: model, max_seq_len, "),
        (["inference=1"], r"^--set 'inference=1': expected API.FIELD=VALUE"),
        (["telemetry.x=1"], r"^Unknown API 'telemetry'"),
        (["models.x=1"], r"^--set models.\*: this build has no models provider.$"),
        (["safety.llama_guard_shield=x"], r"^--set safety.llama_guard_shield: it is a sub-config; set its fields"),
        (["safety.llama_guard_shield.excluded_categories=S99"], r"^Invalid safety.llama_guard_shield: excluded_categories are codes S1..S14, got S99$"),
        (["inference.dtype=fp16"], r"^Invalid inference: dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf$"),
        (["inference.device=tpu"], r"^Invalid inference: device 'tpu' is not supported; choose one of cpu, cuda, mps \(or cuda:N\)$"),
        (["inference.max_batch_size=0"], r"^Invalid inference: max_batch_size must be at least 1, got 0$"),
    ],
    ids=["type", "field", "shape", "api", "absent-api", "sub-config", "validation", "dtype", "device", "size"],
)
def test_bad_sets_are_one_line_errors(sets, message):
    with pytest.raises(InvalidRequestError, match=message):
        configure_run_config(local_build(), parse_sets(sets), Prompter(interactive=False))


def test_yes_without_a_required_value_says_how_to_give_it():
    build = RunConfig(name="f", distribution_id="local-plus-fireworks-inference",
                      providers={"inference": {"provider_id": "remote::fireworks"}})  # fmt: skip
    with pytest.raises(InvalidRequestError, match=r"^inference.api_key is required: pass --set inference.api_key=VALUE.$"):
        configure_run_config(build, {}, Prompter(interactive=False))
    configured = configure_run_config(build, parse_sets(["inference.api_key=fw-1"]), Prompter(interactive=False))
    assert configured.providers["inference"] == {"provider_id": "remote::fireworks", "url": "https://api.fireworks.ai/inference", "api_key": "fw-1"}


@pytest.fixture
def llama(capsys, monkeypatch):
    """Run `llama <argv>` in-process with `stdin` as standard input; (exit status, stdout, stderr)."""

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        rc = main(list(argv))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def test_cli_configure_reads_answers_from_stdin(llama):
    path = save_run_config(local_build(), run_config_path("local", "8b-instruct"))
    rc, out, err = llama("stack", "configure", "local", "--name", "8b-instruct", stdin="\n".join(ANSWERS) + "\n")
    assert (rc, err) == (0, "")
    # input() prints each prompt with no newline, and piped answers are not echoed.
    prompts = "".join(line.partition("): ")[0] + "): " if "): " in line else line + "\n" for line in TRANSCRIPT.splitlines())
    assert out == prompts + f"TOML configuration has been written to {path}\n"
    assert load_run_config(path).providers == without_none(CONFIGURED)


def test_cli_configure_errors(llama):
    rc, out, err = llama("stack", "configure", "local", "--name", "nobuild")
    assert (rc, out) == (2, "")
    assert err.startswith("Error: Could not find ") and err.endswith("builds/local/venv/nobuild.toml. Please run `llama stack build local --name nobuild` first.\n")
    save_run_config(local_build(), run_config_path("local", "x"))
    rc, out, err = llama("stack", "configure", "local", "--name", "x", stdin="Llama3.1-8B-Instruct\n")
    assert rc == 2 and err == (
        "Error: Input ended before configuration finished: answer every prompt, or use --yes with --set API.FIELD=VALUE.\n"
    )
    rc, out, err = llama("stack", "configure", "local", "--name", "x", "--yes", "--set", "inference.max_seq_len=1024")
    assert (rc, err) == (0, "") and out.startswith("TOML configuration has been written to")
    assert load_run_config(run_config_path("local", "x")).providers["inference"]["max_seq_len"] == 1024


def test_a_dtype_the_engine_cannot_run_is_refused_and_nothing_is_written(llama):
    path = save_run_config(local_build(), run_config_path("local", "x"))
    before = path.read_bytes()
    rc, out, err = llama("stack", "configure", "local", "--name", "x", "--yes", "--set", "inference.dtype=fp16")
    assert (rc, out, err) == (2, "", "Error: Invalid inference: dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf\n")
    assert path.read_bytes() == before


def test_a_dtype_the_engine_cannot_run_is_asked_again_at_once():
    from llama_core.providers.inference.meta_reference import MetaReferenceInferenceConfig

    script = Script(["", "", "", "", "fp16", "bf16", "", "", ""])
    values = configure_struct(MetaReferenceInferenceConfig, {}, {}, Prompter(script.ask, script.say), "inference")
    assert script.lines[4:7] == [
        "Enter value for dtype (optional): fp16",
        "Validation error: dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf",
        "Enter value for dtype (optional): bf16",  # the rejected value is not offered back
    ]
    assert len(script.lines) == 10 and values["dtype"] == "bf16"


def test_a_hand_edited_value_the_config_rejects_is_not_offered():
    from llama_core.providers.inference.meta_reference import MetaReferenceInferenceConfig

    script = Script([""] * 8)
    existing = {"model": "Llama3.2-1B-Instruct", "dtype": "fp16", "max_seq_len": 0}
    values = configure_struct(MetaReferenceInferenceConfig, existing, {}, Prompter(script.ask, script.say), "inference")
    assert script.lines[:5] == [
        "Enter value for model (existing: Llama3.2-1B-Instruct): ",
        "Enter value for max_seq_len (default: 4096): ",
        "Enter value for max_batch_size (default: 8): ",
        "Enter value for device (optional): ",
        "Enter value for dtype (optional): ",
    ]
    assert (values["dtype"], values["max_seq_len"]) == (None, 4096)


def test_a_hand_edited_dtype_is_refused_when_the_stack_is_loaded(llama):
    from llama_core.stack import Stack

    path = save_run_config(local_build(inference={"dtype": "fp16"}), run_config_path("local", "x"))
    with pytest.raises(InvalidRequestError, match=r"^Invalid config for inference provider meta-reference: dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf$") as e:
        Stack.from_config(path)
    assert e.value.field == "providers.inference"
    rc, out, err = llama("stack", "run", "local", "--name", "x")
    assert (rc, out) == (2, "")
    assert err == "Error: Invalid config for inference provider meta-reference: dtype 'fp16' is not supported; choose one of fp32, bf16, int8, gguf\n"


def fireworks_build(name: str) -> str:
    build = RunConfig(name=name, distribution_id="local-plus-fireworks-inference",
                      providers={"inference": {"provider_id": "remote::fireworks"}})  # fmt: skip
    return str(save_run_config(build, run_config_path("local-plus-fireworks-inference", name)))


SET_WARNING = (
    "warning: --set inference.api_key=… on the command line is visible to other users in `ps`; "
    "use --set inference.api_key=- (the value on stdin) instead\n"
)


def test_cli_configure_reads_a_secret_set_from_stdin(llama):
    path = fireworks_build("fw")
    argv = ("stack", "configure", "local-plus-fireworks-inference", "--name", "fw", "--yes", "--set", "inference.api_key=-")
    rc, out, err = llama(*argv, stdin="fw-from-stdin-1\n")
    assert (rc, err) == (0, "") and out.startswith("TOML configuration has been written to ") and "fw-from-stdin-1" not in out
    assert load_run_config(path).providers["inference"]["api_key"] == "fw-from-stdin-1"
    assert llama(*argv, stdin="") == (2, "", "Error: --set inference.api_key=- reads the value from stdin, but stdin gave none.\n")
    assert load_run_config(path).providers["inference"]["api_key"] == "fw-from-stdin-1"  # nothing changed


def test_cli_configure_warns_about_a_secret_set_inline_without_echoing_it(llama):
    path = fireworks_build("fw2")
    rc, out, err = llama("stack", "configure", "local-plus-fireworks-inference", "--name", "fw2", "--yes",
                         "--set", "inference.api_key=fw-inline-1", "--set", "inference.url=https://fw.example")  # fmt: skip
    assert (rc, err) == (0, SET_WARNING)
    assert "fw-inline-1" not in out + err
    assert load_run_config(path).providers["inference"] == {"provider_id": "remote::fireworks", "url": "https://fw.example",
                                                           "api_key": "fw-inline-1"}  # fmt: skip


def test_cli_configure_secret_from_stdin_then_the_prompts(llama):
    """Interactive: the `-` secrets are read first, then the prompts' answers, from the same stdin."""
    path = fireworks_build("fw3")
    rc, out, err = llama("stack", "configure", "local-plus-fireworks-inference", "--name", "fw3", "--set", "inference.api_key=-",
                         stdin="fw-first-line-1\nhttps://fw.example\n")  # fmt: skip
    assert (rc, err) == (0, "")
    assert load_run_config(path).providers["inference"] == {"provider_id": "remote::fireworks", "url": "https://fw.example",
                                                           "api_key": "fw-first-line-1"}  # fmt: skip
    assert "fw-first-line-1" not in out


class PinConfig(Base, kw_only=True):
    pin_token: int


def test_a_bad_secret_set_is_not_repeated_in_the_error():
    with pytest.raises(InvalidRequestError) as e:
        configure_struct(PinConfig, {}, {"pin_token": "sekret-pin-1"}, Prompter(interactive=False), "toy")
    assert str(e.value) == "--set toy.pin_token=…: Invalid input. Expected type: int"
