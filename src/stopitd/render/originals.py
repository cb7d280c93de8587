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


def render_attachments(report: ReportInfo) -> RenderableType:
    if not report.attachments:
        return Text("")
    table = Table(title="Attachments kept as evidence", title_justify="left")
    for col in ("file", "type", "size", "sha256"):
        table.add_column(col)
    for a in report.attachments:
        table.add_row(a.filename or "(no name)", a.content_type, str(a.size), a.sha256[:16])
    return table


def render_report_summary(report: ReportInfo) -> RenderableType:
    extra = [("Size", f"{report.size} bytes")]
    if report.in_reply_to:
        extra.append(("In reply to", ", ".join(report.in_reply_to)))
    if report.auto_submitted:
        extra.append(("Automatic", report.auto_submitted))
    return Group(
        _fields_table(report.fields, extra),
        render_attachments(report),
        render_findings(report.findings),
    )


def render_original_summary(original: Original) -> RenderableType:
    extra = [("Found as", original.how.value), ("Evidence", original.grade.value)]
    if original.filename:
        extra.append(("File", original.filename))
    if original.found_in is not None:
        extra.append(("Inside", f"original {original.found_in + 1}"))
    if original.envelope_sender:
        extra.append(("Return-Path", original.envelope_sender))
    extra.extend((f"  {name}", value) for name, value in original.feedback)
    return Group(
        _fields_table(original.fields, extra),
        render_findings(original.findings),
    )
