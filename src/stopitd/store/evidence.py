"""Write one analysis of a report into its tables: originals, hops, auth, verdicts, findings."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, update
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


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


ANALYSES, ORIGINALS = _table(AnalysisRow), _table(OriginalRow)
HOPS, VERDICTS, AUTH_RESULTS, FINDINGS = (
    _table(HopRow),
    _table(VerdictRow),
    _table(AuthResultRow),
    _table(FindingRow),
)


def write_analysis(
    session: Session,
    report: Report,
    analysis: Analysis,
    *,
    now: datetime,
    data: dict[str, Any] | None = None,
    first: bool = False,
) -> int:
    """Add `analysis` as the report's current analysis; earlier ones stay, not current.

    Returns the new ``analyses`` row id. ``data`` is ``analysis_to_json(analysis)`` when
    the caller already has it; ``first`` says the report was just inserted (no earlier
    analysis to mark). The rows go in as Core INSERTs, several rows per statement: the
    ORM's unit of work per hop, auth result and finding was most of a report's save time.
    """
    if data is None:
        data = analysis_to_json(analysis)
    if not first:
        session.execute(
            update(AnalysisRow).where(AnalysisRow.report_id == report.id).values(current=False)
        )
    analysis_id: int = session.execute(
        insert(ANALYSES).returning(ANALYSES.c.id),
        {
            "report_id": report.id,
            "analyzer_version": analysis.analyzer_version,
            "schema_version": analysis.schema_version,
            "created_at": now,
            "current": True,
            "verified": any(o.auth.verified for o in analysis.originals),
            "result": data,
        },
    ).scalar_one()
    if report.analysis is not data:
        report.analysis = data
    if report.analyzer_version != analysis.analyzer_version:
        report.analyzer_version = analysis.analyzer_version
    rows = _Rows()
    for finding in analysis.report.findings:
        rows.findings.append(_finding(analysis_id, None, finding))
    for position, original in enumerate(analysis.originals):
        original_id = _insert_original(
            session, report, analysis_id, position, original, data["originals"][position]
        )
        rows.add_original(analysis_id, original_id, original)
    rows.insert(session)
    return analysis_id


class _Rows:
    """The leaf rows of one analysis, inserted per table in one statement each."""

    def __init__(self) -> None:
        self.hops: list[dict[str, Any]] = []
        self.verdicts: list[dict[str, Any]] = []
        self.auth: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []

    def add_original(self, analysis_id: int, original_id: int, original: Original) -> None:
        src = original.source
        for i, hop in enumerate(original.hops):
            self.hops.append(
                {
                    "original_id": original_id,
                    "position": i,
                    "status": hop.status.value,
                    "ip": hop.ip,
                    "rdns": hop.rdns,
                    "helo": hop.helo,
                    "by_host": hop.by,
                    "protocol": hop.with_[:32],
                    "trust": hop.trust.value,
                    "date": hop.date,
                    "raw": hop.raw,
                }
            )
        self.verdicts.append(
            {
                "original_id": original_id,
                "mode": src.mode.value,
                "relay_ip": src.relay_ip,
                "origin_ip": src.origin_ip,
                "provider": src.provider,
                "internal": src.internal,
                "confidence": src.confidence.value,
                "from_authenticated": src.from_authenticated,
                "authenticated_identity": src.authenticated_identity,
                "reasons": [{"code": r.code, "text": r.text} for r in src.reasons],
            }
        )
        self.auth.extend(_auth_rows(original_id, original))
        for finding in original.findings:
            self.findings.append(_finding(analysis_id, original_id, finding))

    def insert(self, session: Session) -> None:
        for table, rows in (
            (HOPS, self.hops),
            (VERDICTS, self.verdicts),
            (AUTH_RESULTS, self.auth),
            (FINDINGS, self.findings),
        ):
            if rows:
                session.execute(insert(table), rows)


def _finding(analysis_id: int, original_id: int | None, finding: Any) -> dict[str, Any]:
    return {
        "analysis_id": analysis_id,
        "original_id": original_id,
        "code": finding.code[:64],
        "severity": finding.severity.value,
        "text": finding.text,
    }


def _insert_original(
    session: Session,
    report: Report,
    analysis_id: int,
    position: int,
    original: Original,
    data: dict[str, Any],
) -> int:
    f = original.fields
    src = original.source
    original_id: int = session.execute(
        insert(ORIGINALS).returning(ORIGINALS.c.id),
        {
            "report_id": report.id,
            "analysis_id": analysis_id,
            "case_id": report.case_id,
            "position": position,
            "how": original.how.value,
            "grade": original.grade.value,
            "raw": original.raw,
            "sha256": hashlib.sha256(original.raw).hexdigest(),
            "message_id": f.message_id,
            "from_address": f.from_.address if f.from_ else "",
            "subject": f.subject,
            "date": f.date,
            "relay_ip": src.relay_ip,
            "origin_ip": src.origin_ip,
            "source_mode": src.mode.value,
            "analysis": data,
        },
    ).scalar_one()
    return original_id


def _auth_rows(original_id: int, original: Original) -> list[dict[str, Any]]:
    auth = original.auth

    def row(source: str, method: str, domain: str, result: str, what: Any) -> dict[str, Any]:
        return dict(
            original_id=original_id,
            source=source,
            method=method,
            domain=domain,
            result=result,
            detail=to_jsonable(what),
        )

    rows = [row("verified", "dkim", sig.domain, sig.result.value, sig) for sig in auth.dkim]
    if auth.arc.instances or auth.arc.cv.value != "none":
        domain = auth.arc.instances[0].domain if auth.arc.instances else ""
        rows.append(row("verified", "arc", domain, auth.arc.cv.value, auth.arc))
    if auth.spf is not None:
        rows.append(row("verified", "spf", auth.spf.domain, auth.spf.result.value, auth.spf))
    if auth.dmarc is not None:
        dmarc = auth.dmarc
        rows.append(row("verified", "dmarc", dmarc.from_domain, dmarc.result.value, dmarc))
    for rec in auth.recorded:
        domain = next((v for k, v in rec.properties if k in ("header.d", "smtp.mailfrom")), "")
        rows.append(
            row("recorded", rec.method[:16], domain.rpartition("@")[2], rec.result[:16], rec)
        )
    for claim in auth.untrusted:
        rows.append(row("untrusted", claim.header[:16], claim.authserv_id, "", claim))
    return rows
