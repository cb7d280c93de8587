"""Recorded authentication results (Authentication-Results & co.), trusted or not (pure).

A stamp is kept only when both hold (RFC 8601 §5):
- its authserv-id is trusted: ``TrustPolicy.trusted_authserv_ids`` or an enabled provider
  profile (``providers.py``, read by ``authserv.py``); Microsoft's stamps without an id
  count by the profile alone;
- it sits above the walk's boundary: before the Received header of the boundary hop in the
  header block, i.e. it was added after the hand-off by a host we trust.
Everything else is an ``UntrustedClaim`` with the reason, never used for a verdict. One
exception to the position rule: Microsoft's X-Forefront-Antispam-Report, which Exchange
Online moves below the Received headers and whose forged copies its header firewall
strips, is believed wherever it sits when the microsoft profile is on and the boundary hop
was received by a Microsoft host (the profile's ``forefront_hosts``). Stamps naming a trusted id
but sitting under the boundary Received are a warning (possibly forged), unless they sit
right under it, where Gmail and milter-based MTAs write their own (then only info).

The client IPs that kept stamps record (Received-SPF ``client-ip``, Microsoft's
``sender IP is``, Forefront ``CIP``, ``smtp.remote-ip``, ``policy.iprev``) are checked
against the walk's hand-off IP: a disagreement means the trust configuration or the chain
is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from operator import attrgetter
from typing import NamedTuple

import authres as authres_lib

from stopitd.analysis import ipaddr
from stopitd.analysis.authserv import forefront_trusted, received_by_provider, trusted_by
from stopitd.analysis.headers import HeaderField
from stopitd.analysis.model import (
    AuthSummary,
    CrossCheck,
    Finding,
    RecordedAuth,
    Severity,
    UntrustedClaim,
)
from stopitd.analysis.policy import TrustPolicy
from stopitd.analysis.resinfo import (
    ParsedHeader,
    ParsedResult,
    ResinfoError,
    parse_forefront,
    parse_received_spf,
    parse_results_header,
    read_authserv_id,
)
from stopitd.analysis.trust import Walk

AUTH_RESULTS = "Authentication-Results"
ARC_AUTH_RESULTS = "ARC-Authentication-Results"
RECEIVED_SPF = "Received-SPF"
FOREFRONT = "X-Forefront-Antispam-Report"
_HEADERS = {h.lower(): h for h in (AUTH_RESULTS, ARC_AUTH_RESULTS, RECEIVED_SPF, FOREFRONT)}
_KEY = attrgetter("key")
_RESULTS_HEADERS = frozenset({AUTH_RESULTS.lower(), ARC_AUTH_RESULTS.lower()})
# Client IPs written in comments: Microsoft's "sender IP is X", Google's and Apple's
# "domain of a@b designates X as permitted sender" (or "does not designate X ...").
_COMMENT_IPS = (
    re.compile(r"sender IP is ([0-9A-Fa-f:.]+)", re.IGNORECASE),
    re.compile(r"designates? ([0-9A-Fa-f:.]+) as permitted sender", re.IGNORECASE),
)
_IP_PROPERTIES = {"client-ip", "smtp.remote-ip", "policy.iprev", "cip"}
_MAX_CLAIM_TEXT = 2000


class Recorded(NamedTuple):
    """What ``read_recorded`` returns (a NamedTuple: made faster than a frozen dataclass,
    and built once per message)."""

    summary: AuthSummary = AuthSummary()  # frozen: one shared default
    findings: tuple[Finding, ...] = ()


class _Stamp(NamedTuple):
    """One header read: who stamped it and what it says (or why it could not be read)."""

    authserv_id: str
    results: tuple[RecordedAuth, ...] = ()
    error: str = ""
    forefront: bool = False
    partial: bool = False  # results from our tokenizer only: read again before keeping


def normalise_ip(text: str) -> str:
    """RFC 5952 text, IPv4-mapped IPv6 as IPv4; "" when it is not an IP address."""
    if ipaddr.is_plain_v4(text):
        return text  # a plain dotted quad is its own normal form
    if not text:
        return ""
    s = text.strip().strip("[]")
    fast = ipaddr.hex_v6_text(s, nat64=False)  # IPv6 without building ipaddress objects
    if fast is not None:
        return fast
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def _with_library(value: str) -> ParsedHeader | None:
    """authres where it can read the header; None where it cannot."""
    try:
        header = authres_lib.AuthenticationResultsHeader.parse(f"{AUTH_RESULTS}: {value}")
    except Exception:  # authres raises its own SyntaxError family and others on odd input
        return None
    results = []
    for r in header.results:
        if not hasattr(r, "properties"):  # "none" after other results: let ours read it
            return None
        props = tuple((f"{p.type}.{p.name}".lower(), str(p.value)) for p in r.properties if p.name)
        results.append(
            ParsedResult(
                method=str(r.method).lower(),
                result=str(r.result).lower(),
                reason=str(r.reason or ""),
                properties=props,
            )
        )
    return ParsedHeader(str(header.authserv_id or "").lower(), tuple(results))


# authres rewrites the rest of the text for every token it reads (quadratic time): longer
# values (no real stamp comes near) are read by our tokenizer alone.
_LIBRARY_VALUE_MAX = 8192


def _results_header(value: str, *, arc: bool) -> ParsedHeader:
    ours = parse_results_header(value, arc=arc)  # raises ResinfoError
    if len(value) > _LIBRARY_VALUE_MAX:
        return ours
    body = value.split(";", 1)[1] if arc else value
    theirs = _with_library(body)
    if theirs is None or len(theirs.results) != len(ours.results):
        return ours
    # authres read it: take its reading, and the comments it drops from ours.
    merged = tuple(
        ParsedResult(t.method, t.result, t.reason, t.properties, o.comment)
        for t, o in zip(theirs.results, ours.results, strict=True)
    )
    return ParsedHeader(theirs.authserv_id, merged, ours.instance, ours.version)


# The authserv-id piece (before the first ";", after ARC's "i=N;") when it is a plain
# dot-atom (and version) with no comment, quote or "=": authres and our tokenizer then
# read the same authserv-id, so whether the stamp is kept can be decided before authres
# reads the results, and authres runs only for kept stamps.
_PLAIN_ID = re.compile(r"[ \t]*[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:[ \t]+\d+)?[ \t]*")
_PLAIN_INSTANCE = re.compile(r"[ \t]*i[ \t]*=[ \t]*\d+[ \t]*", re.IGNORECASE)


def _plain_authserv_id(key: str, value: str) -> bool:
    pieces = value.split(";", 2)
    if key == ARC_AUTH_RESULTS.lower():
        if len(pieces) < 2 or _PLAIN_INSTANCE.fullmatch(pieces[0]) is None:
            return False
        pieces = pieces[1:]
    return _PLAIN_ID.fullmatch(pieces[0]) is not None


def _library_reads_ours(value: str, authserv_id: str, instance: int | None) -> bool:
    """Would ``_results_header`` keep our reading of this stamp whatever authres reads?

    So it is when our tokenizer finds no authserv-id (the first piece is a result, as
    Microsoft writes it) in a value without quotes or backslashes: authres then sees the
    same comments and top-level ";" as we do (no token of its grammar holds "(", ")" or
    ";"), takes the first piece for its authserv-id and so reads one result fewer than
    we do, or stops at a "none" (a reading ``_with_library`` drops), or fails.
    """
    return not authserv_id and instance is None and '"' not in value and "\\" not in value


def _stamp(f: HeaderField, *, results: bool) -> _Stamp:
    """The stamp; with ``results=False`` maybe without its results (``partial``), which
    are not needed to decide whether it is kept."""
    return _read_stamp(f.key, f.value, quick=not results)


def _quick_results_stamp(key: str, value: str) -> _Stamp | None:
    """The stamp of a results header without reading its results, when the full reading
    would give it the same authserv-id (and error); None when only the full reading can
    tell."""
    try:
        authserv_id, instance = read_authserv_id(value, arc=key == ARC_AUTH_RESULTS.lower())
    except ResinfoError as e:
        return _Stamp("", error=str(e))  # the full reading raises the same
    if _plain_authserv_id(key, value) or _library_reads_ours(value, authserv_id, instance):
        return _Stamp(authserv_id, partial=True)
    return None


def _read_stamp(key: str, value: str, quick: bool = False) -> _Stamp:
    name = _HEADERS[key]
    if quick and key in _RESULTS_HEADERS:
        stamp = _quick_results_stamp(key, value)
        if stamp is not None:
            return stamp
    try:
        if key == FOREFRONT.lower():
            pairs = parse_forefront(value)
            if not pairs:
                raise ResinfoError("no NAME:VALUE pairs")
            sfv = next((v for k, v in pairs if k == "SFV"), "")
            rec = RecordedAuth(name, "", "forefront", sfv.lower(), pairs)
            return _Stamp("", (rec,), forefront=True)
        if key == RECEIVED_SPF.lower():
            spf = parse_received_spf(value)
            receiver = spf.receiver
            rec = RecordedAuth(name, receiver, "spf", spf.result, spf.pairs, comment=spf.comment)
            return _Stamp(receiver, (rec,))
        # raises ResinfoError when our tokenizer cannot read it
        parsed = _results_header(value, arc=key == ARC_AUTH_RESULTS.lower())
    except ResinfoError as e:
        return _Stamp("", error=str(e))
    extra: tuple[tuple[str, str], ...] = ()
    if parsed.instance is not None:
        extra = (("arc.i", str(parsed.instance)),)
    recs = tuple(
        RecordedAuth(
            name,
            parsed.authserv_id,
            r.method,
            r.result,
            extra + r.properties,
            r.reason,
            r.comment,
        )
        for r in parsed.results
    )
    return _Stamp(parsed.authserv_id, recs)


def _boundary_position(fields: list[HeaderField], walk: Walk) -> int | None:
    """Index in ``fields`` of the boundary hop's Received header."""
    if walk.boundary_index is None:
        return None
    seen = -1
    for pos, f in enumerate(fields):
        if f.key == "received":
            seen += 1
            if seen == walk.boundary_index:
                return pos
    return None


