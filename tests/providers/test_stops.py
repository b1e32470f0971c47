"""The core's stop-sequence cutter: cuts before the first stop whatever the pieces, in linear time."""

from __future__ import annotations

import random
import time

import pytest

from llama_core.providers.inference.stops import StopCutter, cut_text
from llama_core.types.common import STOP_MAX_CHARS, STOP_MAX_COUNT


@pytest.mark.parametrize(
    ("stops", "pieces", "sent", "stopped"),
    [
        pytest.param(["END"], ["abc", "de"], ["abc", "de"], False, id="no-stop"),
        pytest.param(["END"], ["abE", "NDxyz"], ["ab", ""], True, id="across-pieces"),
        pytest.param(["END"], ["abEN", "D"], ["ab", ""], True, id="held-back-prefix"),
        pytest.param(["END"], ["abE", "x"], ["ab", "Ex"], False, id="false-alarm"),
        pytest.param(["\n", "ab"], ["xa", "b\nz"], ["x", ""], True, id="earliest-of-several"),
        pytest.param(["abcd", "bc"], ["abcd"], ["a"], True, id="first-to-end-wins"),
        pytest.param(["END"], ["xEN", "", "Dy", "more"], ["x", "", "", ""], True, id="nothing-after-a-stop"),
        pytest.param([], ["abc", "END"], ["abc", "END"], False, id="no-stops"),
    ],
)
def test_stop_cutter(stops: list[str], pieces: list[str], sent: list[str], stopped: bool) -> None:
    cutter = StopCutter(stops)
    assert [cutter.push(p) for p in pieces] == sent
    assert cutter.stopped == stopped


def test_flush_gives_back_what_was_held() -> None:
    cutter = StopCutter(["END"])
    assert (cutter.push("the EN"), cutter.flush(), cutter.flush()) == ("the ", "EN", "")
    assert cut_text("a b END c", ["END"]) == ("a b ", True)
    assert cut_text("a b EN", ["END"]) == ("a b EN", False)


def reference_cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """The definition: the stop that ends first (then starts first) cuts; found by brute force."""
    ends = [(i + len(s), i) for s in stops for i in range(len(text)) if text.startswith(s, i)]
    return (text[: min(ends)[1]], True) if ends else (text, False)


def test_any_split_gives_the_same_cut_as_the_whole_text() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 24)))
        cutter, sent, at = StopCutter(stops), "", 0
        while at < len(text) and not cutter.stopped:
            n = rng.randint(1, 5)
            sent, at = sent + cutter.push(text[at : at + n]), at + n
        got = (sent, True) if cutter.stopped else (sent + cutter.flush(), False)
        assert got == reference_cut(text, stops) == cut_text(text, stops), (stops, text)


def test_a_megabyte_with_the_most_and_longest_stops_is_cut_in_linear_time() -> None:
    # Worst cases for a naive check: every stop almost matches everywhere (a run of "a" against
    # "aaa...ab"), and the text comes whole or in many small pieces. The old check re-scanned the
    # whole held text for every stop at every push: quadratic, 90 s for 1 MB.
    stops = ["a" * (STOP_MAX_CHARS - 1) + chr(ord("b") + i) for i in range(STOP_MAX_COUNT)]
    text = "a" * 1_000_000
    start = time.perf_counter()
    assert cut_text(text, stops) == (text, False)
    cutter, sent = StopCutter(stops), []
    for i in range(0, len(text), 1000):
        sent.append(cutter.push(text[i : i + 1000]))
    assert "".join(sent) + cutter.flush() == text
    assert cut_text(text + stops[-1], stops) == (text, True)
    assert time.perf_counter() - start < 2.0  # generous: it takes a few milliseconds
