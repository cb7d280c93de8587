"""Values the analysis builds from positional arguments, for speed (a class called with
keywords passes them through a dict): the fields must stay in the order those calls
assume (analysis/__init__.py, source.py, reportinfo.py, fields.py, trust.py)."""

from __future__ import annotations

from dataclasses import fields

from stopitd.analysis.model import KeyFields, Original, ReportInfo, SourceEstimate

POSITIONAL = {
    Original: [
        "how", "grade", "raw", "fields", "findings", "hops", "source", "auth",
        "envelope_sender", "sha256", "found_in", "filename", "feedback", "header_fields",
    ],
    SourceEstimate: [
        "relay_ip", "origin_ip", "mode", "internal", "provider", "responsible_domains",
        "authenticated_identity", "from_authenticated", "confidence", "reasons",
        "boundary_index", "origin_index",
    ],
    ReportInfo: [
        "fields", "findings", "attachments", "auto_submitted", "in_reply_to", "sha256", "size",
    ],
    KeyFields: ["message_id", "date", "from_", "to", "subject"],
}


def test_positional_calls_match_the_field_order() -> None:
    for cls, names in POSITIONAL.items():
        assert [f.name for f in fields(cls)] == names, cls.__name__


def test_walk_is_built_in_its_field_order() -> None:
    from stopitd.analysis.trust import Walk

    assert Walk._fields == (
        "hops", "boundary_index", "findings", "origin_index", "mode", "internal", "provider",
        "own_provider", "reasons", "policy_configured",
    )
