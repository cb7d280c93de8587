"""Code spelt out for speed (copies instead of dataclasses.replace, times without
strftime) does what the general code does."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from stopitd.analysis.model import Original, SourceEstimate, _iso

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
