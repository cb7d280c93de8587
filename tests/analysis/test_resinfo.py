"""The stamp tokenizer's fast readers agree with its general (character by character) ones."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.headers import header_end, parse_fields
from stopitd.analysis.resinfo import (
    _SPACED_EQUALS,
    _flat_segments,
    _quoted_tokens,
    _segments,
    segments,
    tokens,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STAMPS = ("authentication-results", "arc-authentication-results", "received-spf")

_PIECES = st.sampled_from(
    ["mx.example.com", " ", "  ", "\t", ";", "(", ")", "(c; d)", '"', "\\", "spf=pass",
     "smtp.mailfrom=a@b", "i=1", " = ", "=", "é", "\u00a0", "none", ""]
)
_VALUES = st.lists(_PIECES, max_size=20).map("".join)


@settings(max_examples=2000, deadline=None)
@given(_VALUES)
def test_flat_reader_agrees_with_the_general_one(value: str) -> None:
    flat = _flat_segments(value)
    if flat is not None:
        assert flat == _segments(value)
    assert segments(value) == _segments(value)


@settings(max_examples=1000, deadline=None)
@given(_VALUES)
def test_tokens_without_quotes_split_as_the_loop_does(value: str) -> None:
    if '"' not in value:
        assert tokens(value) == _quoted_tokens(_SPACED_EQUALS.sub("=", value))


def test_fixture_stamps_take_the_flat_reader_and_agree() -> None:
    flat = 0
    for path in sorted(FIXTURES.rglob("*.eml")):
        raw = path.read_bytes()
        for f in parse_fields(raw[: header_end(raw)[0]]):
            if f.key in STAMPS:
                assert segments(f.value) == _segments(f.value), path.name
                flat += _flat_segments(f.value) is not None
    assert flat >= 20
