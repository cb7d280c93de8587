"""The analysis JSON written directly as text (analysis/jsontext.py) is exactly what the
general path writes: the dict converters, then ``json.dumps``."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis import analyze, conclude
from stopitd.analysis.jsontext import analysis_json_text, value_text
from stopitd.analysis.model import (
    Address,
    Analysis,
    Envelope,
    Evidence,
    Finding,
    Grade,
    Hop,
    HopStatus,
    How,
    IpClass,
    KeyFields,
    Original,
    ReportInfo,
    Severity,
    Trust,
    analysis_to_json,
    to_jsonable,
)
from stopitd.config import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _general(analysis: Analysis, file: str | None = None) -> str:
    data: dict[str, Any] = {} if file is None else {"file": file}
    data.update(analysis_to_json(analysis))
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def test_every_fixture_both_modes_as_the_general_path() -> None:
    policy = Settings().policy()
    checked = 0
    for path in sorted(FIXTURES.rglob("*.eml")):
        raw = path.read_bytes()
        for as_original in (True, False):
            analysis = analyze(raw, Envelope(), policy, as_original=as_original)
            for result in (analysis, conclude(analysis, Evidence.none(), policy)):
                assert analysis_json_text(result) == _general(result), path.name
                name = str(path.relative_to(FIXTURES))
                assert analysis_json_text(result, name) == _general(result, name)
                checked += 1
    assert checked > 100


# Text with what JSON must escape, line breaks of every kind, non-ASCII and astral.
_TEXT = st.text(
    alphabet=st.sampled_from(
        [*'ab "\\/\n\r\t\x00\x1f\x7f\x85\u2028\u2029é€😀<>&', "\udcff"]
    ),
    max_size=12,
)
_DATES = st.none() | st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, None]),
)


@st.composite
def _hops(draw: st.DrawFn) -> Hop:
    return Hop(
        raw=draw(_TEXT),
        status=draw(st.sampled_from(HopStatus)),
        ip=draw(_TEXT),
        ip_class=draw(st.sampled_from(IpClass)),
        rdns=draw(_TEXT),
        helo=draw(_TEXT),
        by=draw(_TEXT),
        with_=draw(_TEXT),
        id=draw(_TEXT),
        for_=draw(_TEXT),
        envelope_from=draw(_TEXT),
        date=draw(_DATES),
        auth=draw(_TEXT),
        trust=draw(st.sampled_from(Trust)),
        delay_s=draw(st.none() | st.floats(allow_nan=True, allow_infinity=True)),
    )


@st.composite
def _analyses(draw: st.DrawFn) -> Analysis:
    date = draw(_DATES)
    key = KeyFields(
        message_id=draw(_TEXT),
        date=None if date is None else date.replace(tzinfo=UTC),
        from_=draw(st.none() | st.builds(Address, _TEXT, _TEXT)),
        to=tuple(draw(st.lists(st.builds(Address, _TEXT, _TEXT), max_size=2))),
        subject=draw(_TEXT),
    )
    findings = tuple(
        draw(st.lists(st.builds(Finding, _TEXT, st.sampled_from(Severity), _TEXT), max_size=2))
    )
    original = Original(
        how=draw(st.sampled_from(How)),
        grade=draw(st.sampled_from(Grade)),
        raw=b"x",
        fields=key,
        findings=findings,
        hops=tuple(draw(st.lists(_hops(), max_size=3))),
        envelope_sender=draw(_TEXT),
        found_in=draw(st.none() | st.integers(-5, 10**20)),
        filename=draw(_TEXT),
        feedback=tuple(draw(st.lists(st.tuples(_TEXT, _TEXT), max_size=2))),
    )
    report = ReportInfo(
        fields=key,
        findings=findings,
        in_reply_to=tuple(draw(st.lists(_TEXT, max_size=3))),
        auto_submitted=draw(_TEXT),
        size=draw(st.integers(0, 10**12)),
    )
    return Analysis(report=report, originals=(original,) * draw(st.integers(0, 2)))


@settings(max_examples=300, deadline=None)
@given(_analyses(), st.none() | _TEXT)
def test_any_analysis_as_the_general_path(analysis: Analysis, file: str | None) -> None:
    assert analysis_json_text(analysis, file) == _general(analysis, file)


def test_values_of_other_types_take_the_general_path() -> None:
    hop = Hop(raw="r", status=HopStatus.PARSED, delay_s=1.5)
    odd = replace(hop, ip=Trust.TRUSTED, date=datetime(2026, 1, 1, tzinfo=UTC) - timedelta(1))
    odd_items: Any = ["a", 1]
    report = ReportInfo(fields=KeyFields(subject="s"), size=True, in_reply_to=odd_items)
    not_text: Any = 5  # a text field holding a number: the object is written field by field
    numbered = replace(hop, ip=not_text, delay_s=float("inf"))
    cases = (
        hop, odd, numbered, report, Severity.INFO, ("a", 2, (None, hop)), None, True, 2.5,
        float("nan"),
    )
    for value in cases:
        assert value_text(value) == json.dumps(
            to_jsonable(value), ensure_ascii=False, separators=(",", ":")
        )