def _just_below(fields: list[HeaderField], boundary: int | None) -> set[int]:
    """Positions of the stamps right under the boundary Received, before any other header.

    Gmail and milter-based MTAs write their stamps there, under their own Received; by the
    RFC 8601 §5 position rule they are still not believed (a sender can write the same
    bytes at the top of what it sends), but they are reported without alarm.
    """
    out: set[int] = set()
    if boundary is None:
        return out
    for pos in range(boundary + 1, len(fields)):
        if fields[pos].key not in _HEADERS:
            break
        out.add(pos)
    return out


def _vouched(stamp: _Stamp, policy: TrustPolicy) -> str:
    if stamp.forefront:
        return forefront_trusted(policy)
    return trusted_by(stamp.authserv_id, policy)


def _why_untrusted(
    stamp: _Stamp, above: bool, boundary: int | None, vouched: str, just_below: bool
) -> str:
    why: list[str] = []
    if stamp.error:
        why.append(f"could not be read: {stamp.error}")
    if boundary is None:
        why.append("no trust boundary: the original has no usable Received header")
    elif not above and just_below:
        why.append(
            "below the trust boundary: right under the hand-off's Received header, where"
            " some receivers write their own, but where the sender can write too"
        )
    elif not above:
        why.append("below the trust boundary: written before the hand-off")
    if not vouched and not stamp.error:
        if stamp.forefront:
            why.append("Microsoft stamp and the microsoft provider profile is not enabled")
        elif stamp.authserv_id:
            why.append(f"authserv-id {stamp.authserv_id} is not trusted")
        else:
            why.append("no authserv-id")
    return "; ".join(why)


