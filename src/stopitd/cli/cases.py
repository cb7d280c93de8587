"""`stopitd cases …`: the staff's view of the case base."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from stopitd.analysis.model import analysis_from_json
from stopitd.cli.common import config_option, state
from stopitd.errors import StopitdError
from stopitd.render.auth import render_auth
from stopitd.render.hops import render_hops, render_source
from stopitd.render.originals import render_original_summary
from stopitd.store import db
from stopitd.store.cases import CaseFilter, list_cases, show_case
from stopitd.store.schema import CaseStatus


@contextmanager
def store_session(ctx: click.Context) -> Iterator[Session]:
    settings = state(ctx).settings()
    engine = db.make_engine(settings.database.url)
    try:
        try:
            db.check_current(engine)
        except StopitdError as e:
            raise click.ClickException(str(e)) from None
        with db.make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def parse_when(value: str | None) -> datetime | None:
    """A date (2026-11-25) or ISO time; naive values are UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.group("cases")
def cases_group() -> None:
    """List, show and work on cases."""


@cases_group.command("list")
@config_option
@click.option(
    "--status", type=click.Choice([s.value for s in CaseStatus]), help="Only this status."
)
@click.option("--since", help="Created on or after this date (YYYY-MM-DD or ISO time, UTC).")
@click.option("--until", help="Created before this date.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many cases.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (see docs/cases-json.md).")
@click.pass_context
def list_command(
    ctx: click.Context,
    status: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List cases, newest first."""
    flt = CaseFilter(status=status, since=parse_when(since), until=parse_when(until), limit=limit)
    with store_session(ctx) as session:
        rows = list_cases(session, flt)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{len(rows)} case(s)", title_justify="left")
    for col in ("id", "status", "created", "reports", "source", "subject"):
        table.add_column(col)
    for row in rows:
        src = row["source"]
        table.add_row(
            str(row["id"]),
            row["status"],
            row["created"].replace("T", " ").rstrip("Z"),
            str(row["report_count"]),
            f"{src['mode']} {src['relay_ip']}".strip(),
            row["subject"],
        )
    Console().print(table)


@cases_group.command("show")
@config_option
@click.argument("case_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The case as one JSON object.")
@click.pass_context
def show_command(ctx: click.Context, case_id: int, as_json: bool) -> None:
    """Show one case: its reports, each original with hops and verdict, its history."""
    with store_session(ctx) as session:
        data = show_case(session, case_id)
    if data is None:
        raise click.ClickException(f"no case {case_id}")
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    _print_case(data)


def _print_case(data: dict[str, Any]) -> None:
    console = Console()
    console.rule(f"{data['tag']} {data['subject']}")
    console.print(
        f"status {data['status']}, created {data['created']}, "
        f"{data['report_count']} report(s) from {data['reporter_count']} reporter(s)"
    )
    for report in data["reports"]:
        console.print(
            f"report {report['spool_id']} received {report['received_at']} "
            f"({report['size']} bytes, sha256 {report['sha256'][:16]}…)"
        )
        for finding in report["findings"]:
            console.print(f"  {finding['severity']} {finding['code']}: {finding['text']}")
    wrapper = {"schema_version": 1, "report": {}, "originals": data["originals"]}
    for n, original in enumerate(analysis_from_json(wrapper).originals, 1):
        console.rule(f"original {n}", style="dim")
        console.print(render_original_summary(original))
        console.print(render_hops(original))
        console.print(render_source(original))
        console.print(render_auth(original))
    console.rule("history", style="dim")
    for ev in data["events"]:
        console.print(f"{ev['at']} {ev['actor']}: {ev['kind']}")
