"""Retention: purge closed cases older than a cutoff, leaving a summary row behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from stopitd.store.grouping import FloodWindow
from stopitd.store.schema import (
    AnalysisRow,
    AuthResultRow,
    Case,
    CaseIdentity,
    CaseStatus,
    DedupeKey,
    Event,
    FindingRow,
    HopRow,
    Note,
    OriginalRow,
    Purge,
    Report,
    ThreadId,
    VerdictRow,
)


def purgeable(session: Session, older_than_days: int, now: datetime | None = None) -> list[int]:
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    return list(
        session.scalars(
            select(Case.id)
            .where(Case.status == CaseStatus.CLOSED.value, Case.closed_at < cutoff)
            .order_by(Case.id)
        )
    )


def purge(
    session: Session, older_than_days: int, actor: str, *, now: datetime | None = None
) -> Purge:
    """Delete closed cases closed before now - older_than_days, with all their evidence.

    The cases are gone afterwards (that is the point of retention); the `purges` row says
    when, by whom, with which cutoff, and which case ids went.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=older_than_days)
    ids = purgeable(session, older_than_days, now)
    reports = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        reports += (
            session.scalar(select(func.count(Report.id)).where(Report.case_id.in_(chunk))) or 0
        )
        _delete_cases(session, chunk)
    row = Purge(
        at=now,
        actor=actor,
        older_than_days=older_than_days,
        cutoff=cutoff,
        case_count=len(ids),
        report_count=reports,
        case_ids=ids,
    )
    session.add(row)
    session.flush()
    return row


def _delete_cases(session: Session, ids: list[int]) -> None:
    originals = select(OriginalRow.id).where(OriginalRow.case_id.in_(ids))
    reports = select(Report.id).where(Report.case_id.in_(ids))
    analyses = select(AnalysisRow.id).where(AnalysisRow.report_id.in_(reports))
    opts: dict[str, Any] = {"synchronize_session": False}
    session.execute(delete(HopRow).where(HopRow.original_id.in_(originals)), execution_options=opts)
    session.execute(
        delete(AuthResultRow).where(AuthResultRow.original_id.in_(originals)),
        execution_options=opts,
    )
    session.execute(
        delete(VerdictRow).where(VerdictRow.original_id.in_(originals)), execution_options=opts
    )
    session.execute(
        delete(FindingRow).where(FindingRow.analysis_id.in_(analyses)), execution_options=opts
    )
    session.execute(delete(OriginalRow).where(OriginalRow.case_id.in_(ids)), execution_options=opts)
    session.execute(
        delete(AnalysisRow).where(AnalysisRow.report_id.in_(reports)), execution_options=opts
    )
    for table in (Report, DedupeKey, ThreadId, CaseIdentity, Note, Event, FloodWindow):
        session.execute(
            delete(table).where(table.case_id.in_(ids)),
            execution_options=opts,
        )
    session.execute(delete(Case).where(Case.id.in_(ids)), execution_options=opts)
