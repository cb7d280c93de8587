"""Reading the case base: list with filters, show, related cases, top sources, stats.

The objects returned are exactly what `--json` prints (docs/cases-json.md).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from stopitd.analysis.model import to_jsonable
from stopitd.store.fingerprints import DOMAIN_KINDS, IP_KINDS, KINDS, ip_key_range
from stopitd.store.grouping import flood_kinds
from stopitd.store.intake import case_tag
from stopitd.store.schema import (
    AnalysisRow,
    Case,
    CaseIdentity,
    Event,
    Identity,
    OriginalRow,
    Report,
)

RELATED_IN_LIST = 20  # related case ids shown per case in `cases list`


@dataclass(frozen=True, slots=True)
class CaseFilter:
    status: str | None = None
    office: str | None = None
    assignee: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ip: str | None = None  # an address or a CIDR; relay or origin
    domain: str | None = None  # From, DKIM or envelope-sender domain
    text: str | None = None  # in the subject or the From address
    limit: int | None = None


DENSE_IDENTITIES = 500  # above this many matching identities (a wide CIDR), probe instead
DENSE_CASES = 5000  # above this many cases showing them (a repeat sender), probe instead


def _has_identity(session: Session, cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """Cases showing an identity that matches `cond`.

    Few matching identities: the cases from the (identity, links, case) index. Many (a
    provider's /16 with thousands of relay addresses): walk the cases newest first and
    probe each one's identities, which stops once the page is full. On SQLite the same
    walk serves an identity shown in over DENSE_CASES cases (a repeat sender): fetching
    and sorting 100 000 scattered case rows took 4-10 s at 1 000 000 cases there (26-41 ms
    with the walk), while PostgreSQL's plan for the id subquery takes 13-46 ms at
    1 000 000. Measured in docs/performance.md, "Case store".
    """
    ids = list(session.scalars(select(Identity.id).where(cond).limit(DENSE_IDENTITIES + 1)))
    if not ids:
        return false()
    if len(ids) > DENSE_IDENTITIES:
        return exists().where(
            CaseIdentity.case_id == Case.id, CaseIdentity.identity_id == Identity.id, cond
        )
    if session.get_bind().dialect.name != "sqlite":  # PostgreSQL: measured fine as is
        return Case.id.in_(select(CaseIdentity.case_id).where(CaseIdentity.identity_id.in_(ids)))
    case_ids = list(
        session.scalars(
            select(CaseIdentity.case_id)
            .where(CaseIdentity.identity_id.in_(ids))
            .limit(DENSE_CASES + 1)
        )
    )
    if len(case_ids) <= DENSE_CASES:
        return Case.id.in_(case_ids)
    return exists().where(CaseIdentity.case_id == Case.id, CaseIdentity.identity_id.in_(ids))


def _filtered(session: Session, flt: CaseFilter) -> Select[Any]:
    query = select(Case)
    if flt.status:
        query = query.where(Case.status == flt.status)
    if flt.office:
        query = query.where(Case.office == flt.office)
    if flt.assignee:
        query = query.where(Case.assignee == flt.assignee)
    if flt.since:
        query = query.where(Case.created_at >= flt.since)
    if flt.until:
        query = query.where(Case.created_at < flt.until)
    if flt.ip:
        low, high = ip_key_range(flt.ip)
        query = query.where(
            _has_identity(
                session, and_(Identity.ip_key.between(low, high), Identity.kind.in_(IP_KINDS))
            )
        )
    if flt.domain:
        domain = flt.domain.strip().lower().rstrip(".")
        query = query.where(
            _has_identity(session, and_(Identity.kind.in_(DOMAIN_KINDS), Identity.value == domain))
        )
    if flt.text:
        query = query.where(_has_text(session, flt.text))
    return query


TEXT_CANDIDATES = 5000  # above this many index hits (a common word), scan newest first


def _has_text(session: Session, term: str) -> ColumnElement[bool]:
    """Cases whose subject or From address contains `term`, in any case (ASCII case on
    SQLite, the database's case rules on PostgreSQL): the plain comparison.

    PostgreSQL serves it from the pg_trgm GIN indexes of migration 0120. On SQLite the
    FTS5 trigram table `cases_text` yields the candidates (a superset: it folds case the
    Unicode way) and the plain comparison re-checks each, so the result is exactly a
    scan's. The trigram table cannot answer terms under 3 characters, and a common term
    is found faster by walking the newest cases until the page is full: both scan.
    """
    plain = or_(
        Case.subject.icontains(term, autoescape=True),
        Case.from_address.icontains(term, autoescape=True),
    )
    if session.get_bind().dialect.name != "sqlite" or len(term) < 3:
        return plain
    if session.execute(text(_SQLITE_TEXT_TABLE)).first() is None:
        return plain  # SQLite without FTS5 trigram: migration 0120 made no table
    phrase = '"' + term.replace('"', '""') + '"'
    ids = list(
        session.scalars(
            text("SELECT rowid FROM cases_text WHERE cases_text MATCH :phrase LIMIT :n"),
            {"phrase": phrase, "n": TEXT_CANDIDATES + 1},
        )
    )
    if not ids:
        return false()
    if len(ids) > TEXT_CANDIDATES:
        return plain
    return and_(Case.id.in_(ids), plain)


_SQLITE_TEXT_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cases_text'"


def list_cases(
    session: Session, flt: CaseFilter, *, tag_prefix: str = "stopit"
) -> list[dict[str, Any]]:
    """Cases newest first, as the objects `cases list --json` prints."""
    query = _filtered(session, flt).order_by(Case.created_at.desc(), Case.id.desc())
    if flt.limit:
        query = query.limit(flt.limit)
    cases: list[Case] = list(session.scalars(query))
    ids = [c.id for c in cases]
    counts = report_counts(session, ids)
    related = related_ids(session, ids, RELATED_IN_LIST)
    floods = flood_kinds(session, ids)
    return [
        case_summary(
            c, *counts.get(c.id, (0, 0)), related.get(c.id, []), tag_prefix, floods.get(c.id)
        )
        for c in cases
    ]


def report_counts(session: Session, case_ids: list[int]) -> dict[int, tuple[int, int]]:
    """case id -> (reports, distinct reporters)."""
    out: dict[int, tuple[int, int]] = {}
    for chunk in _chunks(case_ids, 500):
        rows = session.execute(
            select(
                Report.case_id,
                func.count(Report.id),
                func.count(func.distinct(func.lower(Report.reporter))),
            )
            .where(Report.case_id.in_(chunk))
            .group_by(Report.case_id)
        )
        out.update({case_id: (n, r) for case_id, n, r in rows})
    return out


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def related_ids(session: Session, case_ids: list[int], per_case: int) -> dict[int, list[int]]:
    """case id -> the newest `per_case` cases sharing a linking identity with it.

    One bounded index range per shared identity (a sender seen in 50 000 cases costs
    `per_case` rows, not 50 000).
    """
    if not case_ids:
        return {}
    pairs = session.execute(
        select(CaseIdentity.case_id, CaseIdentity.identity_id).where(
            CaseIdentity.case_id.in_(case_ids), CaseIdentity.links.is_(True)
        )
    ).all()
    by_identity: dict[int, list[int]] = defaultdict(list)
    for case_id, identity_id in pairs:
        by_identity[identity_id].append(case_id)
    neighbours = _newest_cases_per_identity(session, list(by_identity), per_case + 1)
    out: dict[int, set[int]] = defaultdict(set)
    for identity_id, cases in by_identity.items():
        for case_id in cases:
            out[case_id].update(n for n in neighbours.get(identity_id, []) if n != case_id)
    return {c: sorted(out[c], reverse=True)[:per_case] for c in case_ids}


def _newest_cases_per_identity(
    session: Session, identity_ids: list[int], limit: int
) -> dict[int, list[int]]:
    """identity id -> its newest `limit` linking cases: one bounded index range each.

    Written as plain SQL text: composing a 100-part UNION ALL with the expression
    language costs more than running it.
    """
    out: dict[int, list[int]] = defaultdict(list)
    for chunk in _chunks(identity_ids, 100):
        part = (
            "SELECT * FROM (SELECT identity_id, case_id FROM case_identities"
            " WHERE identity_id = :i{n} AND links = TRUE ORDER BY case_id DESC LIMIT :lim) t{n}"
        )
        sql = " UNION ALL ".join(part.format(n=n) for n in range(len(chunk)))
        params: dict[str, int] = {f"i{n}": ident for n, ident in enumerate(chunk)}
        params["lim"] = limit
        for ident, case_id in session.execute(text(sql), params):
            out[ident].append(case_id)
    return out


def case_summary(
    case: Case,
    report_count: int,
    reporter_count: int,
    related: list[int],
    tag_prefix: str = "stopit",
    flood: str | None = None,
) -> dict[str, Any]:
    return {
        "id": case.id,
        "tag": case_tag(case.id, tag_prefix),
        "status": case.status,
        "subject": case.subject,
        "from": case.from_address,
        "created": to_jsonable(case.created_at),
        "updated": to_jsonable(case.updated_at),
        "closed": to_jsonable(case.closed_at) if case.closed_at else None,
        "office": case.office,
        "assignee": case.assignee,
        "report_count": report_count,
        "reporter_count": reporter_count,
        "source": {
            "relay_ip": case.relay_ip,
            "origin_ip": case.origin_ip,
            "mode": case.source_mode,
        },
        "related": related,
        "flood": flood,  # "reporter" | "original" | None: see store/grouping.py
    }


def show_case(
    session: Session, case_id: int, *, tag_prefix: str = "stopit"
) -> dict[str, Any] | None:
    """One case with its reports, originals (analysis JSON), identities, notes, events."""
    case = session.get(Case, case_id)
    if case is None:
        return None
    reports = list(case.reports)
    counts = report_counts(session, [case_id]).get(case_id, (0, 0))
    related = related_ids(session, [case_id], RELATED_IN_LIST)[case_id]
    flood = flood_kinds(session, [case_id]).get(case_id)
    out = case_summary(case, *counts, related, tag_prefix, flood)
    analyses: dict[int, list[AnalysisRow]] = defaultdict(list)
    for row in session.scalars(
        select(AnalysisRow)
        .join(Report, Report.id == AnalysisRow.report_id)
        .where(Report.case_id == case_id)
        .order_by(AnalysisRow.id)
    ):
        analyses[row.report_id].append(row)
    out["reports"] = [
        {
            "spool_id": r.spool_id,
            "received_at": to_jsonable(r.received_at),
            "reporter": r.reporter,
            "peer": r.peer,
            "helo": r.helo,
            "subject": r.subject,
            "message_id": r.message_id,
            "joined_by": r.joined_by,
            "size": r.size,
            "sha256": r.sha256,
            "analyzer_version": r.analyzer_version,
            "analyses": [
                {
                    "analyzer_version": a.analyzer_version,
                    "created": to_jsonable(a.created_at),
                    "current": a.current,
                    "verified": a.verified,
                }
                for a in analyses[r.id]
            ],
            "findings": r.analysis.get("report", {}).get("findings", []),
        }
        for r in reports
    ]
    originals = session.scalars(
        select(OriginalRow)
        .join(AnalysisRow, AnalysisRow.id == OriginalRow.analysis_id)
        .where(OriginalRow.case_id == case_id, AnalysisRow.current.is_(True))
        .order_by(OriginalRow.report_id, OriginalRow.position)
    )
    out["originals"] = [o.analysis for o in originals]
    out["identities"] = [
        {"kind": kind, "value": value, "links": links}
        for kind, value, links in session.execute(
            select(Identity.kind, Identity.value, CaseIdentity.links)
            .join(CaseIdentity, CaseIdentity.identity_id == Identity.id)
            .where(CaseIdentity.case_id == case_id)
            .order_by(Identity.kind, Identity.value)
        )
    ]
    out["notes"] = [
        {"at": to_jsonable(n.at), "author": n.author, "text": n.text} for n in case.notes
    ]
    out["events"] = [
        {"at": to_jsonable(e.at), "actor": e.actor, "kind": e.kind, "detail": e.detail}
        for e in case.events
    ]
    return out


def related_cases(
    session: Session, case_id: int, *, limit: int = 50, tag_prefix: str = "stopit"
) -> list[dict[str, Any]] | None:
    """Cases sharing a linking identity with `case_id`: what they share, and whether a
    stop notice was sent there and reports kept coming after it."""
    if session.get(Case, case_id) is None:
        return None
    mine = aliased(CaseIdentity)
    shared: dict[int, list[dict[str, str]]] = defaultdict(list)
    idents = session.execute(
        select(Identity.id, Identity.kind, Identity.value)
        .join(mine, mine.identity_id == Identity.id)
        .where(mine.case_id == case_id, mine.links.is_(True))
    ).all()
    neighbours = _newest_cases_per_identity(session, [i.id for i in idents], limit + 1)
    for ident in idents:
        for other in neighbours.get(ident.id, []):
            if other != case_id:
                shared[other].append({"kind": ident.kind, "value": ident.value})
    ids = sorted(shared, reverse=True)[:limit]
    cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(ids)))}
    counts = report_counts(session, ids)
    notices = dict(
        session.execute(
            select(Event.case_id, func.min(Event.at))
            .where(Event.case_id.in_(ids), Event.kind == "notice_sent")
            .group_by(Event.case_id)
        ).all()
    )
    last_report = dict(
        session.execute(
            select(Report.case_id, func.max(Report.received_at))
            .where(Report.case_id.in_(ids))
            .group_by(Report.case_id)
        ).all()
    )
    out = []
    for other in ids:
        case = cases[other]
        notice = notices.get(other)
        last = last_report.get(other)
        out.append(
            {
                **case_summary(case, *counts.get(other, (0, 0)), [], tag_prefix),
                "shared": sorted(shared[other], key=lambda s: (s["kind"], s["value"])),
                "notice_sent": to_jsonable(notice) if notice else None,
                "last_report": to_jsonable(last) if last else None,
                "reported_after_notice": bool(notice and last and _utc(last) > _utc(notice)),
            }
        )
    return out


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def top_sources(
    session: Session,
    *,
    kind: str,
    since: datetime | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """The most-reported sources of one identity kind: cases, reports, first/last seen."""
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}")
    # (case, identity) is the key of case_identities and (kind, value) that of
    # identities: within one kind, a value's rows are its distinct cases, so COUNT(*)
    # grouped by the identity counts cases without a DISTINCT sort.
    n_cases = func.count().label("cases")
    query = (
        select(
            Identity.id,
            Identity.value,
            n_cases,
            func.min(Case.created_at).label("first"),
            func.max(Case.created_at).label("last"),
        )
        .join(CaseIdentity, _recent_first(session, since) == Identity.id)
        .join(Case, Case.id == CaseIdentity.case_id)
        .where(Identity.kind == kind)
        .group_by(Identity.id, Identity.value)
        .order_by(n_cases.desc(), Identity.value)
        .limit(limit)
    )
    if since is not None:
        query = query.where(Case.created_at >= since)
    rows = session.execute(query).all()
    reports: dict[int, int] = {}
    if rows:
        counted = (
            select(CaseIdentity.identity_id, func.count())
            .join(Report, Report.case_id == CaseIdentity.case_id)
            .where(CaseIdentity.identity_id.in_([r.id for r in rows]))
            .group_by(CaseIdentity.identity_id)
        )
        if since is not None:
            counted = counted.join(Case, Case.id == CaseIdentity.case_id).where(
                Case.created_at >= since
            )
        reports = {ident: n for ident, n in session.execute(counted)}
    return [
        {
            "kind": kind,
            "value": r.value,
            "cases": r.cases,
            "reports": reports.get(r.id, 0),
            "first_seen": to_jsonable(_utc(r.first)) if r.first else None,
            "last_seen": to_jsonable(_utc(r.last)) if r.last else None,
        }
        for r in rows
    ]


def _recent_first(session: Session, since: datetime | None) -> ColumnElement[int]:
    """`case_identities.identity_id`; with a `since` on SQLite, wrapped so that the
    `(identity, links, case)` index cannot serve the join: SQLite then starts from the
    recent cases (`created_at` index) and looks up their identities by primary key,
    instead of reading every case that shows an identity of the kind."""
    if since is not None and session.get_bind().dialect.name == "sqlite":
        return func.coalesce(CaseIdentity.identity_id, 0)
    return CaseIdentity.identity_id.expression


def stats(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Case counts by status, ISO week (of creation), source mode and office."""
    cond: list[ColumnElement[bool]] = []
    if since is not None:
        cond.append(Case.created_at >= since)
    if until is not None:
        cond.append(Case.created_at < until)

    def by(column: Any) -> dict[str, int]:
        query = select(column, func.count()).select_from(Case).group_by(column)
        if cond:
            query = query.where(and_(*cond))
        return {str(k) if k is not None else "": n for k, n in session.execute(query)}

    week = _week_expr(session)
    weeks = by(week)
    return {
        "total": sum(by(literal_column("1")).values()),
        "by_status": by(Case.status),
        "by_week": dict(sorted(weeks.items())),
        "by_mode": by(Case.source_mode),
        "by_office": by(func.coalesce(Case.office, "")),
    }


def _week_expr(session: Session) -> Any:
    """The Monday (YYYY-MM-DD) of the week a case was created, in UTC."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(
            func.date_trunc("week", func.timezone("UTC", Case.created_at)), "YYYY-MM-DD"
        )
    return func.strftime("%Y-%m-%d", Case.created_at, "weekday 0", "-6 days")


__all__ = [
    "CaseFilter",
    "case_summary",
    "list_cases",
    "related_cases",
    "related_ids",
    "report_counts",
    "show_case",
    "stats",
    "top_sources",
]
