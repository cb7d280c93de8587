"""`stopitd sources top`: the most-reported senders, by IP, prefix, domain or address."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from stopitd.cli.cases import echo_json, json_option, parse_when, store_session
from stopitd.cli.common import config_option
from stopitd.store.fingerprints import KINDS
from stopitd.store.queries import top_sources


@click.group("sources")
def sources_group() -> None:
    """Who keeps being reported."""


@sources_group.command("top")
@config_option
@click.option(
    "--by",
    "kind",
    type=click.Choice(sorted(set(KINDS))),
    default="origin_ip",
    show_default=True,
    help="Which identity of the sender to count.",
)
@click.option("--since", help="Only cases created on or after this date.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_context
def top_command(
    ctx: click.Context, kind: str, since: str | None, limit: int, as_json: bool
) -> None:
    """The sources with the most cases (and reports) against them."""
    with store_session(ctx) as session:
        rows = top_sources(session, kind=kind, since=parse_when(since), limit=limit)
    if as_json:
        echo_json(rows)
        return
    table = Table(title=f"most-reported by {kind}", title_justify="left")
    for col in (kind, "cases", "reports", "first seen", "last seen"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["value"],
            str(row["cases"]),
            str(row["reports"]),
            (row["first_seen"] or "").replace("T", " ").rstrip("Z"),
            (row["last_seen"] or "").replace("T", " ").rstrip("Z"),
        )
    Console().print(table)
