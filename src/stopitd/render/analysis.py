"""One analysis, readable: the report, then each original with its hops, verdict, auth."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.rule import Rule

from stopitd.analysis.model import Analysis
from stopitd.render.auth import render_auth
from stopitd.render.hops import render_hops, render_source
from stopitd.render.originals import render_original_summary, render_report_summary


def render_analysis(title: str, analysis: Analysis) -> RenderableType:
    parts: list[RenderableType] = [Rule(title), render_report_summary(analysis.report)]
    for n, original in enumerate(analysis.originals, 1):
        parts.append(Rule(f"original {n} of {len(analysis.originals)}", style="dim"))
        parts.append(render_original_summary(original))
        parts.append(render_hops(original))
        parts.append(render_source(original))
        parts.append(render_auth(original))
    return Group(*parts)
