"""Staff-started notices: "please stop" to the sender, or the report to a provider's abuse desk.

A stop notice goes only to a From address the analysis found authenticated
(``source.from_authenticated`` true): a forged sender must not be pestered. It names the
behaviour and the policy and nothing else: not the reporter, not the victim's address, no
evidence. The provider-abuse notice is the alternative for a forged or unauthenticated
sender: it carries the trace headers (recipients redacted), which an abuse desk needs.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from stopitd.analysis.headers import parse_fields, split_message
from stopitd.analysis.model import Analysis, analysis_from_json
from stopitd.config import Settings
from stopitd.errors import StopitdError
from stopitd.outbound import outbox
from stopitd.outbound.render import Outgoing, Templates, compose
from stopitd.outbound.safety import CONTROL_HEADERS
from stopitd.store.cases import case_tag
from stopitd.store.outbox_schema import OutboxKind
from stopitd.store.schema import Case, OriginalRow, Report

NOTICE_KINDS = {"stop": OutboxKind.STOP, "provider-abuse": OutboxKind.PROVIDER_ABUSE}
DEFAULT_BEHAVIOUR = "sending unwanted messages to members of our institution"

# Trace headers an abuse desk needs; recipient headers (the victim) are never copied.
_ABUSE_HEADERS = (
    "received",
    "return-path",
    "from",
    "sender",
    "reply-to",
    "date",
    "message-id",
    "authentication-results",
    "arc-authentication-results",
    "received-spf",
    "dkim-signature",
    "x-originating-ip",
)
_RECEIVED_FOR = re.compile(r"\bfor\s+<?[^\s;>]+@[^\s;>]+>?", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)


class NoticeRefused(StopitdError):
    """The notice must not be sent; the message gives the reason and the alternative."""


@dataclass(frozen=True, slots=True)
class Notice:
    kind: OutboxKind
    message: Outgoing
    forbidden: tuple[str, ...] = field(default=())  # checked absent from the message


def _case_originals(session: Session, case_id: int) -> list[tuple[OriginalRow, Analysis]]:
    rows = session.scalars(
        select(OriginalRow)
        .where(OriginalRow.case_id == case_id)
        .order_by(OriginalRow.report_id, OriginalRow.position)
    )
    out = []
    for row in rows:
        wrapper = {"schema_version": 1, "report": {}, "originals": [row.analysis]}
        out.append((row, analysis_from_json(wrapper, [row.raw])))
    return out


def identifiers(session: Session, case_id: int) -> tuple[str, ...]:
    """What would identify the reporter or the victim: it must not reach the sender."""
    found: set[str] = set()
    for report in session.scalars(select(Report).where(Report.case_id == case_id)):
        if report.reporter:
            found.add(report.reporter.lower())
        for f in parse_fields(split_message(report.raw)[0]):
            if f.key in ("from", "sender", "reply-to"):
                found.update(a.lower() for a in _ADDRESS.findall(f.value))
        for original in report.originals:
            for f in parse_fields(split_message(original.raw)[0]):
                if f.key in ("to", "cc", "bcc", "delivered-to", "x-original-to", "envelope-to"):
                    found.update(a.lower() for a in _ADDRESS.findall(f.value))
    return tuple(sorted(found))


def abuse_address(analysis_original: Analysis) -> str:
    """abuse@ the first responsible domain (RFC 2142), or "" when the analysis names none."""
    for original in analysis_original.originals:
        for domain in original.source.responsible_domains:
            if domain:
                return f"abuse@{domain.lower().rstrip('.')}"
    return ""


def trace_excerpt(raw: bytes) -> str:
    """The original's trace and authentication headers, recipients redacted."""
    lines = []
    for f in parse_fields(split_message(raw)[0]):
        if f.key not in _ABUSE_HEADERS or f.name in CONTROL_HEADERS:
            continue
        text = f.raw.decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
        if f.key == "received":
            text = _RECEIVED_FOR.sub("for <recipient redacted>", text)
        lines.append(text)
    return "\n".join(lines)


