"""Code spelt out for speed (copies instead of dataclasses.replace, times without
strftime) does what the general code does."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis import analyze, conclude
from stopitd.analysis.model import (
    Envelope,
    Evidence,
    Hop,
    Original,
    SourceEstimate,
    _iso,
    analysis_to_json,
)
from stopitd.config import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# The spelt-out copies in analysis/__init__.py and conclusion.py name these fields; a new
# field must be added there too (this test then tells the author).
SPELT_OUT = {
    Original: {
        "how", "grade", "raw", "fields", "findings", "hops", "source", "auth",
        "envelope_sender", "sha256", "found_in", "filename", "feedback", "header_fields",
    },
    SourceEstimate: {
        "relay_ip", "origin_ip", "mode", "internal", "provider", "responsible_domains",
        "authenticated_identity", "from_authenticated", "confidence", "reasons",
        "boundary_index", "origin_index",
    },
}


def test_spelt_out_copies_name_every_field() -> None:
    for cls, names in SPELT_OUT.items():
        assert {f.name for f in fields(cls)} == names, cls.__name__


@settings(max_examples=1000, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 1), timezones=st.sampled_from([UTC, None])))
def test_iso_times_as_strftime_writes_them(value: datetime) -> None:
    reference = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if reference.year >= 1000:  # strftime pads years below 1000 differently per platform
        assert _iso(value) == reference.strftime("%Y-%m-%dT%H:%M:%SZ")


def _reference(value: object) -> object:
    """The JSON contract spelt out plainly (docs/analysis-json.md), to check the generated
    converters against."""
    if isinstance(value, StrEnum):
        return value.value
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, tuple | list):
        return [_reference(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    assert is_dataclass(value)
    out: dict[str, object] = {}
    for f in fields(value):
        if f.name == "header_fields" or (f.name == "raw" and not isinstance(value, Hop)):
            continue
        item = _reference(getattr(value, f.name))
        if f.name == "fields":
            assert isinstance(item, dict)
            out.update(item)
        else:
            out[{"from_": "from", "with_": "with", "for_": "for"}.get(f.name, f.name)] = item
    return out


def test_generated_json_converters_write_the_contract() -> None:
    policy = Settings().policy()
    checked = 0
    for path in sorted(FIXTURES.rglob("*.eml")):
        for as_original in (True, False):
            raw = path.read_bytes()
            analysis = analyze(raw, Envelope(), policy, as_original=as_original)
            for result in (analysis, conclude(analysis, Evidence.none(), policy)):
                got = json.dumps(analysis_to_json(result))
                expected = json.dumps({
                    "schema_version": result.schema_version,
                    "analyzer_version": result.analyzer_version,
                    "report": _reference(result.report),
                    "originals": [_reference(o) for o in result.originals],
                })
                assert got == expected, path.name
                checked += 1
    assert checked > 100
