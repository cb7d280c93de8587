"""Readable key fields and findings of a report and of each original."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stopitd.analysis.model import Address, Finding, KeyFields, Original, ReportInfo


def _addr(a: Address | None) -> str:
    if a is None:
        return ""
    return f"{a.name} <{a.address}>" if a.name else a.address


def _fields_table(fields: KeyFields, extra: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("From", _addr(fields.from_)),
        ("To", ", ".join(_addr(a) for a in fields.to)),
        ("Subject", fields.subject),
        ("Date", fields.date.strftime("%Y-%m-%d %H:%M:%SZ") if fields.date else ""),
        ("Message-ID", fields.message_id),
        *extra,
    ]
    for key, value in rows:
        table.add_row(key, Text(value))
    return table


def render_findings(findings: tuple[Finding, ...]) -> RenderableType:
    if not findings:
        return Text("")
    colour = {"info": "cyan", "warning": "yellow", "error": "red"}
    lines = [
        Text.assemble(
            (f"  {f.severity.value:<7} ", colour[f.severity.value]), f"{f.code}: ", f.text
        )
        for f in findings
    ]
    return Group(Text("Findings:", style="bold"), *lines)


def render_report_summary(report: ReportInfo) -> RenderableType:
    return Group(
        _fields_table(report.fields, [("Size", f"{report.size} bytes")]),
        render_findings(report.findings),
    )


def render_original_summary(original: Original) -> RenderableType:
    return Group(
        _fields_table(
            original.fields, [("Found as", original.how.value), ("Evidence", original.grade.value)]
        ),
        render_findings(original.findings),
    )
