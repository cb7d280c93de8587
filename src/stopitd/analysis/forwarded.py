"""Find every reported original inside a report (pure)."""

from __future__ import annotations

import hashlib
import re

from stopitd.analysis.fields import key_fields
from stopitd.analysis.headers import get, parse_fields, split_message
from stopitd.analysis.model import Finding, Grade, How, Original, ReportInfo, Severity
from stopitd.analysis.policy import Limits

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _report_info(raw: bytes, limits: Limits) -> ReportInfo:
    block, _ = split_message(raw)
    fields = parse_fields(block, limits.max_headers)
    return ReportInfo(
        fields=key_fields(fields),
        auto_submitted=get(fields, "auto-submitted") or "",
        sha256=_sha(raw),
        size=len(raw),
    )


def _original(raw: bytes, how: How, limits: Limits) -> Original:
    block, _ = split_message(raw)
    fields = parse_fields(block, limits.max_headers)
    return Original(
        how=how,
        grade=Grade.FULL_MESSAGE,
        raw=raw,
        fields=key_fields(fields),
        envelope_sender=(get(fields, "return-path") or "").strip().strip("<>"),
        sha256=_sha(raw),
    )


def as_original(raw: bytes, limits: Limits) -> tuple[ReportInfo, tuple[Original, ...]]:
    """The file is the offending message itself (`stopitd analyze --original`)."""
    return _report_info(raw, limits), (_original(raw, How.DIRECT, limits),)


def find_originals(raw: bytes, limits: Limits) -> tuple[ReportInfo, tuple[Original, ...]]:
    """Every original in the report, in order: message/rfc822 parts of a multipart report."""
    report = _report_info(raw, limits)
    block, body = split_message(raw)
    ctype = get(parse_fields(block, limits.max_headers), "content-type") or ""
    originals: list[Original] = []
    m = _BOUNDARY.search(ctype)
    if m:
        delimiter = b"--" + m.group(1).encode("utf-8", "replace")
        for part in body.split(delimiter)[1:]:
            part = part.lstrip(b"\r\n")
            pblock, pbody = split_message(part)
            ptype = (get(parse_fields(pblock), "content-type") or "").lower()
            if ptype.startswith("message/rfc822"):
                inner = pbody.rstrip(b"\r\n") + b"\r\n"
                originals.append(_original(inner, How.ATTACHMENT, limits))
    findings: tuple[Finding, ...] = ()
    if not originals:
        findings = (Finding("no-original", Severity.WARNING, "No forwarded original was found."),)
    return ReportInfo(
        fields=report.fields,
        findings=findings,
        auto_submitted=report.auto_submitted,
        sha256=report.sha256,
        size=report.size,
    ), tuple(originals)
