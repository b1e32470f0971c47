"""The Llama 3 tokenizer (the real tokenizer.model from the llama-models wheel) and the HF tokenizer.json kind."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llama_core.errors import CheckpointError
from llama_core.tokenizer import HFTokenizer, Llama3Tokenizer, Tokenizer, split_long_runs


def llama3_tokenizer_path() -> Path:
    import llama_models

    return Path(llama_models.__file__).parent / "llama3" / "api" / "tokenizer.model"


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_file(llama3_tokenizer_path())


def make_hf_tokenizer_json(path: Path) -> Path:
    """A tiny byte-level BPE tokenizer.json with ChatML special tokens, trained in a few ms."""
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HF(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = ["hello world, the quick brown fox jumps over the lazy dog", "user assistant system"]
    hf.train_from_iterator(corpus, trainer)
    path.mkdir(parents=True, exist_ok=True)
    (path / "tokenizer.json").write_text(hf.to_str())
    return path / "tokenizer.json"


# ---- Llama 3 --------------------------------------------------------------------------------------

SPECIAL_IDS = [
    ("<|begin_of_text|>", 128000),
    ("<|end_of_text|>", 128001),
    ("<|reserved_special_token_0|>", 128002),
    ("<|reserved_special_token_1|>", 128003),
    ("<|finetune_right_pad_id|>", 128004),
    ("<|step_id|>", 128005),
    ("<|start_header_id|>", 128006),
    ("<|end_header_id|>", 128007),
    ("<|eom_id|>", 128008),
    ("<|eot_id|>", 128009),
    ("<|python_tag|>", 128010),
    ("<|image|>", 128011),
    ("<|reserved_special_token_2|>", 128012),
    ("<|reserved_special_token_245|>", 128255),
]


@pytest.mark.parametrize(("name", "token_id"), SPECIAL_IDS, ids=[n for n, _ in SPECIAL_IDS])
def test_special_token_ids(tok: Tokenizer, name: str, token_id: int):
    assert tok.special_tokens[name] == token_id
    assert tok.decode([token_id]) == name
    assert tok.is_special(token_id)


def test_named_ids_and_sizes(tok: Tokenizer):
    assert isinstance(tok, Llama3Tokenizer)
    assert len(tok.special_tokens) == 256
    assert (tok.bos_id, tok.eos_id, tok.eom_id, tok.eot_id, tok.python_tag_id, tok.pad_id) == (
        128000, 128001, 128008, 128009, 128010, 128004,
    )
    assert tok.stop_tokens == [128001, 128008, 128009]
    assert tok.vocab_size == 128256
    assert not tok.is_special(9906)


@pytest.mark.parametrize(
    ("text", "bos", "eos", "ids"),
    [
        ("Hello world", True, False, [128000, 9906, 1917]),
        ("Hello world", False, True, [9906, 1917, 128001]),
        ("\n\n", False, False, [271]),
        ("user", False, False, [882]),
        ("assistant", False, False, [78191]),
        ("system", False, False, [9125]),
        ("ipython", False, False, [23799, 4690]),
        ("", False, False, []),
    ],
    ids=["bos", "eos", "blank-line", "user", "assistant", "system", "ipython", "empty"],
)
def test_encode_pinned(tok: Tokenizer, text: str, bos: bool, eos: bool, ids: list[int]):
    assert tok.encode(text, bos=bos, eos=eos) == ids


def test_special_token_text_is_plain_text(tok: Tokenizer):
    ids = tok.encode("<|eot_id|>")
    assert ids == [27, 91, 68, 354, 851, 91, 29]  # "<", "|", "e", "ot", "_id", "|", ">"
    assert 128009 not in ids
    assert tok.decode(ids) == "<|eot_id|>"
    assert tok.encode("<|eot_id|>", allow_special=True) == [128009]


def test_id_to_piece(tok: Tokenizer):
    assert tok.id_to_piece(9906) == "Hello"
    assert tok.id_to_piece(1917) == " world"
    assert tok.id_to_piece(128009) == "<|eot_id|>"
    # A token holding part of a UTF-8 character still gives a string.
    assert all(isinstance(tok.id_to_piece(i), str) for i in tok.encode("日本語 🦙"))


def test_token_bytes(tok: Tokenizer):
    ids = tok.encode("日本語 🦙")
    assert [tok.token_bytes(i) for i in ids] == [b"\xe6\x97\xa5\xe6\x9c\xac", b"\xe8\xaa\x9e", b" \xf0\x9f", b"\xa6", b"\x99"]
    assert tok.id_to_piece(ids[3]) == "\ufffd"  # the piece's text cannot say which byte it holds; its bytes can
    assert (tok.token_bytes(1917), tok.token_bytes(128009)) == (b" world", b"<|eot_id|>")


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("", [""]),
        ("ab cd", ["ab cd"]),
        ("aaaaaaa", ["aaa", "aaa", "a"]),
        ("x      y", ["x   ", "   y"]),  # 6 spaces: cut 3 after the run starts
        ("ab aaaaaa", ["ab aaa", "aaa"]),
    ],
    ids=["empty", "short", "long-word", "long-space", "cut-inside-second-run"],
)
def test_split_long_runs(text: str, pieces: list[str]):
    assert list(split_long_runs(text, max_run=3)) == pieces


def test_split_long_runs_cuts_where_the_reference_does():
    from llama_models.llama3.api.tokenizer import Tokenizer as Reference

    rng = random.Random(1)
    for _ in range(200):
        text = "".join(rng.choice(["a", "b", " ", "\n", "\t", "é"]) * rng.randint(1, 9) for _ in range(30))
        max_run = rng.randint(1, 12)
        assert list(split_long_runs(text, max_run)) == list(Reference._split_whitespaces_or_nonwhitespaces(text, max_run))


def test_million_chars_encode_and_round_trip_like_the_reference(tok: Tokenizer):
    from llama_models.llama3.api.tokenizer import Tokenizer as Reference

    rng = random.Random(0)
    words = ["hello", " ", "\n", "world", "  ", "é", "日本", "123456", "<|eot_id|>"]
    text = "".join(rng.choice(words) for _ in range(200_000))
    # Runs beyond the 25k limit, and more than two 400k windows in all.
    text += "a" * 60_000 + " " * 70_000 + "z" * 30_000
    text = text[:1_000_000] if len(text) > 1_000_000 else text + "b" * (1_000_000 - len(text))
    assert len(text) == 1_000_000
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == Reference(str(llama3_tokenizer_path())).encode(text, bos=False, eos=False)


def test_from_file_caches_and_accepts_a_checkpoint_dir(tok: Tokenizer, tmp_path: Path):
    assert Tokenizer.from_file(llama3_tokenizer_path()) is tok
    assert Tokenizer.from_file(str(llama3_tokenizer_path().parent)) is tok


def test_missing_and_corrupt_files(tmp_path: Path):
    with pytest.raises(CheckpointError, match="Tokenizer file not found"):
        Tokenizer.from_file(tmp_path / "tokenizer.model")
    with pytest.raises(CheckpointError, match="No tokenizer.model or tokenizer.json in"):
        Tokenizer.from_file(tmp_path)
    (tmp_path / "tokenizer.model").write_text("not base64 at all\n")
    with pytest.raises(CheckpointError, match="Cannot read tokenizer .*not a tiktoken BPE file .line 1."):
        Tokenizer.from_file(tmp_path / "tokenizer.model")


# ---- Hugging Face tokenizer.json ------------------------------------------------------------------


def test_hf_tokenizer_json(tmp_path: Path):
    path = make_hf_tokenizer_json(tmp_path)
    tok = Tokenizer.from_file(path)
    assert isinstance(tok, HFTokenizer)
    assert tok.special_tokens == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    # Without tokenizer_config.json, ChatML names: BOS <|im_start|>, EOS <|im_end|>.
    assert (tok.bos_id, tok.eos_id, tok.eot_id, tok.eom_id, tok.python_tag_id) == (1, 2, 2, None, None)
    assert tok.stop_tokens == [2, 0]
    assert tok.vocab_size == len(json.loads(path.read_text())["model"]["vocab"])  # specials included
    plain = tok.encode("hello <|im_end|>")
    assert 2 not in plain and tok.decode(plain) == "hello <|im_end|>"
    special = tok.encode("hello <|im_end|>", allow_special=True)
    assert special[-1] == 2 and tok.decode(special) == "hello <|im_end|>"
    assert tok.encode("hello", bos=True, eos=True)[::len(tok.encode("hello")) + 1] == [1, 2]
    assert tok.id_to_piece(2) == "<|im_end|>"


def test_hf_token_bytes(tmp_path: Path):
    tok = Tokenizer.from_file(make_hf_tokenizer_json(tmp_path))
    text = "hello wörld 日本"
    ids = tok.encode(text)
    pieces = [tok.token_bytes(i) for i in ids]
    assert b"".join(pieces) == text.encode() and b"\xc3" in pieces  # byte-level: "ö" is two one-byte tokens here
    assert tok.token_bytes(2) == b"<|im_end|>"


def test_hf_tokenizer_config_names_bos_and_eos(tmp_path: Path):
    path = make_hf_tokenizer_json(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(
        '{"bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>", "add_bos_token": true}'
    )
    tok = Tokenizer.from_file(tmp_path)  # the directory: finds tokenizer.json
    assert (tok.bos_id, tok.eos_id) == (0, 0)
    assert tok.stop_tokens == [0, 2]
    assert tok.encode("", bos=True) == [0]
    assert Tokenizer.from_file(path) is tok
