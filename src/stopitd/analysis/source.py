"""Walk + recorded auth + evidence -> the source estimate and its reasons (pure).

The walk has decided the hand-off, the origin hop and the mode; this module turns that
into what staff act on: the addresses, who answers for them, how sure we are and why, and
the anomalies of the chain.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from stopitd.analysis import anomalies, ipaddr, providers
from stopitd.analysis.authres import Recorded
from stopitd.analysis.headers import HeaderField, get
from stopitd.analysis.model import (
    Confidence,
    Finding,
    Hop,
    IpClass,
    Mode,
    Original,
    OriginalEvidence,
    Reason,
    Severity,
    SourceEstimate,
)
from stopitd.analysis.policy import TrustPolicy
from stopitd.analysis.trust import Walk

_DKIM_D = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.IGNORECASE)
_IP_IN_TEXT = re.compile(r"[0-9A-Fa-f:.]{3,45}")
# Who the receiver says authenticated: Postfix, Sendmail/Kerio/Critical Path, OpenSMTPD,
# CommuniGate, Courier.
_IDENTITY = re.compile(
    r"\(Authenticated sender: ([^\s)]+)\)|\(authenticated (?:as|user) ([^\s)]+)"
    r"|\bauth=yes user=([^\s;)]+)|\(account ([^\s)]+)|\(AUTH: \S+ ([^\s,)]+)",
    re.IGNORECASE,
)
_STEPS = (Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW, Confidence.NONE)


class Estimate(NamedTuple):
    """What ``estimate`` returns (a NamedTuple: built once per message)."""

    source: SourceEstimate
    findings: tuple[Finding, ...] = ()


def estimate(
    original: Original,
    walk: Walk,
    recorded: Recorded,
    evidence: OriginalEvidence | None,
    policy: TrustPolicy,
    fields: list[HeaderField] | None = None,
) -> Estimate:
    """The verdict for one original. ``fields`` are its header fields (for DKIM d= and the
    configured originating-IP headers); without them those two sources are not used."""
    del evidence  # `conclude` folds verified evidence in later
    fields = fields or []
    findings = anomalies.find(walk.hops, walk.boundary_index, walk.mode is Mode.INTERNAL)
    reasons = list(walk.reasons)
    if not walk.hops:
        reasons = [Reason("no-trace", "The original carries no Received header.")]
        return Estimate(SourceEstimate(reasons=tuple(reasons)), findings)
    if walk.boundary_index is None:
        return Estimate(
            SourceEstimate(reasons=(*reasons, Reason(
                "no-relay", "No Received header could be read as a relay with an address.")),
            ),
            findings,
        )
    relay = walk.hops[walk.boundary_index]
    origin_hop = walk.hops[walk.origin_index] if walk.origin_index is not None else None
    mode = walk.mode
    origin_ip = origin_hop.ip if origin_hop is not None and mode is not Mode.UNKNOWN else ""
    origin_index = walk.origin_index if origin_ip else None
    provider = walk.provider
    hidden = mode is Mode.UNKNOWN and bool(provider)
    # the hop's ip_class is ``classify`` of its ip, already computed by the Received parse
    local = origin_hop is not None and origin_hop.ip_class is not IpClass.PUBLIC and (
        walk.internal or mode is Mode.SUBMISSION
    )
    header_ip = _originating_ip(fields, policy.originating_ip_headers) if hidden or local else ""
    if header_ip:
        who = f"{provider}'s webmail" if hidden else "Our webmail"
        origin_ip = header_ip
        mode = Mode.PROVIDER_ATTESTED if hidden else mode
        origin_index = None
        reasons.append(Reason(
            "originating-ip-header",
            f"{who} recorded the client address {header_ip} in a configured originating-IP "
            "header.",
        ))
    elif hidden:
        reasons.append(Reason("abuse-identifiers", _identifiers(original, fields, provider)))
    if not walk.policy_configured and mode in (Mode.HANDOFF, Mode.PROVIDER_ATTESTED):
        reasons.append(Reason(
            "top-receiver-only",
            "No trust lists are configured: only the top receiver is trusted, and its record "
            "of the sender is the hand-off.",
        ))
    confidence = _confidence(mode, walk, relay, findings, bool(origin_ip))
    # The fields by position, in their order: a class called with keywords passes them in
    # a dict (test_positional checks the order).
    return Estimate(
        SourceEstimate(
            relay.ip,  # relay_ip
            origin_ip,
            mode,
            walk.internal,  # internal
            provider,
            _domains(relay, origin_hop if origin_ip else None, provider),  # responsible_domains
            _identity(origin_hop, recorded),  # authenticated_identity
            None,  # from_authenticated: ``conclude`` decides it
            confidence,
            tuple(reasons),  # reasons
            walk.boundary_index,  # boundary_index
            origin_index,
        ),
        findings,
    )


def _confidence(
    mode: Mode, walk: Walk, relay: Hop, findings: tuple[Finding, ...], has_origin: bool
) -> Confidence:
    if not relay.ip:
        return Confidence.NONE
    if mode is Mode.UNKNOWN:
        level = Confidence.LOW
    elif mode is Mode.PROVIDER_ATTESTED:
        level = Confidence.MEDIUM
    elif walk.policy_configured or walk.internal:
        level = Confidence.HIGH
    else:
        level = Confidence.MEDIUM
    if not has_origin and mode is not Mode.UNKNOWN:
        level = Confidence.LOW
    if findings and any(f.severity is Severity.WARNING for f in findings):
        level = _STEPS[min(_STEPS.index(level) + 1, len(_STEPS) - 2)]
    return level


def _originating_ip(fields: list[HeaderField], names: tuple[str, ...]) -> str:
    for name in names:
        value = get(fields, name)
        if not value:
            continue
        for m in _IP_IN_TEXT.finditer(value[:200]):
            ip = ipaddr.normalise(m.group())
            if ip and ipaddr.is_public(ip):
                return ip
    return ""


def _identifiers(original: Original, fields: list[HeaderField], provider: str) -> str:
    f = original.fields
    parts = []
    if f.message_id:
        parts.append(f"Message-ID <{f.message_id}>")
    if f.date is not None:
        parts.append(f"sent {f.date.strftime('%Y-%m-%d %H:%M:%S')} UTC")
    dkim = _dkim_domains(fields)
    if dkim:
        parts.append("DKIM d=" + ", ".join(dkim))
    what = "; ".join(parts) if parts else "no Message-ID, date or DKIM signature to quote"
    p = providers.PROFILES.get(provider)
    desk = p.abuse_domain if p is not None else provider
    return f"The client address is hidden by {provider}: ask {desk}'s abuse desk with {what}."


def _dkim_domains(fields: list[HeaderField]) -> list[str]:
    out: dict[str, None] = {}  # ordered, and linear however many signatures there are
    for f in fields:
        if f.key != "dkim-signature":
            continue
        m = _DKIM_D.search(f.value)
        if m:
            out.setdefault(m.group(1).lower())
    return list(out)


def _domains(relay: Hop, origin: Hop | None, provider: str) -> tuple[str, ...]:
    out: list[str] = []
    p = providers.PROFILES.get(provider) if provider else None
    origin_name = origin.rdns if origin is not None else ""
    for name in (
        origin_name,
        relay.rdns if relay.rdns != origin_name else "",  # the origin is often the relay
        p.abuse_domain if p is not None else "",
    ):
        d = anomalies.org_domain(name) if name else ""
        if d and d not in out:
            out.append(d)
    return tuple(out)


def _identity(origin: Hop | None, recorded: Recorded) -> str:
    if origin is not None and origin.auth:
        m = _IDENTITY.search(origin.raw[:4096])
        if m:
            return next(g for g in m.groups() if g)
    for rec in recorded.summary.recorded:
        for name, value in rec.properties:
            if name.lower() == "smtp.auth" and value:
                return value
    return ""
