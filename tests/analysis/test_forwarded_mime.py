"""The MIME walker: parameters, offsets, limits on odd structure."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.headers import first_values, parse_block, parse_fields
from stopitd.analysis.mime import Budget, _Walker, content_params, parse, steering_values, walk
from stopitd.analysis.policy import Limits

from .reports import fixture

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_filenames_in_rfc2047_and_rfc2231_are_decoded() -> None:
    encoded = parse_fields(
        b'Content-Type: application/octet-stream; name="=?utf-8?B?RHJvaHVuZy5lbWw=?="\r\n'
    )
    assert content_params(encoded)[3] == "Drohung.eml"
    continued = parse_fields(
        b"Content-Type: message/rfc822\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''Dr%C3%B6hung.eml\r\n"
    )
    assert content_params(continued)[2:] == ("attachment", "Dröhung.eml")
    assert content_params(parse_fields(b"Content-Type: garbage\r\n"))[0] == "text/plain"


def test_parts_are_offsets_into_the_report() -> None:
    raw = fixture("thunderbird-two-attachments.eml")
    root, budget = parse(raw, Limits())
    assert not budget.findings
    parts = walk(root)
    assert [p.content_type for p in parts] == [
        "multipart/mixed", "text/plain", "message/rfc822", "message/rfc822",
    ]
    for part in parts[2:]:
        (child,) = part.children
        assert child.buf is raw  # not a copy: offsets into the report itself
        assert raw[child.start : child.end] == child.raw
        assert child.raw.startswith(b"Return-Path: <troll.account77@gmail.com>")
    assert parts[1].params == {"charset": "UTF-8", "format": "flowed"}


def test_lf_only_reports_work_too() -> None:
    raw = fixture("gmail-forward-as-attachment.eml").replace(b"\r\n", b"\n")
    root, _ = parse(raw, Limits())
    rfc822 = [p for p in walk(root) if p.content_type == "message/rfc822"]
    assert rfc822[0].children[0].raw.endswith(b"reporting me.\n")


# --- the header-end search in C agrees with the line loop -------------------------------------

_PIECES = st.sampled_from(
    [b"A: b", b"\r\n", b"\n", b"\r", b"--x", b"--x--", b"--y", b"-", b" c", b"\r\n\r\n", b"\n\n"]
)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(_PIECES, max_size=16).map(b"".join),
    st.lists(st.sampled_from([b"x", b"y", b"xy"]), max_size=2),
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=0, max_value=6),
)
def test_header_end_search_agrees_with_the_line_loop(
    buf: bytes, boundaries: list[bytes], max_length: int, start: int
) -> None:
    walker = _Walker(buf, Budget(Limits(max_header_length=max_length)))
    for b in boundaries:
        walker._set_active(b, +1)
    pos = min(start, len(buf))
    assert walker.header_block_end(pos) == walker._header_lines_end(pos, pos + max_length)


def test_fixture_parts_end_their_headers_as_the_line_loop_says() -> None:
    checked = 0
    for path in sorted(FIXTURES.rglob("*.eml")):
        raw = path.read_bytes()
        root, budget = parse(raw, Limits())
        for part in walk(root):
            walker = _Walker(part.buf, budget)
            limit = part.start + budget.limits.max_header_length
            fast = walker.header_block_end(part.start)
            assert fast == walker._header_lines_end(part.start, limit), path.name
            checked += 1
    assert checked > 50


# --- delimiter lines found with bytes.find agree with the one-regex reading -------------------


def _regex_next(buf: bytes, active: list[bytes], pos: int) -> tuple[int, int, bytes, bool] | None:
    """The reference: one compiled alternation of the open boundaries, longest first."""
    alternatives = b"|".join(re.escape(b) for b in sorted(set(active), key=len, reverse=True))
    pattern = re.compile(rb"^--(" + alternatives + rb")(--)?[ \t]*\r?$", re.M)
    m = pattern.search(buf, pos)
    return None if m is None else (m.start(), m.end(), m.group(1), m.group(2) is not None)


_DELIMITER_PIECES = st.sampled_from(
    [b"--", b"--b", b"--bb", b"--b--", b"b", b"-", b" ", b"\t", b"\r", b"\n", b"\r\n", b"x",
     b"--b-", b"--b--\r\n", b"\n--b\r\n", b"--b \r\n"]
)


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(_DELIMITER_PIECES, max_size=20).map(b"".join),
    st.lists(st.sampled_from([b"b", b"bb", b"b--", b"x"]), min_size=1, max_size=3),
    st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=4),
)
def test_delimiter_search_agrees_with_the_alternation_regex(
    buf: bytes, boundaries: list[bytes], positions: list[int]
) -> None:
    walker = _Walker(buf, Budget(Limits()))
    for b in boundaries:
        walker._set_active(b, +1)
    for pos in (min(p, len(buf)) for p in positions):  # any order: the memo stays right
        assert walker.next_delimiter(pos) == _regex_next(buf, boundaries, pos)


_STEERING = ("content-type", "content-disposition", "content-transfer-encoding")
_PART_LINES = [
    b"Content-Type: multipart/mixed;", b"content-TYPE : message/rfc822", b"Content-Disposition:",
    b'\tboundary="b"', b" name=x", b"Content-Transfer-Encoding: base64", b"X-Content-Type: no",
    b"Subject: content-type: no", b"junk", b"From someone", b"", b"\xff\xfe", b"\t",
]


@settings(deadline=None, max_examples=300)
@given(
    st.lists(st.tuples(st.sampled_from(_PART_LINES), st.sampled_from([b"\r\n", b"\n", b"\r"])),
             max_size=10),
    st.sampled_from([Limits(), Limits(max_headers=3), Limits(max_header_length=40)]),
)
def test_steering_values_are_what_the_full_reader_gives(
    lines: list[tuple[bytes, bytes]], limits: Limits
) -> None:
    """The lean walk's reader: the Content-* values and the limit flags of parse_block."""
    block = b"".join(text + end for text, end in lines)
    full = parse_block(block, limits.max_headers, limits.max_header_length)
    first, too_many, too_long = steering_values(block, limits)
    steering = {k: v for k, v in first_values(full.fields).items() if k in _STEERING}
    # (the fallback gives all first values)
    assert {k: v for k, v in first.items() if k in _STEERING} == steering
    assert (too_many, too_long) == (full.truncated_fields, full.truncated_length)


