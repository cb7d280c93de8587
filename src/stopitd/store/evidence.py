"""Write one analysis of a report into its tables: originals, hops, auth, verdicts, findings."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, update
from sqlalchemy.orm import Session

from stopitd.analysis.model import Analysis, Original, analysis_to_json, to_jsonable
from stopitd.store import blobs
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
    row = _analysis_row(NewAnalysis(report.id, report.case_id, analysis, data), now)
    analysis_id: int = session.execute(insert(ANALYSES).returning(ANALYSES.c.id), row).scalar_one()
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
    row = _original_row(report.id, report.case_id, analysis_id, position, original, data)
    (row,), held = blobs.set_aside(session, [row])
    original_id: int = session.execute(
        insert(ORIGINALS).returning(ORIGINALS.c.id), row
    ).scalar_one()
    blobs.write(session, ORIGINALS.name, [original_id], held)
    return original_id


def _original_row(
    report_id: int,
    case_id: int,
    analysis_id: int,
    position: int,
    original: Original,
    data: dict[str, Any],
) -> dict[str, Any]:
    f = original.fields
    src = original.source
    return {
        "report_id": report_id,
        "analysis_id": analysis_id,
        "case_id": case_id,
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
    }


@dataclass(frozen=True, slots=True)
class NewAnalysis:
    """The first analysis of a report just inserted (``data``: its JSON, built once)."""

    report_id: int
    case_id: int
    analysis: Analysis
    data: dict[str, Any]


def write_first_analyses(session: Session, items: list[NewAnalysis], *, now: datetime) -> None:
    """`write_analysis(..., first=True)` for a batch of new reports: one multi-row INSERT
    per table for the whole batch (ids come back in the order of the rows)."""
    if not items:
        return
    analysis_ids = insert_returning_ids(session, ANALYSES, [_analysis_row(i, now) for i in items])
    positions: list[tuple[int, Original]] = []
    original_rows: list[dict[str, Any]] = []
    rows = _Rows()
    for item, analysis_id in zip(items, analysis_ids, strict=True):
        for finding in item.analysis.report.findings:
            rows.findings.append(_finding(analysis_id, None, finding))
        for position, original in enumerate(item.analysis.originals):
            positions.append((analysis_id, original))
            original_rows.append(
                _original_row(
                    item.report_id,
                    item.case_id,
                    analysis_id,
                    position,
                    original,
                    item.data["originals"][position],
                )
            )
    original_ids = insert_returning_ids(session, ORIGINALS, original_rows)
    for (analysis_id, original), original_id in zip(positions, original_ids, strict=True):
        rows.add_original(analysis_id, original_id, original)
    rows.insert(session)


def _analysis_row(item: NewAnalysis, now: datetime) -> dict[str, Any]:
    return {
        "report_id": item.report_id,
        "analyzer_version": item.analysis.analyzer_version,
        "schema_version": item.analysis.schema_version,
        "created_at": now,
        "current": True,
        "verified": any(o.auth.verified for o in item.analysis.originals),
        "result": item.data,
    }


def insert_returning_ids(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` with multi-row statements and return their ids in row order.

    PostgreSQL: SQLAlchemy's "insertmanyvalues" with ``sort_by_parameter_order`` (it
    orders the RETURNING rows by a counter it sends along). SQLite would fall back to one
    statement per row for that, so there the rows go in as one ``INSERT … VALUES (…),
    (…)`` per chunk: SQLite inserts the VALUES rows in order and gives each the next
    rowid (max + 1, also under AUTOINCREMENT), so the ids in ascending order are the
    rows' ids in order, whatever the order RETURNING lists them in.
    """
    if not rows:
        return []
    rows, held = blobs.set_aside(session, rows)  # SQLite: a big `raw` goes in afterwards
    if session.get_bind().dialect.name != "sqlite":
        result = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        return [int(row_id) for row_id in result.scalars()]
    ids: list[int] = []
    per_chunk = max(1, _SQLITE_MAX_PARAMETERS // len(rows[0]))
    for start in range(0, len(rows), per_chunk):
        chunk = rows[start : start + per_chunk]
        returned = session.execute(insert(table).values(chunk).returning(table.c.id)).scalars()
        got = sorted(int(row_id) for row_id in returned)
        assert len(got) == len(chunk) and got[-1] - got[0] == len(got) - 1, "ids in one run"
        ids.extend(got)
    blobs.write(session, table.name, ids, held)
    return ids


_SQLITE_MAX_PARAMETERS = 30000  # SQLite's limit per statement is 32 766 (3.32 and later)


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
