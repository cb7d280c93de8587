"""The hop table (like a header analyser) and the verdict with its reasons."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stopitd.analysis.model import Original


def render_hops(original: Original) -> RenderableType:
    if not original.hops:
        return Text("No Received headers.", style="dim")
    table = Table(title="Received chain (top first)", title_justify="left")
    for col in ("#", "from", "ip", "by", "with", "delay", "trust"):
        table.add_column(col)
    for n, hop in enumerate(original.hops, 1):
        table.add_row(
            str(n),
            hop.rdns or hop.helo,
            hop.ip,
            hop.by,
            hop.with_,
            "" if hop.delay_s is None else f"{hop.delay_s:.0f}s",
            hop.trust.value if hop.status.value == "parsed" else hop.status.value,
        )
    return table


def render_source(original: Original) -> RenderableType:
    s = original.source
    head = Text.assemble(
        ("Verdict: ", "bold"),
        f"mode {s.mode.value}, relay {s.relay_ip or '-'}, origin {s.origin_ip or '-'}, "
        f"confidence {s.confidence.value}",
    )
    reasons = [Text(f"  {r.code}: {r.text}") for r in s.reasons]
    return Group(head, *reasons)
