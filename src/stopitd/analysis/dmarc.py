"""DMARC (RFC 7489) alignment and result from a fetched record and the checks (pure).

The organisational domain comes from publicsuffixlist's bundled Public Suffix List: no
network fetch, so a re-analysis of old evidence gives the same answer for the same
analyzer version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from stopitd.analysis.model import AuthVerdict, DkimSignature, DmarcResult, SpfResult


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def org_domain(domain: str) -> str:
    """The organisational domain (registrable part) of ``domain``; itself when unknown."""
    d = domain.lower().strip().rstrip(".")
    if not d:
        return ""
    found = _psl().privatesuffix(d)
    return str(found) if found else d


def aligned(a: str, b: str, *, strict: bool) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    if strict:
        return a == b
    return org_domain(a) == org_domain(b)


def parse_record(text: str) -> dict[str, str] | None:
    """``v=DMARC1; p=...`` -> tags (names lower-case); None when it is not a DMARC record."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq:
            tags.setdefault(name.strip().lower(), value.strip())
    if tags.get("v", "").upper() != "DMARC1":
        return None
    return tags


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """What the verifier found in DNS for the From domain (or its org domain)."""

    from_domain: str
    text: str = ""  # the record used; "" when none was found
    at_org_domain: bool = False  # found at _dmarc.<org domain>, not at the From domain
    temperror: str = ""  # the DNS failure, when the lookup failed


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower().rstrip(".")


def evaluate(
    record: DmarcRecord, dkim: Iterable[DkimSignature], spf: SpfResult | None
) -> DmarcResult:
    """The DMARC result for ``record.from_domain`` given verified DKIM and SPF."""
    from_domain = record.from_domain.lower()
    org = org_domain(from_domain)
    if record.temperror:
        return DmarcResult(AuthVerdict.TEMPERROR, from_domain=from_domain, org_domain=org)
    tags = parse_record(record.text) if record.text else None
    if tags is None:
        return DmarcResult(
            AuthVerdict.NONE, from_domain=from_domain, org_domain=org, record=record.text
        )
    strict_dkim = tags.get("adkim", "r").lower() == "s"
    strict_spf = tags.get("aspf", "r").lower() == "s"
    policy = tags.get("p", "none").lower()  # no p= (rua only): none, RFC 7489 §6.6.3
    if record.at_org_domain and "sp" in tags:
        policy = tags["sp"].lower()
    dkim_aligned = any(
        s.result is AuthVerdict.PASS and aligned(s.domain, from_domain, strict=strict_dkim)
        for s in dkim
    )
    spf_aligned = bool(
        spf is not None
        and spf.result is AuthVerdict.PASS
        and aligned(spf.domain, from_domain, strict=strict_spf)
    )
    result = AuthVerdict.PASS if dkim_aligned or spf_aligned else AuthVerdict.FAIL
    return DmarcResult(
        result=result,
        policy=policy,
        from_domain=from_domain,
        org_domain=org,
        spf_aligned=spf_aligned,
        dkim_aligned=dkim_aligned,
        record=record.text,
    )
