"""The hop table (like a header analyser) and the verdict with its reasons."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stopitd.analysis.model import Hop, HopStatus, Original, SourceEstimate, Trust

_TRUST_STYLE = {
    Trust.TRUSTED: "green",
    Trust.BOUNDARY: "bold yellow",
    Trust.PROVIDER_ATTESTED: "cyan",
    Trust.CLAIMED: "dim",
}


def _sender(hop: Hop) -> str:
    """``helo (rdns [ip])`` in the MTA's own order, only with what is known."""
    if hop.status is not HopStatus.PARSED and not hop.ip:
        return hop.helo
    inner = " ".join(x for x in (hop.rdns, f"[{hop.ip}]" if hop.ip else "") if x)
    if hop.helo and inner:
        return f"{hop.helo} ({inner})"
    return hop.helo or inner


def _delay(hop: Hop) -> str:
    if hop.delay_s is None:
        return ""
    s = hop.delay_s
    if abs(s) >= 3600:
        return f"{s / 3600:.1f} h"
    if abs(s) >= 60:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def render_hops(original: Original) -> RenderableType:
    if not original.hops:
        return Text("No Received headers.", style="dim")
    table = Table(title="Received chain (top first)", title_justify="left")
    for col in ("#", "from", "by", "with", "auth", "delay", "trust"):
        table.add_column(col, overflow="fold")
    for n, hop in enumerate(original.hops, 1):
        trust = hop.trust.value if hop.status is HopStatus.PARSED else hop.status.value
        style = _TRUST_STYLE[hop.trust] if hop.status is HopStatus.PARSED else "dim"
        table.add_row(
            str(n),
            _sender(hop) if hop.status is not HopStatus.UNPARSEABLE else Text(hop.raw[:120]),
            hop.by,
            hop.with_,
            hop.auth,
            _delay(hop),
            Text(trust, style=style),
        )
    return table


def _verdict_line(s: SourceEstimate) -> Text:
    parts = [("Verdict: ", "bold"), (s.mode.value, "bold")]
    if s.relay_ip:
        parts.append((f"  hand-off {s.relay_ip}", ""))
    if s.origin_ip and s.origin_ip != s.relay_ip:
        parts.append((f"  origin {s.origin_ip}", ""))
    if s.internal:
        parts.append(("  internal sender", "bold red"))
    if s.provider:
        parts.append((f"  provider {s.provider}", ""))
    parts.append((f"  confidence {s.confidence.value}", ""))
    return Text.assemble(*parts)


def render_source(original: Original) -> RenderableType:
    s = original.source
    lines: list[RenderableType] = [_verdict_line(s)]
    if s.responsible_domains:
        lines.append(Text(f"  responsible: {', '.join(s.responsible_domains)}"))
    if s.authenticated_identity:
        lines.append(Text(f"  authenticated as: {s.authenticated_identity}"))
    if s.from_authenticated is not None:
        lines.append(Text(f"  From authenticated: {'yes' if s.from_authenticated else 'no'}"))
    lines.extend(Text(f"  - {r.text} [{r.code}]") for r in s.reasons)
    return Group(*lines)
