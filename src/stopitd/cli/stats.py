"""`stopitd stats`: case counts by status, week, source mode and office."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from stopitd.cli.cases import echo_json, json_option, parse_when, store_session
from stopitd.cli.common import config_option
from stopitd.store.queries import stats


@click.command("stats")
@config_option
@click.option("--since", help="Only cases created on or after this date.")
@click.option("--until", help="Only cases created before this date.")
@json_option
@click.pass_context
def stats_command(ctx: click.Context, since: str | None, until: str | None, as_json: bool) -> None:
    """Counts of cases by status, week of creation, source mode and office."""
    with store_session(ctx) as session:
        data = stats(session, since=parse_when(since), until=parse_when(until))
    if as_json:
        echo_json(data)
        return
    console = Console()
    console.print(f"{data['total']} case(s)")
    for key, title in (
        ("by_status", "status"),
        ("by_week", "week (Monday)"),
        ("by_mode", "source mode"),
        ("by_office", "office"),
    ):
        table = Table(title=f"by {title}", title_justify="left")
        table.add_column(title)
        table.add_column("cases", justify="right")
        for name, count in data[key].items():
            table.add_row(name or "(none)", str(count))
        console.print(table)
