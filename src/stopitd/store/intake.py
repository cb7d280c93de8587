"""Filing an accepted report: thread it, de-duplicate it, or open a new case.

Safe with several stopitd nodes on one PostgreSQL store: every decision that two nodes
could race on is backed by a unique key (the spool id, the de-duplication keys, the
(kind, value) of an identity) and a savepoint: the loser of a race rolls back its
savepoint, looks again (now seeing the winner's committed rows) and joins that case.
Rows are written in one order (case lock, report, keys, identities) so two nodes never
wait on each other in a cycle.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from stopitd.analysis.model import Analysis, Envelope, Original, analysis_to_json
from stopitd.config import IntakeSettings
from stopitd.store import blobs, grouping
from stopitd.store.evidence import write_analysis
from stopitd.store.fingerprints import IdentitySeen, dedupe_keys, identities
from stopitd.store.schema import (
    Case,
    CaseIdentity,
    CaseStatus,
    DedupeKey,
    Event,
    Identity,
    Report,
    ThreadId,
)

SYSTEM_ACTOR = "stopitd"
ATTEMPTS = 5
_MSGID = re.compile(r"<([^<>\s]{1,900})>")
_REPLY_FIELD = re.compile(rb"(?im)^(?:in-reply-to|references)[ \t]*:")


def case_tag(case_id: int, prefix: str = "stopit") -> str:
    return f"[{prefix} #{case_id}]"


def tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(prefix) + r"\s*#\s*(\d{1,12})\s*\]", re.IGNORECASE)


def save_report(
    session: Session,
    *,
    spool_id: str,
    envelope: Envelope,
    raw: bytes,
    analysis: Analysis,
    tag_prefix: str = "stopit",
    flood: IntakeSettings | None = None,
) -> int:
    """File one accepted message as a report; return its case id. Never commits.

    A reply carrying the case tag (or In-Reply-To/References to a message of the case)
    joins that case; an original already reported (same Message-ID, or same header/body
    digest) joins the case that has it; anything else opens a case. Idempotent on
    ``spool_id``: saving the same spool entry again returns the existing case.
    With `flood` set, a reporter beyond its rate gets a flood case instead of new cases
    (store/grouping.py).
    """
    for attempt in range(ATTEMPTS):
        existing = session.scalar(select(Report.case_id).where(Report.spool_id == spool_id))
        if existing is not None:
            return existing
        try:
            with session.begin_nested():
                return _file(session, spool_id, envelope, raw, analysis, tag_prefix, flood)
        except IntegrityError:
            # another node won a race on a unique key; look again and join its rows
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def record_sent_message(session: Session, case_id: int, message_id: str) -> None:
    """Remember a Message-ID stopitd sent for a case, so replies to it thread back."""
    session.add(ThreadId(message_id=message_id.strip().strip("<>"), case_id=case_id, origin="sent"))


def _file(
    session: Session,
    spool_id: str,
    envelope: Envelope,
    raw: bytes,
    analysis: Analysis,
    tag_prefix: str,
    flood: IntakeSettings | None = None,
) -> int:
    now = datetime.now(UTC)
    data = analysis_to_json(analysis)  # once: the report, its analysis row and originals
    keys = sorted({k for o in analysis.originals for k in dedupe_keys(o)})
    when = envelope.received_at or now
    flooding = grouping.count_reporter(session, flood, reporter_of(envelope, analysis), when)
    joined_by = "thread"
    target = _thread_target(session, analysis, raw, tag_prefix)
    if target is None and keys:
        joined_by = "duplicate"
        target = _duplicate_target(session, keys)
    if target is None and flood is not None and flooding is not None:
        joined_by = "flood"
        target = grouping.flood_case(
            session, flood, flooding, spool_id=spool_id, now=now, actor=SYSTEM_ACTOR
        )
    if target is None:
        case = _new_case(analysis, now)
        session.add(case)
        session.flush()
        joined_by = "new"
    else:
        case = session.execute(select(Case).where(Case.id == target).with_for_update()).scalar_one()
    values = report_values(spool_id, case.id, envelope, raw, analysis, data, now, joined_by)
    (values,), held = blobs.set_aside(session, [values])  # SQLite: a big raw goes in after
    report = Report(**values)
    session.add(report)
    session.flush()
    if held[0] is not None:
        blobs.write(session, Report.__tablename__, [report.id], held)
        set_committed_value(report, "raw", raw)
    if joined_by == "new":
        if keys:  # a plain INSERT: a racing node's key makes us retry and join
            session.execute(
                insert(table_of(DedupeKey)), [{"key": k, "case_id": case.id} for k in keys]
            )
    elif joined_by != "flood":  # a flood's originals never pull other reporters into it
        insert_ignore(session, DedupeKey.__table__, [{"key": k, "case_id": case.id} for k in keys])
    write_analysis(session, report, analysis, now=now, data=data, first=True)
    if report.message_id:
        session.execute(
            insert(table_of(ThreadId)),
            {"message_id": report.message_id, "case_id": case.id, "origin": "report"},
        )
    seen = sorted({i for o in analysis.originals for i in identities(o)})
    link_identities(session, case.id, seen)
    if joined_by == "new":
        session.execute(
            insert(table_of(Event)),
            {
                "case_id": case.id,
                "at": now,
                "actor": SYSTEM_ACTOR,
                "kind": "created",
                "detail": {"report": spool_id, "originals": len(analysis.originals)},
            },
        )
    else:
        _update_joined(session, case, analysis, joined_by, spool_id, now)
    if joined_by in ("new", "duplicate"):
        grouping.count_original(
            session, flood, case.id, when, spool_id=spool_id, now=now, actor=SYSTEM_ACTOR
        )
    session.flush()
    return case.id


def report_values(
    spool_id: str,
    case_id: int,
    envelope: Envelope,
    raw: bytes,
    analysis: Analysis,
    data: dict[str, Any],
    now: datetime,
    joined_by: str,
) -> dict[str, Any]:
    """The columns of one `reports` row (``data``: the analysis JSON, built once)."""
    return {
        "spool_id": spool_id,
        "case_id": case_id,
        "received_at": envelope.received_at or now,
        "reporter": reporter_of(envelope, analysis),
        "rcpt_tos": list(envelope.rcpt_tos),
        "peer": envelope.peer,
        "helo": envelope.helo,
        "raw": raw,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "subject": analysis.report.fields.subject,
        "message_id": analysis.report.fields.message_id,
        "analyzer_version": analysis.analyzer_version,
        "analysis": data,
        "created_at": now,
        "joined_by": joined_by,
    }


def reporter_of(envelope: Envelope, analysis: Analysis) -> str:
    if envelope.mail_from:
        return envelope.mail_from
    from_ = analysis.report.fields.from_
    return from_.address if from_ else ""


def _case_original(analysis: Analysis) -> Original | None:
    """The original a case is summarised by: the first one, or for a forward of a forward
    the innermost message inside it (the harassing message, not the friend's forward)."""
    if not analysis.originals:
        return None
    index = 0
    while True:
        inner = next((i for i, o in enumerate(analysis.originals) if o.found_in == index), None)
        if inner is None or inner <= index:
            return analysis.originals[index]
        index = inner


def case_values(analysis: Analysis, now: datetime) -> dict[str, Any]:
    """The columns of the case a report opens (summarised by its case original)."""
    first = _case_original(analysis)
    subject = (first.fields.subject if first else "") or analysis.report.fields.subject
    return {
        "status": CaseStatus.NEW.value,
        "subject": subject,
        "created_at": now,
        "updated_at": now,
        "relay_ip": first.source.relay_ip if first else "",
        "origin_ip": first.source.origin_ip if first else "",
        "source_mode": first.source.mode.value if first else "unknown",
        "from_address": first.fields.from_.address if first and first.fields.from_ else "",
    }


def _new_case(analysis: Analysis, now: datetime) -> Case:
    return Case(**case_values(analysis, now))


@dataclass(eq=False)
class CaseState:
    """A case the batch filer (store/batch.py) touches: loaded (and locked) from the
    store, or opened by the batch (``id`` None until the batch's cases are inserted)."""

    id: int | None
    status: str
    updated_at: datetime
    relay_ip: str
    origin_ip: str
    source_mode: str
    from_address: str
    closed_at: datetime | None = None
    subject: str = ""
    created_at: datetime | None = None
    changed: bool = False

    @property
    def case_id(self) -> int:
        assert self.id is not None, "the batch's new cases are inserted first"
        return self.id


def join_case(
    case: Case | CaseState, analysis: Analysis, how: str, spool_id: str, now: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """Apply one report joining `case` to its columns; return the events (kind, detail)."""
    case.updated_at = now
    first = _case_original(analysis)
    if first is not None and not (case.relay_ip or case.origin_ip):
        # the case opened without evidence (a description); this report brings some
        case.relay_ip = first.source.relay_ip
        case.origin_ip = first.source.origin_ip
        case.source_mode = first.source.mode.value
        case.from_address = first.fields.from_.address if first.fields.from_ else ""
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "report_added",
            {"report": spool_id, "joined_by": how, "originals": len(analysis.originals)},
        )
    ]
    if how == "thread" and case.status == CaseStatus.CLOSED.value:
        case.status = CaseStatus.OPEN.value
        case.closed_at = None
        events.append(("reopened", {"reason": "the reporter replied", "report": spool_id}))
    return events


