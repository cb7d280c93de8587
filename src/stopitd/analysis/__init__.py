"""The pure analysis: ``analyze`` (bytes -> Analysis) and ``conclude`` (+ Evidence).

No I/O here or below: see ARCHITECTURE.md, "The one rule".

The parts of the analysis are imported when ``analyze`` or ``conclude`` first runs, not
with the package: the daemon's listener process needs ``model`` (the envelope) and
``policy`` (the settings) only, and would otherwise keep the whole analysis and the
libraries it reads .msg files with in memory (issue 9's memory target).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from stopitd.analysis.model import Analysis, Envelope, Evidence, Original
from stopitd.analysis.policy import Policy

if TYPE_CHECKING:
    from stopitd.analysis import authres, conclusion, forwarded, received, source, trust
    from stopitd.analysis.headers import parse_fields, split_message

__all__ = ["analyze", "conclude"]

_parts_imported = False


def _import_parts() -> None:
    """Import the parts into this module's globals, once: an import statement run on every
    call (a lookup in sys.modules and a fromlist walk each time) costs ~5 K instructions
    per message."""
    global _parts_imported, authres, conclusion, forwarded, received, source, trust
    global parse_fields, split_message
    from stopitd.analysis import authres, conclusion, forwarded, received, source, trust
    from stopitd.analysis.headers import parse_fields, split_message

    _parts_imported = True


def _analyze_original(original: Original, policy: Policy) -> Original:
    if original.header_fields is not None:
        fields = list(original.header_fields)
    else:
        header_block, _ = split_message(original.raw)
        fields = parse_fields(header_block, policy.limits.max_headers)
    hops = [received.read_received(f.value) for f in fields if f.key == "received"]
    walk = trust.walk(hops, fields, policy.trust)
    recorded = authres.read_recorded(fields, walk, policy.trust)
    estimate = source.estimate(original, walk, recorded, None, policy.trust, fields)
    # ``replace(original, ...)`` spelt out (dataclasses.replace is slow), the fields passed
    # in their order, by position: a class called with keywords passes them in a dict
    # (test_positional checks the order).
    return Original(
        original.how,
        original.grade,
        original.raw,
        original.fields,
        original.findings + walk.findings + recorded.findings + estimate.findings,
        walk.hops,  # hops
        estimate.source,  # source
        recorded.summary,  # auth
        original.envelope_sender,
        original.sha256,
        original.found_in,
        original.filename,
        original.feedback,
        None,  # header_fields
    )


def analyze(
    raw: bytes, envelope: Envelope, policy: Policy, *, as_original: bool = False
) -> Analysis:
    """Find the originals in a report and read their trace and auth headers (no DNS).

    With ``as_original`` the bytes are the offending message itself, not a report.
    """
    if not _parts_imported:
        _import_parts()
    del envelope  # reserved: the report's envelope will inform the reply logic
    if as_original:
        report, originals = forwarded.as_original(raw, policy.limits)
    else:
        report, originals = forwarded.find_originals(raw, policy.limits)
    return Analysis(
        report=report,
        originals=tuple(_analyze_original(o, policy) for o in originals),
    )


def conclude(analysis: Analysis, evidence: Evidence, policy: Policy) -> Analysis:
    """Fold verified evidence (DKIM, ARC, SPF, DMARC) into each original's verdict."""
    if not _parts_imported:
        _import_parts()
    given = evidence.originals
    originals = tuple([
        conclusion.conclude(original, given[i] if i < len(given) else None, policy.trust)
        for i, original in enumerate(analysis.originals)
    ])
    if all(map(operator.is_, originals, analysis.originals)):
        return analysis  # nothing folded in: the same value, not a copy
    return Analysis(analysis.report, originals, analysis.schema_version, analysis.analyzer_version)
