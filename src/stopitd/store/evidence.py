"""Write one analysis of a report into its tables: originals, hops, auth, verdicts, findings."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from stopitd.analysis.model import Analysis, Original, analysis_to_json, to_jsonable
from stopitd.store.schema import (
    AnalysisRow,
    AuthResultRow,
    FindingRow,
    HopRow,
    OriginalRow,
    Report,
    VerdictRow,
)


def write_analysis(
    session: Session, report: Report, analysis: Analysis, *, now: datetime
) -> AnalysisRow:
    """Add `analysis` as the report's current analysis; earlier ones stay, not current."""
    data = analysis_to_json(analysis)
    session.execute(
        update(AnalysisRow).where(AnalysisRow.report_id == report.id).values(current=False)
    )
    verified = any(o.auth.verified for o in analysis.originals)
    row = AnalysisRow(
        report_id=report.id,
        analyzer_version=analysis.analyzer_version,
        schema_version=analysis.schema_version,
        created_at=now,
        current=True,
        verified=verified,
        result=data,
    )
    session.add(row)
    session.flush()
    report.analysis = data
    report.analyzer_version = analysis.analyzer_version
    for finding in analysis.report.findings:
        session.add(_finding(row.id, None, finding))
    for position, original in enumerate(analysis.originals):
        _write_original(session, report, row, position, original, data["originals"][position])
    session.flush()
    return row


def _finding(analysis_id: int, original_id: int | None, finding: Any) -> FindingRow:
    return FindingRow(
        analysis_id=analysis_id,
        original_id=original_id,
        code=finding.code[:64],
        severity=finding.severity.value,
        text=finding.text,
    )


def _write_original(
    session: Session,
    report: Report,
    analysis_row: AnalysisRow,
    position: int,
    original: Original,
    data: dict[str, Any],
) -> None:
    f = original.fields
    src = original.source
    row = OriginalRow(
        report_id=report.id,
        analysis_id=analysis_row.id,
        case_id=report.case_id,
        position=position,
        how=original.how.value,
        grade=original.grade.value,
        raw=original.raw,
        sha256=hashlib.sha256(original.raw).hexdigest(),
        message_id=f.message_id,
        from_address=f.from_.address if f.from_ else "",
        subject=f.subject,
        date=f.date,
        relay_ip=src.relay_ip,
        origin_ip=src.origin_ip,
        source_mode=src.mode.value,
        analysis=data,
    )
    session.add(row)
    session.flush()
    for i, hop in enumerate(original.hops):
        session.add(
            HopRow(
                original_id=row.id,
                position=i,
                status=hop.status.value,
                ip=hop.ip,
                rdns=hop.rdns,
                helo=hop.helo,
                by_host=hop.by,
                protocol=hop.with_[:32],
                trust=hop.trust.value,
                date=hop.date,
                raw=hop.raw,
            )
        )
    session.add(
        VerdictRow(
            original_id=row.id,
            mode=src.mode.value,
            relay_ip=src.relay_ip,
            origin_ip=src.origin_ip,
            provider=src.provider,
            internal=src.internal,
            confidence=src.confidence.value,
            from_authenticated=src.from_authenticated,
            authenticated_identity=src.authenticated_identity,
            reasons=[{"code": r.code, "text": r.text} for r in src.reasons],
        )
    )
    for auth in _auth_rows(row.id, original):
        session.add(auth)
    for finding in original.findings:
        session.add(_finding(analysis_row.id, row.id, finding))


def _auth_rows(original_id: int, original: Original) -> list[AuthResultRow]:
    auth = original.auth
    rows = [
        AuthResultRow(
            original_id=original_id,
            source="verified",
            method="dkim",
            domain=sig.domain,
            result=sig.result.value,
            detail=to_jsonable(sig),
        )
        for sig in auth.dkim
    ]
    if auth.arc.instances or auth.arc.cv.value != "none":
        rows.append(
            AuthResultRow(
                original_id=original_id,
                source="verified",
                method="arc",
                domain=auth.arc.instances[0].domain if auth.arc.instances else "",
                result=auth.arc.cv.value,
                detail=to_jsonable(auth.arc),
            )
        )
    if auth.spf is not None:
        rows.append(
            AuthResultRow(
                original_id=original_id,
                source="verified",
                method="spf",
                domain=auth.spf.domain,
                result=auth.spf.result.value,
                detail=to_jsonable(auth.spf),
            )
        )
    if auth.dmarc is not None:
        rows.append(
            AuthResultRow(
                original_id=original_id,
                source="verified",
                method="dmarc",
                domain=auth.dmarc.from_domain,
                result=auth.dmarc.result.value,
                detail=to_jsonable(auth.dmarc),
            )
        )
    for rec in auth.recorded:
        domain = next((v for k, v in rec.properties if k in ("header.d", "smtp.mailfrom")), "")
        rows.append(
            AuthResultRow(
                original_id=original_id,
                source="recorded",
                method=rec.method[:16],
                domain=domain.rpartition("@")[2],
                result=rec.result[:16],
                detail=to_jsonable(rec),
            )
        )
    for claim in auth.untrusted:
        rows.append(
            AuthResultRow(
                original_id=original_id,
                source="untrusted",
                method=claim.header[:16],
                domain=claim.authserv_id,
                result="",
                detail=to_jsonable(claim),
            )
        )
    return rows