def _update_joined(
    session: Session, case: Case, analysis: Analysis, how: str, spool_id: str, now: datetime
) -> None:
    for kind, detail in join_case(case, analysis, how, spool_id, now):
        session.add(Event(case_id=case.id, at=now, actor=SYSTEM_ACTOR, kind=kind, detail=detail))


_HEAD_BYTES = 262144


def reply_ids(analysis: Analysis, raw: bytes) -> list[str]:
    """In-Reply-To and References ids of the report (from the analysis, else the raw
    header block), without <>."""
    ids = [i.strip().strip("<>") for i in analysis.report.in_reply_to if i.strip()]
    if ids:
        return ids
    # Only the first _HEAD_BYTES of the (LF-normalised) header block count: normalise a
    # prefix that surely holds them, not the whole raw (25 MB: two more copies of it).
    head = raw[: 2 * _HEAD_BYTES + 8].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    head = head[:_HEAD_BYTES]
    if not _REPLY_FIELD.search(head):
        return ids  # most reports: no header to parse
    msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    for name in ("In-Reply-To", "References"):
        for value in msg.get_all(name) or []:
            ids.extend(_MSGID.findall(str(value)))
    return ids


def _thread_target(session: Session, analysis: Analysis, raw: bytes, prefix: str) -> int | None:
    for match in tag_pattern(prefix).finditer(analysis.report.fields.subject):
        case_id = int(match.group(1))
        if session.get(Case, case_id) is not None:
            return case_id
    ids = reply_ids(analysis, raw)
    if not ids:
        return None
    found: int | None = session.scalar(
        select(ThreadId.case_id)
        .where(ThreadId.message_id.in_(ids))
        .order_by(ThreadId.id.desc())
        .limit(1)
    )
    return found


