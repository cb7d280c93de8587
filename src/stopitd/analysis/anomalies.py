"""Odd or forged-looking things in a labelled Received chain, as findings (pure).

Each check reports at most ``_CAP`` findings so a hostile chain of 10 000 hops yields a
readable list, not 10 000 lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from stopitd.analysis import ipaddr
from stopitd.analysis.model import Finding, Hop, HopStatus, IpClass, Severity, Trust
from stopitd.analysis.trust import CLOCK_SKEW

ABSURD_HOPS = 50
_CAP = 5
_NO_BOGON = frozenset((IpClass.PUBLIC, IpClass.NONE))
_SHORT_SLD = {"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go"}


def org_domain(host: str) -> str:
    """A cheap registrable-domain guess (last two labels, three under co.uk & co)."""
    h = host.lower().rstrip(".")
    if not h or "." not in h or ipaddr.is_address(h):
        return ""
    return _registrable(h)


def _registrable(h: str) -> str:
    """``org_domain`` of ``h``: lower case, no trailing dot, a dot inside, no address."""
    labels = h.split(".")
    if len(labels) >= 3 and labels[-2] in _SHORT_SLD and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _same_host(a: str, b: str) -> bool:
    if not a or not b:
        return True  # nothing to compare
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if a == b or ipaddr.is_address(a) or ipaddr.is_address(b):
        return True
    if "localhost" in (a, b) or "." not in a or "." not in b:
        return True  # bare host names and localhost say nothing
    return _registrable(a) == _registrable(b)  # both checked as org_domain would


def _helo_ip(helo: str) -> str:
    h = helo.strip()
    if h.startswith("[") or h[:1].isdigit():
        return ipaddr.normalise(h)
    return ""


def find(hops: Sequence[Hop], boundary: int | None, internal: bool = False) -> tuple[Finding, ...]:
    """``internal``: the walk found the sender inside our networks (no outside hand-off)."""
    out: list[Finding] = []
    n = len(hops)
    if n > ABSURD_HOPS:
        out.append(Finding(
            "hop-count-absurd", Severity.WARNING,
            f"{n} Received headers: real mail crosses a handful; this chain is padded or looped.",
        ))
    unparseable = [h.status for h in hops].count(HopStatus.UNPARSEABLE)
    if unparseable:
        out.append(Finding(
            "received-unparseable", Severity.INFO,
            f"{unparseable} Received header(s) could not be read; they are shown as written.",
        ))
    out += _addresses(hops, None if internal else boundary)
    out += _names(hops, boundary)
    out += _dates(hops, boundary)
    return tuple(out)


def _addresses(hops: Sequence[Hop], boundary: int | None) -> list[Finding]:
    out: list[Finding] = []
    if boundary is not None:
        b = hops[boundary]
        if b.ip and b.ip_class is not IpClass.PUBLIC:
            out.append(Finding(
                "handoff-not-public", Severity.WARNING,
                f"The hand-off address {b.ip} is {b.ip_class.value or 'not an address'}, outside "
                "the trusted networks: list your internal relays in trust.trusted_networks.",
            ))
    claimed = [
        h for h in hops
        if h.trust is Trust.CLAIMED and h.ip_class not in _NO_BOGON
        and h.status is HopStatus.PARSED
    ]
    if claimed:
        ips = ", ".join(f"{h.ip} ({h.ip_class.value})" for h in claimed[:_CAP])
        out.append(Finding(
            "claimed-bogon", Severity.INFO,
            f"Claimed hops below the hand-off name non-public addresses: {ips}.",
        ))
    count = 0
    for i, h in enumerate(hops):
        if not h.ip or not h.helo:  # checked before the HELO is read: most hops stop here
            continue
        helo_ip = _helo_ip(h.helo)
        if not helo_ip or not ipaddr.is_public(helo_ip):
            continue
        if ipaddr.far_apart(helo_ip, h.ip):
            sev = Severity.WARNING if i == boundary else Severity.INFO
            out.append(Finding(
                "helo-ip-mismatch", sev,
                f"Hop {i + 1}: the client said HELO {h.helo} but connected from {h.ip}.",
            ))
            count += 1
            if count >= _CAP:
                break
    return out


def _names(hops: Sequence[Hop], boundary: int | None) -> list[Finding]:
    """The sender named by a hop should be the receiver of the hop below it."""
    if boundary is None:
        return []
    out: list[Finding] = []
    for i in range(boundary, len(hops) - 1):
        upper, lower = hops[i], hops[i + 1]
        if upper.status is not HopStatus.PARSED or not lower.by:
            continue
        sender = upper.rdns or upper.helo
        if not _same_host(sender, lower.by):
            out.append(Finding(
                "by-rdns-mismatch", Severity.WARNING,
                f"Hop {i + 1} came from {sender}, but hop {i + 2} was written by {lower.by}: "
                "the hops below may be forged.",
            ))
            if len(out) >= _CAP:
                break
    return out


def _dates(hops: Sequence[Hop], boundary: int | None) -> list[Finding]:
    out: list[Finding] = []
    for h in hops:  # the top dated hop
        if h.date is not None:
            top = h.date
            break
    else:
        return out
    latest = top + CLOCK_SKEW
    future = [i for i, h in enumerate(hops) if h.date is not None and h.date > latest]
    if future:
        out.append(Finding(
            "date-future", Severity.WARNING,
            f"Hop(s) {', '.join(str(i + 1) for i in future[:_CAP])} are dated after the top "
            "receiver's time: their dates are wrong or forged.",
        ))
    upper_date = None
    upper_i = 0
    count = 0
    for i, h in enumerate(hops):
        if h.date is None:
            continue
        if upper_date is not None and h.date > upper_date + CLOCK_SKEW:
            near = boundary is not None and upper_i <= boundary
            out.append(Finding(
                "date-order", Severity.WARNING if near else Severity.INFO,
                f"Hop {i + 1} is dated {_span(h.date - upper_date)} after hop {upper_i + 1} "
                "above it, which received the message later.",
            ))
            count += 1
            if count >= _CAP:
                break
        upper_date, upper_i = h.date, i
    return out


def _span(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    if s >= 86400:
        return f"{s // 86400} d"
    if s >= 3600:
        return f"{s // 3600} h"
    return f"{s // 60} min"
