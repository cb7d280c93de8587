"""The stamp tokenizer's fast readers agree with its general (character by character) ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.headers import header_end, parse_fields
from stopitd.analysis.resinfo import (
    _METHOD,
    _RESULT_START,
    _SPACED_EQUALS,
    ResinfoError,
    Segment,
    _flat_segments,
    _joined_equals,
    _quoted_tokens,
    _segments,
    parse_received_spf,
    parse_results_header,
    read_authserv_id,
    segments,
    tokens,
    unquote,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STAMPS = ("authentication-results", "arc-authentication-results", "received-spf")

_PIECES = st.sampled_from(
    ["mx.example.com", " ", "  ", "\t", ";", "(", ")", "(c; d)", '"', "\\", "spf=pass", "\n",
     "smtp.mailfrom=a@b", "i=1", " = ", "=", "é", "\u00a0", "none", ""]
)
_VALUES = st.lists(_PIECES, max_size=20).map("".join)


def _reference_segments(value: str) -> list[Segment]:
    """The grammar one character at a time: what the readers must agree with."""
    out: list[Segment] = []
    text: list[str] = []
    comments: list[str] = []
    comment: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            (comment if depth else text).append(ch)
            escaped = False
            continue
        if ch == "\\" and (quoted or depth):
            escaped = True
            if not depth:
                text.append(ch)
            continue
        if depth:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    comments.append(" ".join("".join(comment).split()))
                    comment = []
                    text.append(" ")
                    continue
            comment.append(ch)
            continue
        if quoted:
            text.append(ch)
            if ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
            text.append(ch)
        elif ch == "(":
            depth = 1
        elif ch == ";":
            out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
            text, comments = [], []
        else:
            text.append(ch)
    if depth:
        comments.append(" ".join("".join(comment).split()))
    out.append(Segment(" ".join("".join(text).split()), tuple(comments)))
    return out


def _reference_tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, quoted strings kept whole, one character at a time."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch.isspace() and not quoted:
            if current:
                out.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        out.append("".join(current))
    return out


@settings(max_examples=3000, deadline=None)
@given(_VALUES)
def test_readers_agree_with_the_reference(value: str) -> None:
    expected = _reference_segments(value)
    flat = _flat_segments(value)
    if flat is not None:
        assert flat == expected
    assert _segments(value) == expected
    assert segments(value) == expected


@settings(max_examples=2000, deadline=None)
@given(_VALUES)
def test_tokens_split_as_the_reference_does(value: str) -> None:
    assert _quoted_tokens(value) == _reference_tokens(value)
    assert _joined_equals(value) == _SPACED_EQUALS.sub("=", value)
    assert tokens(value) == _reference_tokens(_SPACED_EQUALS.sub("=", value))


def test_fixture_stamps_take_the_flat_reader_and_agree() -> None:
    flat = 0
    for path in sorted(FIXTURES.rglob("*.eml")):
        raw = path.read_bytes()
        for f in parse_fields(raw[: header_end(raw)[0]]):
            if f.key in STAMPS:
                assert segments(f.value) == _reference_segments(f.value), path.name
                assert _segments(f.value) == _reference_segments(f.value), path.name
                flat += _flat_segments(f.value) is not None
    assert flat >= 20


_RESULT_PIECES = st.sampled_from(
    ["spf", "dkim/1", "/", "1", "x.y", "=", " = ", " ", "\t", "\u00a0", "pass", '"', "a b",
     "none", "NONE", "(", ")", "(c)", ";", "i=1", "é", "-", "\\"]
)
_RESULT_VALUES = st.lists(_RESULT_PIECES, max_size=12).map("".join)


def _reading(read: Callable[[], object]) -> object:
    try:
        return read()
    except ResinfoError as e:
        return ("error", str(e))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_VALUES, _RESULT_VALUES), st.booleans())
def test_authserv_id_reader_agrees_with_the_whole_reading(value: str, arc: bool) -> None:
    def whole() -> object:
        parsed = parse_results_header(value, arc=arc)
        return parsed.authserv_id, parsed.instance

    assert _reading(lambda: read_authserv_id(value, arc=arc)) == _reading(whole)


@settings(max_examples=2000, deadline=None)
@given(_RESULT_VALUES)
def test_result_start_is_the_method_match_of_the_first_token(value: str) -> None:
    if '"' not in value:
        toks = tokens(" ".join(value.split()))
        expected = bool(toks) and _METHOD.match(toks[0]) is not None
        assert (_RESULT_START.match(value) is not None) == expected


def test_fixture_stamps_read_the_same_authserv_id() -> None:
    for path in sorted(FIXTURES.rglob("*.eml")):
        raw = path.read_bytes()
        for f in parse_fields(raw[: header_end(raw)[0]]):
            if f.key in STAMPS[:2]:
                arc = f.key == STAMPS[1]
                parsed = parse_results_header(f.value, arc=arc)
                assert read_authserv_id(f.value, arc=arc) == (parsed.authserv_id, parsed.instance)


def _reference_spf(value: str) -> object:
    """parse_received_spf over the reference readers: (result, comment, pairs) or the error."""
    segs = _reference_segments(value)
    words = [_reference_tokens(_SPACED_EQUALS.sub("=", s.text)) for s in segs]
    if not words[0]:
        return ("error", "no SPF result")
    if "=" in words[0][0]:
        return ("error", f"expected an SPF result, got {words[0][0]!r}")
    pairs = []
    for tok in words[0][1:] + [t for w in words[1:] for t in w]:
        name, eq, val = tok.partition("=")
        if eq:
            pairs.append((name.lower(), unquote(val)))
    comment = "; ".join(c for s in segs for c in s.comments)
    return (words[0][0].lower(), comment, tuple(pairs))


_SPF_PIECES = st.sampled_from(
    ["pass", "Fail", " ", "\t", ";", "(", ")", "(google.com: x)", "(a; b)", "=", " = ", "a=b",
     "receiver=mx.example", "receiver=<x>", "client-ip=192.0.2.1", '"', '"q r"', "\\", "é"]
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_VALUES, st.lists(_SPF_PIECES, max_size=14).map("".join)))
def test_received_spf_reads_as_the_reference(value: str) -> None:
    try:
        spf = parse_received_spf(value)
    except ResinfoError as e:
        assert _reference_spf(value) == ("error", str(e))
        return
    assert (spf.result, spf.comment, spf.pairs) == _reference_spf(value)
