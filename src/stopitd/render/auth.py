"""Authentication evidence: per-signature DKIM, ARC, SPF, DMARC, the cross-check."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from stopitd.analysis.model import Original


def render_auth(original: Original) -> RenderableType:
    a = original.auth
    lines: list[RenderableType] = [Text("Authentication:", style="bold")]
    if not a.verified:
        lines.append(Text("  not verified (DNS off)", style="dim"))
    for sig in a.dkim:
        lines.append(Text(f"  dkim d={sig.domain} s={sig.selector}: {sig.result.value}"))
    for rec in a.recorded:
        lines.append(Text(f"  recorded by {rec.authserv_id}: {rec.method}={rec.result}"))
    return Group(*lines)
