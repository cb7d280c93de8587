"""Constructors spelt out for speed (instead of dataclasses.replace) keep every field."""

from __future__ import annotations

from dataclasses import fields

from stopitd.analysis.model import Original, SourceEstimate

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