def test_a_lean_walk_finds_what_the_full_walk_finds() -> None:
    for path in sorted(FIXTURES.glob("**/*.eml")):
        raw = path.read_bytes()
        full, full_budget = parse(raw, Limits())
        lean, lean_budget = parse(raw, Limits(), lean=True)
        assert lean.fields == full.fields
        assert (lean.content_type, lean.end, lean.fields_exact) == (
            full.content_type, full.end, full.fields_exact
        )
        assert lean_budget.findings == full_budget.findings
        assert lean_budget.parts == full_budget.parts
        assert lean.children == []  # the parts below are walked, not kept


def test_a_message_without_a_body_keeps_its_header_fields() -> None:
    """All header, no empty line: the fields read in the walk are the ones the analysis
    would read again from split_message; cut for length, they are not."""
    from stopitd.analysis import forwarded
    from stopitd.analysis.headers import split_message

    raw = b"Received: from a by b; Mon, 23 Nov 2026 20:14:05 +0000\r\nFrom: a@example.net\r\n"
    _, originals = forwarded.as_original(raw, Limits())
    assert originals[0].header_fields == tuple(parse_fields(split_message(raw)[0]))
    _, originals = forwarded.as_original(raw, Limits(max_header_length=60))
    assert originals[0].header_fields is None


# The plain reader's parameter pattern: its quoted value is the unrolled form of the reference.
_PARAM_REFERENCE = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@settings(deadline=None, max_examples=1000)
@given(st.text(alphabet=["a", '"', "\\", ";", "=", " ", "\n", "é", "*"], max_size=24))
def test_parameter_pattern_reads_what_the_reference_reads(value: str) -> None:
    from stopitd.analysis.mime import _PARAM

    assert _PARAM.findall(value) == _PARAM_REFERENCE.findall(value)


# Part headers for the lean walk: types that nest, that do not, and ones read by the stdlib.
_PART_HEADERS = [
    b"Content-Type: text/plain\r\n", b"content-type: MESSAGE/rfc822\r\n",
    b"Content-Type: Multipart/Mixed; boundary=\"in\"\r\n", b"Content-Type: message/global\r\n",
    b"Content-Type: multipart/alternative; boundary*=''in\r\n", b"X-Note: a message\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Disposition: attachment; filename*=x\r\n",
    b"Content-Type: application/octet-stream; name=\"multipart.txt\"\r\n", b"Junk line\r\n",
]
_PART_BODIES = [b"hello\r\n", b"--in\r\n", b"--in--\r\n", b"Content-Type: text/plain\r\n\r\nx\r\n",
                b"TUlNRS1WZXJzaW9uOiAxLjANCg0KaGk=\r\n", b""]


@settings(deadline=None, max_examples=300)
@given(
    st.lists(st.tuples(st.lists(st.sampled_from(_PART_HEADERS), max_size=3),
                       st.lists(st.sampled_from(_PART_BODIES), max_size=3)), max_size=5),
    st.sampled_from([Limits(), Limits(max_parts=3), Limits(max_mime_depth=2),
                     Limits(max_headers=30), Limits(max_header_length=40)]),
)
def test_a_lean_walk_finds_what_the_full_walk_finds_in_made_up_parts(
    parts: list[tuple[list[bytes], list[bytes]]], limits: Limits
) -> None:
    raw = b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"out\"\r\n\r\n"
    for headers, body in parts:
        raw += b"--out\r\n" + b"".join(headers) + b"\r\n" + b"".join(body)
    raw += b"--out--\r\n"
    _, full_budget = parse(raw, limits)
    _, lean_budget = parse(raw, limits, lean=True)
    assert lean_budget.findings == full_budget.findings
    assert (lean_budget.parts, lean_budget.decoded) == (full_budget.parts, full_budget.decoded)