def prepare(
    session: Session,
    case_id: int,
    template: str,
    settings: Settings,
    *,
    now: datetime,
    to: str | None = None,
    behaviour: str = DEFAULT_BEHAVIOUR,
) -> Notice:
    """Render a staff notice for the case, or raise NoticeRefused with the reason and the
    alternative. Nothing is queued here."""
    kind = NOTICE_KINDS.get(template)
    if kind is None:
        raise NoticeRefused(
            f"unknown notice template {template!r} (choose: {', '.join(NOTICE_KINDS)})"
        )
    case = session.get(Case, case_id)
    if case is None:
        raise NoticeRefused(f"no case {case_id}")
    originals = _case_originals(session, case_id)
    if not originals:
        raise NoticeRefused(
            f"case {case_id} has no reported original: there is no sender to write to. "
            "Ask the reporter to forward the message as an attachment."
        )
    row, analysis = next(((r, a) for r, a in originals if r.from_address), originals[0])
    original = analysis.originals[0]
    sender = original.fields.from_.address if original.fields.from_ else ""
    tag = case_tag(case_id, settings.reply.tag_prefix)
    forbidden = identifiers(session, case_id)
    context = {
        "tag": tag,
        "case_id": case_id,
        "organisation": settings.reply.organisation,
        "policy_text": settings.reply.policy_text,
        "behaviour": behaviour,
        "message_date": original.fields.date.strftime("%Y-%m-%d") if original.fields.date else "",
        "report_address": settings.smtp.report_addresses[0],
    }
    if kind is OutboxKind.STOP:
        if original.source.from_authenticated is not True:
            state = {None: "unknown", False: "false"}[original.source.from_authenticated]
            alternative = abuse_address(analysis)
            offer = (
                f"`stopitd cases notify {case_id} --template provider-abuse` "
                + (f"mails {alternative}" if alternative else "with --to ABUSE-ADDRESS mails")
                + " the provider's abuse desk instead"
            )
            raise NoticeRefused(
                f"refused: the From address {sender or '(none)'} of case {case_id} is not "
                f"authenticated (source.from_authenticated is {state}), so it may be forged "
                f"and its owner must not be pestered. Alternative: {offer}."
            )
        recipient = to or sender
        context |= {"sender": sender}
        mail_from = settings.from_address
    else:
        recipient = to or abuse_address(analysis)
        if not recipient:
            raise NoticeRefused(
                f"case {case_id}: the analysis names no responsible provider domain; "
                "give the abuse desk's address with --to ADDR"
            )
        context |= {
            "sender": sender,
            "relay_ip": original.source.relay_ip,
            "origin_ip": original.source.origin_ip,
            "mode": original.source.mode.value,
            "from_authenticated": original.source.from_authenticated,
            "trace_headers": trace_excerpt(row.raw),
        }
        mail_from = settings.from_address
    if not recipient or "@" not in recipient:
        raise NoticeRefused(f"case {case_id}: no address to send the notice to (use --to ADDR)")
    subject, body = Templates(settings.outbound.templates_dir).render(f"{template}.txt.j2", context)
    message = compose(
        kind=kind.value,
        case_id=case_id,
        from_address=settings.from_address,
        from_name=settings.reply.organisation,
        to=recipient,
        subject=subject,
        body=body,
        now=now,
        mail_from=mail_from,
    )
    _check_no_identifiers(message, forbidden, recipient)
    return Notice(kind=kind, message=message, forbidden=forbidden)


def _check_no_identifiers(message: Outgoing, forbidden: tuple[str, ...], recipient: str) -> None:
    """Refuse a rendered notice that names the reporter or the victim (an admin template
    can reach more than it should)."""
    text = readable_text(message.raw).lower()
    leaks = [f for f in forbidden if f in text and f != recipient.lower()]
    if leaks:
        raise NoticeRefused(
            f"refused: the rendered notice contains {len(leaks)} address(es) of the reporter "
            "or the recipients of the original; fix the template"
        )


def readable_text(raw: bytes) -> str:
    """Headers (decoded) and every text part (transfer encoding undone), as a reader sees."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [f"{k}: {v}" for k, v in msg.items()]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            parts.append(str(part.get_content()))
    return "\n".join(parts)


def queue_notice(
    session: Session, case_id: int, notice: Notice, *, actor: str, now: datetime
) -> int:
    """Queue a prepared notice (same transaction as the caller's case change)."""
    row = outbox.queue(
        session, case_id=case_id, kind=notice.kind, message=notice.message, actor=actor, now=now
    )
    return row.id
