"""Case operations. Each takes a Session and never commits: the caller owns the transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stopitd.analysis.model import Analysis, Envelope, analysis_to_json, to_jsonable
from stopitd.store.schema import Case, CaseStatus, Event, OriginalRow, Report

SYSTEM_ACTOR = "stopitd"


def case_tag(case_id: int, prefix: str = "stopit") -> str:
    return f"[{prefix} #{case_id}]"


def save_report(
    session: Session, *, spool_id: str, envelope: Envelope, raw: bytes, analysis: Analysis
) -> int:
    """File one accepted message as a report on a new case; return the case id.

    Idempotent on ``spool_id``: saving the same spool entry again (after a crash between
    commit and unlinking the spool file, or by a second node) returns the existing case.
    """
    existing = session.scalar(select(Report.case_id).where(Report.spool_id == spool_id))
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            return _insert(session, spool_id, envelope, raw, analysis)
    except IntegrityError:
        # another node saved the same spool id between our check and our insert
        found = session.scalar(select(Report.case_id).where(Report.spool_id == spool_id))
        if found is None:
            raise
        return found


def _insert(
    session: Session, spool_id: str, envelope: Envelope, raw: bytes, analysis: Analysis
) -> int:
    now = datetime.now(UTC)
    data = analysis_to_json(analysis)
    first = analysis.originals[0] if analysis.originals else None
    subject = (first.fields.subject if first else "") or analysis.report.fields.subject
    case = Case(
        status=CaseStatus.NEW.value,
        subject=subject,
        created_at=now,
        updated_at=now,
        relay_ip=first.source.relay_ip if first else "",
        origin_ip=first.source.origin_ip if first else "",
        source_mode=first.source.mode.value if first else "unknown",
    )
    session.add(case)
    session.flush()
    report = Report(
        spool_id=spool_id,
        case_id=case.id,
        received_at=envelope.received_at or now,
        reporter=envelope.mail_from,
        rcpt_tos=list(envelope.rcpt_tos),
        peer=envelope.peer,
        helo=envelope.helo,
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        subject=analysis.report.fields.subject,
        message_id=analysis.report.fields.message_id,
        analyzer_version=analysis.analyzer_version,
        analysis=data,
        created_at=now,
    )
    session.add(report)
    session.flush()
    for position, original in enumerate(analysis.originals):
        session.add(
            OriginalRow(
                report_id=report.id,
                case_id=case.id,
                position=position,
                how=original.how.value,
                grade=original.grade.value,
                raw=original.raw,
                sha256=hashlib.sha256(original.raw).hexdigest(),
                message_id=original.fields.message_id,
                from_address=original.fields.from_.address if original.fields.from_ else "",
                subject=original.fields.subject,
                date=original.fields.date,
                relay_ip=original.source.relay_ip,
                origin_ip=original.source.origin_ip,
                source_mode=original.source.mode.value,
                analysis=data["originals"][position],
            )
        )
    session.add(
        Event(
            case_id=case.id,
            at=now,
            actor=SYSTEM_ACTOR,
            kind="created",
            detail={"report": spool_id, "originals": len(analysis.originals)},
        )
    )
    session.flush()
    return case.id


@dataclass(frozen=True, slots=True)
class CaseFilter:
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


def list_cases(session: Session, flt: CaseFilter) -> list[dict[str, Any]]:
    """Cases newest first, as the objects `cases list --json` prints."""
    counts = (
        select(
            Report.case_id,
            func.count(Report.id).label("reports"),
            func.count(func.distinct(Report.reporter)).label("reporters"),
        )
        .group_by(Report.case_id)
        .subquery()
    )
    query = (
        select(Case, counts.c.reports, counts.c.reporters)
        .join(counts, counts.c.case_id == Case.id, isouter=True)
        .order_by(Case.created_at.desc(), Case.id.desc())
    )
    if flt.status:
        query = query.where(Case.status == flt.status)
    if flt.since:
        query = query.where(Case.created_at >= flt.since)
    if flt.until:
        query = query.where(Case.created_at < flt.until)
    if flt.limit:
        query = query.limit(flt.limit)
    return [
        case_summary(case, reports or 0, reporters or 0)
        for case, reports, reporters in session.execute(query)
    ]


def case_summary(case: Case, report_count: int, reporter_count: int) -> dict[str, Any]:
    return {
        "id": case.id,
        "tag": case_tag(case.id),
        "status": case.status,
        "subject": case.subject,
        "created": to_jsonable(case.created_at),
        "updated": to_jsonable(case.updated_at),
        "office": case.office,
        "assignee": case.assignee,
        "report_count": report_count,
        "reporter_count": reporter_count,
        "source": {
            "relay_ip": case.relay_ip,
            "origin_ip": case.origin_ip,
            "mode": case.source_mode,
        },
        "related": [],
    }


def show_case(session: Session, case_id: int) -> dict[str, Any] | None:
    """One case with its reports, originals (analysis JSON) and events."""
    case = session.get(Case, case_id)
    if case is None:
        return None
    reports = list(case.reports)
    out = case_summary(case, len(reports), len({r.reporter for r in reports}))
    out["reports"] = [
        {
            "spool_id": r.spool_id,
            "received_at": to_jsonable(r.received_at),
            "reporter": r.reporter,
            "peer": r.peer,
            "helo": r.helo,
            "subject": r.subject,
            "message_id": r.message_id,
            "size": r.size,
            "sha256": r.sha256,
            "analyzer_version": r.analyzer_version,
            "findings": r.analysis.get("report", {}).get("findings", []),
        }
        for r in reports
    ]
    out["originals"] = [o.analysis for r in reports for o in r.originals]
    out["notes"] = []
    out["events"] = [
        {"at": to_jsonable(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail}
        for e in case.events
    ]
    return out
