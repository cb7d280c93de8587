"""SPF with pyspf, its DNS routed through our DnsClient.

pyspf has no resolver parameter: it calls the module function ``spf.DNSLookup``. We set
that once per process (``install``) to a dispatcher that asks the DnsClient of the check
running in this context (a ContextVar), and that refuses (TempError) when no check is
running, so pyspf never reaches /etc/resolv.conf behind our back.
"""

from __future__ import annotations

import contextvars
from typing import Any

import spf

from stopitd.analysis.model import AuthVerdict, SpfResult
from stopitd.verify.dnsclient import DnsClient, DnsTempError

_client: contextvars.ContextVar[DnsClient | None] = contextvars.ContextVar(
    "stopitd_spf_client", default=None
)
_installed = False


def _lookup(name: str, qtype: str, strict: Any = True, timeout: Any = None) -> list[Any]:
    """pyspf's DNSLookup contract: [((name, qtype), value), ...]; TempError on failure."""
    del strict, timeout  # our client applies its own timeout and budget
    client = _client.get()
    if client is None:
        raise spf.TempError("DNS lookup outside a stopitd SPF check")
    try:
        answer = client.query(name, qtype)
    except DnsTempError as e:
        raise spf.TempError(f"DNS {e}") from e
    out: list[Any] = []
    for r in answer.rdatas:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))  # type: ignore[attr-defined]
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, str(r.exchange))))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), list(r.strings)))  # type: ignore[attr-defined]
    return out


def install() -> None:
    """Point pyspf's DNS at ``_lookup`` (once per process; idempotent)."""
    global _installed
    if not _installed:
        spf.DNSLookup = _lookup
        _installed = True


_VERDICTS = {v.value: v for v in AuthVerdict}


def check_spf(client: DnsClient, ip: str, sender: str, helo: str) -> SpfResult | None:
    """SPF of ``ip`` for the MAIL FROM ``sender`` (or the HELO name when there is none)."""
    install()
    if not ip or not (sender or helo):
        return None
    identity = sender if sender else f"postmaster@{helo}"
    domain = identity.rpartition("@")[2].lower()
    token = _client.set(client)
    try:
        result, explanation = spf.check2(i=ip, s=sender, h=helo or domain, querytime=0)
    except Exception as e:  # pyspf on hostile records: a permerror, never a crash
        result, explanation = "permerror", f"{type(e).__name__}: {e}"
    finally:
        _client.reset(token)
    verdict = _VERDICTS.get(str(result).lower(), AuthVerdict.PERMERROR)
    how = "mailfrom" if sender else "helo"
    return SpfResult(
        result=verdict,
        domain=domain,
        ip=ip,
        helo=helo,
        reason=str(explanation),
        scope=how,
        identity=identity,
    )