def _duplicate_target(session: Session, keys: list[str]) -> int | None:
    rows = session.execute(
        select(DedupeKey.key, DedupeKey.case_id).where(DedupeKey.key.in_(keys))
    ).all()
    if not rows:
        return None
    # a Message-ID match beats a digest match; among equals, the oldest case
    best = min(rows, key=lambda r: (not r.key.startswith("mid:"), r.case_id))
    return int(best.case_id)


def link_identities(session: Session, case_id: int, seen: list[IdentitySeen]) -> None:
    """Get-or-create each identity (unique on kind+value) and attach it to the case."""
    link_identities_of_cases(session, [(case_id, seen)])


def link_identities_of_cases(
    session: Session, seen_by_case: list[tuple[int, list[IdentitySeen]]]
) -> None:
    """`link_identities` for several cases at once: three statements in all."""
    wanted = sorted({(i.kind, i.value, i.ip_key) for _, seen in seen_by_case for i in seen})
    if not wanted:
        return
    insert_ignore(
        session,
        Identity.__table__,
        [{"kind": kind, "value": value, "ip_key": key} for kind, value, key in wanted],
    )
    ids = {
        (kind, value): ident_id
        for ident_id, kind, value in session.execute(
            select(Identity.id, Identity.kind, Identity.value).where(
                # both columns: the (kind, value) unique index serves it (value alone scans)
                Identity.kind.in_(sorted({w[0] for w in wanted})),
                Identity.value.in_(sorted({w[1] for w in wanted})),
            )
        )
    }
    links: dict[tuple[int, int], bool] = {}
    for case_id, seen in seen_by_case:
        for i in seen:
            pair = (case_id, ids[(i.kind, i.value)])
            links[pair] = links.get(pair, False) or i.links
    insert_ignore(
        session,
        CaseIdentity.__table__,
        [{"case_id": c, "identity_id": k, "links": v} for (c, k), v in sorted(links.items())],
    )


def table_of(model: type[object]) -> Table:
    table = getattr(model, "__table__", None)
    assert isinstance(table, Table)
    return table


def insert_ignore(session: Session, table: object, rows: list[dict[str, object]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING, on PostgreSQL and SQLite."""
    if not rows:
        return
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(table).on_conflict_do_nothing(), rows)
