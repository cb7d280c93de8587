"""Hostile and broken input never crashes finding originals: property tests."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stopitd.analysis import analyze, bodytext, forwarded
from stopitd.analysis.headers import parse_block
from stopitd.analysis.model import (
    Envelope,
    Original,
    ReportInfo,
    analysis_from_json,
    analysis_to_json,
    to_jsonable,
)
from stopitd.analysis.policy import Limits, Policy

from .reports import FORWARDED

FIXTURES = sorted(p.read_bytes() for p in FORWARDED.glob("*.eml"))
SMALL = Limits(max_parts=200, max_forward_depth=4, max_mime_depth=12)
PROPS = settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)

# Pieces that steer random bytes into the interesting paths.
TOKENS = [
    b"\r\n", b"\n", b"\r\n\r\n", b"--b\r\n", b"--b--\r\n", b"Content-Type: multipart/mixed; "
    b'boundary="b"\r\n', b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Type: text/rfc822-headers\r\n", b"Received: from x ([1.2.3.4]) by y; now\r\n",
    b"From: a@b\r\n", b"Subject: =?utf-8?q?x?=\r\n", b"> ", b"    ", b"\t",
    b"---------- Forwarded message ---------\r\n", b"Begin forwarded message:\r\n",
    b"_" * 32 + b"\r\n", b"Sent: Monday, November 23, 2026 9:14 PM\r\n", b"=\r\n", b"=E9",
    b"Content-Type: application/vnd.ms-outlook; name=a.msg\r\n",
    b'Content-Disposition: attachment; filename="a.eml"\r\n',
    b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n",
    b"Content-Type: message/feedback-report\r\n", b"Resent-From: r@x\r\n",
    b"\xff\xfe", b"\x00", b"<", b":",
]


def check(report: ReportInfo, originals: tuple[Original, ...]) -> None:
    json.dumps([to_jsonable(report), [to_jsonable(o) for o in originals]])
    for o in originals:
        assert isinstance(o.raw, bytes)
        assert o.found_in is None or 0 <= o.found_in < len(originals)


@PROPS
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(*forwarded.find_originals(raw, SMALL))
    check(*forwarded.as_original(raw, SMALL))
    parse_block(raw, 100, 1000)


@PROPS
@given(st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=20)), max_size=120))
def test_token_soup(pieces: list[bytes]) -> None:
    check(*forwarded.find_originals(b"".join(pieces), SMALL))


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from(FIXTURES))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "dup", "drop", "insert"]))
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        j = draw(st.integers(i, min(len(raw), i + 400)))
        if kind == "flip":
            raw = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1 :]
        elif kind == "cut":
            raw = raw[:i]
        elif kind == "dup":
            raw = raw[:j] + raw[i:j] + raw[j:]
        elif kind == "drop":
            raw = raw[:i] + raw[j:]
        else:
            raw = raw[:i] + draw(st.sampled_from(TOKENS)) + raw[i:]
    return raw


@PROPS
@given(mutated_fixture())
def test_mutated_fixtures(raw: bytes) -> None:
    check(*forwarded.find_originals(raw, Limits()))


@settings(deadline=None, max_examples=15)
@given(st.sampled_from(FIXTURES), st.integers(2, 40))
def test_repeated_units_stay_sane(raw: bytes, times: int) -> None:
    """Many copies of a fixture's body glued together: no crash, limits respected."""
    report, originals = forwarded.find_originals(raw * times, SMALL)
    check(report, originals)
    assert len(originals) <= SMALL.max_parts


@settings(deadline=None, max_examples=30)
@given(mutated_fixture())
def test_whole_analysis_of_mutated_fixtures_round_trips_as_json(raw: bytes) -> None:
    result = analyze(raw, Envelope(), Policy())
    data = json.loads(json.dumps(analysis_to_json(result)))
    back = analysis_from_json(data, [o.raw for o in result.originals])
    assert [(o.how, o.found_in, o.filename, o.feedback) for o in back.originals] == [
        (o.how, o.found_in, o.filename, o.feedback) for o in result.originals
    ]


HTML_BITS = [
    *"<>/ &;#\"'=:\n\t\r\u00a0xX",
    "<div>", "</div>", "<br>", "<blockquote>", "</blockquote>", "<pre>", "</pre>", "&nbsp;",
    "<style>", "</style>", "<p>", "From: ", "---------- Forwarded message ---------",
]


@PROPS
@given(st.lists(st.sampled_from(HTML_BITS), max_size=200))
def test_html_and_flowed_text_never_raise(bits: list[str]) -> None:
    text = "".join(bits)
    out = bodytext.html_to_text(text)
    assert out.endswith("\n")
    bodytext.unflow(text, True)
    bodytext.unflow(text, False)
