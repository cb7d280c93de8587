"""The acknowledgement to the reporter, decided inside the transaction that saves a report."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from stopitd.analysis.headers import get, parse_fields, split_message
from stopitd.analysis.model import Analysis, Envelope, Grade
from stopitd.config import Settings
from stopitd.outbound import outbox
from stopitd.outbound.clients import MailClient, detect_client
from stopitd.outbound.render import Outgoing, Templates, compose
from stopitd.outbound.safety import NoReply, reply_refusal
from stopitd.store.cases import SYSTEM_ACTOR, case_tag
from stopitd.store.outbox_schema import OutboxKind
from stopitd.store.schema import Event

log = structlog.get_logger(__name__)

_TRACEABLE = (Grade.FULL_MESSAGE, Grade.HEADERS_ONLY)


def needs_full_headers(analysis: Analysis) -> bool:
    """No original with trace headers: only an inline summary, a description, or nothing."""
    return not any(o.grade in _TRACEABLE for o in analysis.originals)


def own_addresses(settings: Settings) -> tuple[str, ...]:
    return (*settings.smtp.report_addresses, settings.from_address)


def render_ack(
    *,
    case_id: int,
    raw: bytes,
    analysis: Analysis,
    to: str,
    settings: Settings,
    now: datetime,
    templates: Templates | None = None,
) -> tuple[OutboxKind, Outgoing]:
    """The acknowledgement (or the "please resend with full headers" variant) for a report."""
    templates = templates or Templates(settings.outbound.templates_dir)
    resend = needs_full_headers(analysis)
    client = detect_client(raw) if resend else MailClient.UNKNOWN
    kind = OutboxKind.RESEND if resend else OutboxKind.ACK
    context = {
        "tag": case_tag(case_id, settings.reply.tag_prefix),
        "case_id": case_id,
        "report_subject": analysis.report.fields.subject,
        "originals_found": len(analysis.originals),
        "client": client.value,
        "emergency_text": settings.reply.emergency_text,
        "organisation": settings.reply.organisation,
        "report_address": settings.smtp.report_addresses[0],
    }
    subject, body = templates.render(f"{kind.value}.txt.j2", context)
    fields = parse_fields(split_message(raw)[0])
    references = (get(fields, "references") or "").split()
    message = compose(
        kind=kind.value,
        case_id=case_id,
        from_address=settings.from_address,
        from_name=settings.reply.organisation,
        to=to,
        subject=subject,
        body=body,
        now=now,
        mail_from="",  # RFC 3834 §3.3: automatic replies go out with the null sender
        in_reply_to=analysis.report.fields.message_id,
        references=[r.strip("<>") for r in references],
        auto_submitted="auto-replied",
    )
    return kind, message


def acknowledge(
    session: Session,
    *,
    case_id: int,
    spool_id: str,
    raw: bytes,
    analysis: Analysis,
    envelope: Envelope,
    plain: NoReply | None,
    settings: Settings,
    now: datetime,
) -> NoReply | int:
    """Queue the acknowledgement for one saved report; return the outbox id, or why not.

    ``plain`` is ``plain_refusal`` of the report, decided by the caller (once per report).

    Idempotent on the spool id (saving a report again decides nothing again), and one
    acknowledgement per reporter and case (a follow-up from the same reporter gets none).
    """
    if outbox.already_answered(session, case_id, spool_id):
        return NoReply.ALREADY_DECIDED
    reporter = reporter_address(envelope)
    why = plain if plain is not None else _refusal(session, case_id, reporter, settings, now)
    if why is not None:
        session.add(Event(**skipped_event(case_id, spool_id, why, now)))
        return why
    kind, message = render_ack(
        case_id=case_id, raw=raw, analysis=analysis, to=reporter, settings=settings, now=now
    )
    row = outbox.queue(
        session,
        case_id=case_id,
        kind=kind,
        message=message,
        actor=SYSTEM_ACTOR,
        now=now,
        report_spool_id=spool_id,
    )
    log.info("ack_queued", case_id=case_id, outbox_id=row.id, mail=kind.value)
    return row.id


def skipped_event(case_id: int, spool_id: str, why: NoReply, now: datetime) -> dict[str, Any]:
    """The ``ack_skipped`` event row of a report that gets no acknowledgement (logged)."""
    log.info("ack_skipped", case_id=case_id, reason=why.value)
    return {
        "case_id": case_id,
        "at": now,
        "actor": SYSTEM_ACTOR,
        "kind": "ack_skipped",
        "detail": {"report": spool_id, "reason": why.value},
    }


def plain_refusal(raw: bytes, reporter: str, settings: Settings) -> NoReply | None:
    """The reasons not to acknowledge that need no look-up in the store (pure)."""
    if not settings.outbound.enabled or not settings.reply.acknowledge:
        return NoReply.DISABLED
    return reply_refusal(raw, reporter, own_addresses(settings))


def reporter_address(envelope: Envelope) -> str:
    return envelope.mail_from.strip().strip("<>")


def _refusal(
    session: Session, case_id: int, reporter: str, settings: Settings, now: datetime
) -> NoReply | None:
    """The reasons not to acknowledge that the store holds (the plain ones are decided)."""
    if outbox.acknowledged(session, case_id, reporter):
        return NoReply.ALREADY_ACKNOWLEDGED
    since = now - timedelta(days=1)
    if (
        outbox.automatic_sent_since(session, reporter, since)
        >= settings.reply.daily_cap_per_address
    ):
        return NoReply.DAILY_CAP
    return None
