"""Re-run the analysis on stored raw bytes after an upgrade; the old result is kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from stopitd.analysis import analyze, conclude
from stopitd.analysis.model import (
    ANALYZER_VERSION,
    Analysis,
    Envelope,
    Evidence,
    analysis_from_json,
)
from stopitd.analysis.policy import Policy
from stopitd.store.actions import CaseNotFoundError, record_event
from stopitd.store.evidence import write_analysis
from stopitd.store.fingerprints import dedupe_keys, identities
from stopitd.store.intake import insert_ignore, link_identities
from stopitd.store.schema import AnalysisRow, Case, CaseIdentity, DedupeKey, OriginalRow, Report

Verifier = Callable[[Analysis], Evidence]


@dataclass(frozen=True, slots=True)
class Reanalysed:
    case_id: int
    reports: int  # reports analysed again
    skipped: int  # already at this analyser version (without --force)
    errors: tuple[str, ...]  # reports whose analysis failed (their old result stays)
    from_versions: tuple[str, ...]
    to_version: str


def no_dns(_analysis: Analysis) -> Evidence:
    return Evidence.none()


def reanalyze_case(
    session: Session,
    case_id: int,
    *,
    policy: Policy,
    verifier: Verifier = no_dns,
    actor: str,
    force: bool = False,
) -> Reanalysed:
    case = session.execute(select(Case).where(Case.id == case_id).with_for_update()).scalar()
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    now = datetime.now(UTC)
    done, skipped, errors, before = 0, 0, [], set()
    for report in session.scalars(select(Report).where(Report.case_id == case_id)):
        if not force and report.analyzer_version == ANALYZER_VERSION:
            skipped += 1
            continue
        envelope = Envelope(
            mail_from=report.reporter,
            rcpt_tos=tuple(report.rcpt_tos),
            peer=report.peer,
            helo=report.helo,
            received_at=report.received_at,
        )
        try:
            result = analyze(report.raw, envelope, policy)
            result = conclude(result, verifier(result), policy)
        except Exception as e:  # a bug in the analyser must not stop `--all`
            errors.append(f"{report.spool_id}: {type(e).__name__}: {e}")
            continue
        before.add(report.analyzer_version)
        write_analysis(session, report, result, now=now)
        keys = sorted({k for o in result.originals for k in dedupe_keys(o)})
        insert_ignore(session, DedupeKey.__table__, [{"key": k, "case_id": case_id} for k in keys])
        done += 1
    if done:
        _refresh_case(session, case)
        record_event(
            session,
            case_id,
            actor,
            "reanalyzed",
            {"reports": done, "from": sorted(before), "to": ANALYZER_VERSION},
        )
    session.flush()
    return Reanalysed(
        case_id, done, skipped, tuple(errors), tuple(sorted(before)), ANALYZER_VERSION
    )


def _refresh_case(session: Session, case: Case) -> None:
    """The case's source and identities follow the current analyses of its reports."""
    originals = list(
        session.scalars(
            select(OriginalRow)
            .join(AnalysisRow, AnalysisRow.id == OriginalRow.analysis_id)
            .where(OriginalRow.case_id == case.id, AnalysisRow.current.is_(True))
            .order_by(OriginalRow.report_id, OriginalRow.position)
        )
    )
    if originals:
        first = originals[0]
        case.relay_ip, case.origin_ip = first.relay_ip, first.origin_ip
        case.source_mode = first.source_mode
        case.from_address = first.from_address
    session.execute(delete(CaseIdentity).where(CaseIdentity.case_id == case.id))
    seen = set()
    for row in originals:
        wrapper = {"schema_version": 1, "report": {}, "originals": [row.analysis]}
        (original,) = analysis_from_json(wrapper, [row.raw]).originals
        seen.update(identities(original))
    link_identities(session, case.id, sorted(seen))


def cases_to_reanalyze(session: Session, *, force: bool) -> list[int]:
    """Case ids with a report not yet at this analyser version (all cases with force)."""
    query = select(Report.case_id).distinct().order_by(Report.case_id)
    if not force:
        query = query.where(Report.analyzer_version != ANALYZER_VERSION)
    return list(session.scalars(query))
