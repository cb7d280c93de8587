"""Routing mail to an office, and the rule table that routes new cases automatically."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from stopitd.analysis.model import Analysis, Envelope
from stopitd.config import RoutingRule, Settings
from stopitd.errors import StopitdError
from stopitd.outbound import outbox
from stopitd.outbound.render import EvidenceFile, Templates, compose
from stopitd.outbound.safety import strip_control_headers
from stopitd.store.cases import SYSTEM_ACTOR, case_tag
from stopitd.store.outbox_schema import OutboxKind, OutboxRow
from stopitd.store.schema import Case, Event, Report

log = structlog.get_logger(__name__)


class RoutingError(StopitdError):
    """An unknown office or case: the message says which."""


def _domain_matches(domain: str, wanted: tuple[str, ...]) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == w.lower() or domain.endswith("." + w.lower()) for w in wanted)


def _in_networks(ips: list[str], networks: tuple[str, ...]) -> bool:
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    for ip in ips:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if any(addr.version == n.version and addr in n for n in nets):
            return True
    return False


def rule_matches(rule: RoutingRule, analysis: Analysis, envelope: Envelope) -> bool:
    """Every condition the rule sets must hold for some original (reporter: the envelope)."""
    if rule.reporter_domains:
        reporter_domain = envelope.mail_from.rpartition("@")[2]
        if not _domain_matches(reporter_domain, rule.reporter_domains):
            return False
    needs_original = rule.internal is not None or rule.from_domains or rule.origin_networks
    if not (needs_original or rule.modes):
        return True
    for original in analysis.originals:
        src = original.source
        if rule.internal is not None and src.internal != rule.internal:
            continue
        if rule.modes and src.mode.value not in rule.modes:
            continue
        if rule.from_domains:
            sender = original.fields.from_.address if original.fields.from_ else ""
            if not _domain_matches(sender.rpartition("@")[2], rule.from_domains):
                continue
        if rule.origin_networks and not _in_networks(
            [src.origin_ip, src.relay_ip], rule.origin_networks
        ):
            continue
        return True
    return False


def choose_office(analysis: Analysis, envelope: Envelope, settings: Settings) -> str | None:
    """The office of the first `[routing] rules` entry that matches, or None (pure)."""
    for rule in settings.routing.rules:
        if rule_matches(rule, analysis, envelope):
            return rule.office
    return None


def queue_route_mail(
    session: Session,
    case_id: int,
    office: str,
    settings: Settings,
    *,
    actor: str = SYSTEM_ACTOR,
    now: datetime | None = None,
) -> int:
    """Queue the mail that tells ``office`` about the case; return the outbox id.

    The case base's `stopitd cases route ID OFFICE` sets the office on the case and calls
    this in the same transaction. Never commits.
    """
    now = now or datetime.now(UTC)
    office_cfg = settings.offices.get(office)
    if office_cfg is None:
        known = ", ".join(sorted(settings.offices)) or "none configured"
        raise RoutingError(f"no office {office!r} in the config (offices: {known})")
    case = session.get(Case, case_id)
    if case is None:
        raise RoutingError(f"no case {case_id}")
    reports = list(session.scalars(select(Report).where(Report.case_id == case_id)))
    originals = [o for r in reports for o in r.originals]
    evidence = [
        EvidenceFile(f"report-{r.spool_id}.eml", strip_control_headers(r.raw)) for r in reports
    ]
    context = {
        "tag": case_tag(case_id, settings.reply.tag_prefix),
        "case_id": case_id,
        "office": office,
        "office_description": office_cfg.description,
        "subject": case.subject,
        "status": case.status,
        "created": case.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        "source": {
            "relay_ip": case.relay_ip,
            "origin_ip": case.origin_ip,
            "mode": case.source_mode,
        },
        "report_count": len(reports),
        "reporter_count": len({r.reporter.lower() for r in reports}),
        "originals": [
            {
                "from": o.from_address,
                "date": o.date.strftime("%Y-%m-%d %H:%M UTC") if o.date else "",
                "grade": o.grade,
                "from_authenticated": o.analysis.get("source", {}).get("from_authenticated"),
                "confidence": o.analysis.get("source", {}).get("confidence", "none"),
            }
            for o in originals
        ],
        "evidence": [
            {"filename": e.filename, "sha256": r.sha256, "size": r.size}
            for e, r in zip(evidence, reports, strict=True)
        ]
        if office_cfg.attach_evidence
        else [],
        "organisation": settings.reply.organisation,
    }
    subject, body = Templates(settings.outbound.templates_dir).render("route.txt.j2", context)
    message = compose(
        kind=OutboxKind.ROUTE.value,
        case_id=case_id,
        from_address=settings.from_address,
        from_name=settings.reply.organisation,
        to=office_cfg.address,
        subject=subject,
        body=body,
        now=now,
        mail_from=settings.from_address,
        auto_submitted="auto-generated",
        attachments=evidence if office_cfg.attach_evidence else (),
    )
    row = outbox.queue(
        session, case_id=case_id, kind=OutboxKind.ROUTE, message=message, actor=actor, now=now
    )
    log.info("route_mail_queued", case_id=case_id, office=office, outbox_id=row.id)
    return row.id


def auto_route(
    session: Session,
    *,
    case_id: int,
    office: str | None,
    settings: Settings,
    now: datetime,
) -> str | None:
    """Route a new case to ``office`` (``choose_office``'s pick for its report, None when
    no rule matched): set its office, log it, mail the office."""
    case = session.get(Case, case_id)
    if case is None or case.office is not None:
        return None
    already = session.scalar(
        select(OutboxRow.id).where(
            OutboxRow.case_id == case_id, OutboxRow.kind == OutboxKind.ROUTE.value
        )
    )
    if already is not None:
        return None
    if office is None:
        return None
    case.office = office
    case.updated_at = now
    session.add(
        Event(
            case_id=case_id,
            at=now,
            actor=SYSTEM_ACTOR,
            kind="routed",
            detail={"from": None, "to": office, "by": "routing-rules"},
        )
    )
    if settings.outbound.enabled:
        queue_route_mail(session, case_id, office, settings, now=now)
    return office
