"""One Received header value -> one Hop (pure)."""

from __future__ import annotations

import ipaddress
import re

from stopitd.analysis.fields import parse_date
from stopitd.analysis.model import Hop, HopStatus

_FROM = re.compile(r"^\s*from\s+(\S+)\s*(?:\(([^)]*)\))?", re.IGNORECASE)
_BY = re.compile(r"\bby\s+([^\s;()]+)", re.IGNORECASE)
_WITH = re.compile(r"\bwith\s+([^\s;()]+)", re.IGNORECASE)
_BRACKET_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")


def _normalise_ip(text: str) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def parse_received(value: str) -> Hop:
    date_text = value.rsplit(";", 1)[1] if ";" in value else ""
    m = _FROM.match(value)
    if not m:
        status = HopStatus.SKIPPED if _BY.search(value) else HopStatus.UNPARSEABLE
        by = _BY.search(value)
        return Hop(
            raw=value, status=status, by=by.group(1) if by else "", date=parse_date(date_text)
        )
    comment = m.group(2) or ""
    ipm = _BRACKET_IP.search(comment)
    rdns = comment.split("[", 1)[0].strip() if ipm else ""
    by = _BY.search(value)
    with_ = _WITH.search(value)
    return Hop(
        raw=value,
        status=HopStatus.PARSED,
        ip=_normalise_ip(ipm.group(1)) if ipm else "",
        rdns="" if rdns.lower() == "unknown" else rdns,
        helo=m.group(1),
        by=by.group(1) if by else "",
        with_=with_.group(1) if with_ else "",
        date=parse_date(date_text),
    )
