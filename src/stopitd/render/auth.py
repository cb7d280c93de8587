"""Authentication evidence, readable: per-signature DKIM, ARC, SPF, DMARC alignment,
the stamps kept and the claims ignored (with why), and the client-IP cross-check."""

from __future__ import annotations

import authres as authres_lib
from authres.arc import ARCAuthenticationResult
from authres.dmarc import DMARCAuthenticationResult
from rich.console import Group, RenderableType
from rich.text import Text

from stopitd.analysis.model import (
    ArcResult,
    AuthSummary,
    AuthVerdict,
    CrossCheck,
    DmarcResult,
    Original,
    SpfResult,
)

_STYLE = {
    AuthVerdict.PASS: "green",
    AuthVerdict.FAIL: "red",
    AuthVerdict.SOFTFAIL: "yellow",
    AuthVerdict.TEMPERROR: "yellow",
    AuthVerdict.PERMERROR: "red",
}
_LABEL = 7  # width of the "DKIM", "ARC", ... column


def _verdict(v: AuthVerdict) -> Text:
    return Text(v.value, style=_STYLE.get(v, ""))


def _line(label: str, *parts: str | Text) -> Text:
    return Text.assemble(f"  {label:<{_LABEL}}", *parts)


def _dkim(a: AuthSummary) -> list[Text]:
    if not a.dkim:
        return [_line("DKIM", "no signature")] if a.verified else []
    out = []
    for n, sig in enumerate(a.dkim):
        out.append(
            _line(
                "DKIM" if n == 0 else "",
                f"d={sig.domain} s={sig.selector} {sig.algorithm}: ",
                _verdict(sig.result),
                f" ({sig.reason})" if sig.reason else "",
            )
        )
    return out


def _arc(arc: ArcResult, verified: bool) -> list[Text]:
    if not arc.instances and arc.cv is AuthVerdict.NONE:
        return [_line("ARC", "no chain")] if verified else []
    oldest = f", oldest passing instance {arc.oldest_pass}" if arc.oldest_pass else ""
    out = [
        _line(
            "ARC",
            "cv=",
            _verdict(arc.cv),
            f", {len(arc.instances)} instance(s){oldest}",
            f" ({arc.reason})" if arc.reason and arc.cv is not AuthVerdict.PASS else "",
        )
    ]
    for i in arc.instances:
        out.append(
            _line(
                "",
                f"i={i.instance} {i.domain} s={i.selector} cv={i.cv}: seal ",
                _verdict(i.seal_result),
                ", signature ",
                _verdict(i.signature_result),
            )
        )
    return out


def _spf(spf: SpfResult | None) -> list[Text]:
    if spf is None:
        return []
    helo = f" (HELO {spf.helo})" if spf.helo else ""
    reason = f": {spf.reason}" if spf.reason else ""
    who = f"{spf.scope} {spf.identity}" if spf.identity else spf.domain
    return [_line("SPF", _verdict(spf.result), f" for {who} from {spf.ip}{helo}{reason}")]


def _dmarc(d: DmarcResult | None) -> list[Text]:
    if d is None:
        return []
    align = ", ".join(
        f"{name} {'aligned' if ok else 'not aligned'}"
        for name, ok in (("DKIM", d.dkim_aligned), ("SPF", d.spf_aligned))
    )
    policy = f", policy {d.policy}" if d.policy else ""
    org = f" (org {d.org_domain})" if d.org_domain and d.org_domain != d.from_domain else ""
    return [_line("DMARC", _verdict(d.result), f" for From {d.from_domain}{org}{policy}: {align}")]


def _cross(c: CrossCheck) -> list[Text]:
    if not c.recorded_ips:
        return []
    ips = ", ".join(c.recorded_ips)
    if c.agrees is None:
        return [_line("IPs", f"trusted stamps record {ips}; no hand-off IP to compare")]
    if c.agrees:
        return [_line("IPs", f"trusted stamps record {ips}, the hand-off is ", c.handoff_ip, " ✓")]
    return [
        _line(
            "IPs",
            Text(f"trusted stamps record {ips} but the hand-off is {c.handoff_ip}", style="red"),
            " (trust configuration or chain wrong)",
        )
    ]


def render_auth(original: Original) -> RenderableType:
    a = original.auth
    head = "Authentication:" + ("" if a.verified else " (not verified: DNS off or --no-dns)")
    lines: list[RenderableType] = [Text(head, style="bold")]
    lines += _dkim(a) + _arc(a.arc, a.verified) + _spf(a.spf) + _dmarc(a.dmarc)
    if original.source.from_authenticated is not None:
        ok = original.source.from_authenticated
        lines.append(
            _line(
                "From",
                Text("authenticated" if ok else "not authenticated", "green" if ok else "red"),
            )
        )
    if a.recorded:
        lines.append(Text("  Recorded by trusted receivers:"))
        for rec in a.recorded:
            props = " ".join(f"{k}={v}" for k, v in rec.properties)
            who = rec.authserv_id or "(no authserv-id)"
            note = f" ({rec.comment})" if rec.comment else ""
            lines.append(Text(f"    {who} [{rec.header}]: {rec.method}={rec.result} {props}{note}"))
    if a.untrusted:
        lines.append(Text("  Ignored claims (never used):", style="dim"))
        for u in a.untrusted:
            who = u.authserv_id or "(no authserv-id)"
            lines.append(Text(f"    {u.header} by {who}: {u.why}", style="dim"))
    lines += _cross(a.crosscheck)
    return Group(*lines)


def authentication_results(original: Original, authserv_id: str) -> str:
    """stopitd's own RFC 8601 stamp of what its verifier saw at intake (for exports).

    Built with authres (what authheaders builds on), one result per DKIM signature, then
    ARC, SPF and DMARC; ``dkim=none`` etc. when there was nothing to verify. Empty when
    verification did not run: a stamp must not claim checks that were not made.
    """
    a = original.auth
    if not a.verified:
        return ""
    results: list[object] = []
    for sig in a.dkim:
        results.append(
            authres_lib.DKIMAuthenticationResult(
                result=sig.result.value,
                reason=sig.reason or None,
                header_d=sig.domain or None,
                header_s=sig.selector or None,
                header_a=sig.algorithm or None,
            )
        )
    if not a.dkim:
        results.append(authres_lib.DKIMAuthenticationResult(result="none"))
    arc = a.arc
    oldest = str(arc.oldest_pass) if arc.oldest_pass else None
    newest = arc.instances[-1] if arc.instances else None
    results.append(
        ARCAuthenticationResult(
            result=arc.cv.value,
            header_as_d=newest.domain if newest else None,
            header_as_s=newest.selector if newest else None,
            header_oldest_pass=oldest,
        )
    )
    if a.spf is not None:
        mailfrom = a.spf.identity if a.spf.scope == "mailfrom" else ""
        results.append(
            authres_lib.SPFAuthenticationResult(
                result=a.spf.result.value,
                result_comment=f"client {a.spf.ip}" if a.spf.ip else None,
                smtp_mailfrom=mailfrom or None,
                smtp_helo=a.spf.helo or None,
            )
        )
    if a.dmarc is not None:
        results.append(
            DMARCAuthenticationResult(
                result=a.dmarc.result.value,
                result_comment=f"p={a.dmarc.policy}" if a.dmarc.policy else None,
                header_from=a.dmarc.from_domain or None,
            )
        )
    header = authres_lib.AuthenticationResultsHeader(authserv_id=authserv_id, results=results)
    return str(header)