def recorded_ips(recorded: tuple[RecordedAuth, ...]) -> tuple[str, ...]:
    """Client IPs the kept stamps record, normalised, in order, once each."""
    out: dict[str, None] = {}  # ordered, and linear however many stamps there are
    for rec in recorded:
        candidates = [v for k, v in rec.properties if k.lower() in _IP_PROPERTIES]
        for pattern in _COMMENT_IPS:
            candidates += pattern.findall(rec.comment)
        for c in candidates:
            ip = normalise_ip(c)
            if ip:
                out.setdefault(ip)
    return tuple(out)


def _crosscheck(recorded: tuple[RecordedAuth, ...], walk: Walk) -> CrossCheck:
    handoff = ""
    if walk.boundary_index is not None and walk.boundary_index < len(walk.hops):
        handoff = normalise_ip(walk.hops[walk.boundary_index].ip)
    ips = recorded_ips(recorded) if recorded else ()
    agrees: bool | None = None
    if ips and handoff:
        agrees = all(ip == handoff for ip in ips)
    return CrossCheck(ips, handoff, agrees)


def read_recorded(fields: list[HeaderField], walk: Walk, policy: TrustPolicy) -> Recorded:
    """Kept (trusted, above the boundary) stamps, ignored claims with why, the cross-check."""
    if _HEADERS.keys().isdisjoint(map(_KEY, fields)):  # most messages: checked in C
        return Recorded(AuthSummary(crosscheck=_crosscheck((), walk)))
    stamp_positions = [pos for pos, f in enumerate(fields) if f.key in _HEADERS]
    boundary = _boundary_position(fields, walk)
    just_below = _just_below(fields, boundary)
    boundary_by = ""
    if walk.boundary_index is not None and walk.boundary_index < len(walk.hops):
        boundary_by = walk.hops[walk.boundary_index].by
    kept: list[RecordedAuth] = []
    untrusted: list[UntrustedClaim] = []
    planted: list[str] = []
    for pos in stamp_positions:
        f = fields[pos]
        stamp = _stamp(f, results=False)
        above = boundary is not None and pos < boundary
        vouched = _vouched(stamp, policy)
        if stamp.forefront and vouched and received_by_provider(boundary_by, vouched):
            above = True  # header firewall: see Provider.forefront_hosts
        if above and vouched and not stamp.error:
            if stamp.partial:
                stamp = _stamp(f, results=True)
            kept.extend(stamp.results)
            continue
        untrusted.append(
            UntrustedClaim(
                header=_HEADERS[f.key],
                authserv_id=stamp.authserv_id,
                value=f.value[:_MAX_CLAIM_TEXT],
                why=_why_untrusted(stamp, above, boundary, vouched, pos in just_below),
            )
        )
        if vouched and not above and boundary is not None and pos not in just_below:
            planted.append(stamp.authserv_id or _HEADERS[f.key])
    recorded = tuple(kept)
    cross = _crosscheck(recorded, walk)
    findings: list[Finding] = []
    if planted:
        findings.append(
            Finding(
                "auth-results-below-boundary",
                Severity.WARNING,
                "Authentication stamps naming a trusted receiver ("
                + ", ".join(sorted(set(planted)))
                + ") sit below the trust boundary: they were written before the hand-off"
                " (possibly forged) and are ignored.",
            )
        )
    if untrusted:
        findings.append(
            Finding(
                "auth-results-untrusted",
                Severity.INFO,
                f"{len(untrusted)} authentication stamp(s) ignored as untrusted claims"
                " (see auth.untrusted for why).",
            )
        )
    if cross.agrees is False:
        others = ", ".join(ip for ip in cross.recorded_ips if ip != cross.handoff_ip)
        findings.append(
            Finding(
                "auth-crosscheck-mismatch",
                Severity.WARNING,
                f"Trusted stamps record the client IP {others} but the Received walk hands"
                f" off at {cross.handoff_ip}: the trust configuration or the chain is wrong.",
            )
        )
    summary = AuthSummary(recorded=recorded, untrusted=tuple(untrusted), crosscheck=cross)
    return Recorded(summary, tuple(findings))
