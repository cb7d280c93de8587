"""`stopitd outbox list|retry`: what stopitd has sent, is sending, or could not send."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.table import Table

from stopitd.cli.cases import store_session
from stopitd.cli.common import config_option
from stopitd.cli.notify import staff_identity
from stopitd.outbound import outbox
from stopitd.store.outbox_schema import OutboxStatus


@click.group("outbox")
def outbox_group() -> None:
    """Outbound mail: acknowledgements, notices, routing mail."""


@outbox_group.command("list")
@config_option
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]), help="Only this.")
@click.option("--case", "case_id", type=int, help="Only this case's mail.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array.")
@click.pass_context
def list_command(
    ctx: click.Context, status: str | None, case_id: int | None, limit: int, as_json: bool
) -> None:
    """List outbound mail, newest first."""
    with store_session(ctx) as session:
        rows = [outbox.row_json(r) for r in outbox.list_rows(session, status, case_id, limit)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{len(rows)} message(s)", title_justify="left")
    for col in ("id", "case", "kind", "status", "attempts", "to", "created", "last error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["case_id"]),
            r["kind"],
            r["status"],
            str(r["attempts"]),
            r["to"],
            r["created"],
            r["last_error"],
        )
    Console().print(table)


@outbox_group.command("retry")
@config_option
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Queue every failed message again.")
@click.option("--as", "actor", help="Staff name for the case history (default: login user).")
@click.pass_context
def retry_command(
    ctx: click.Context, ids: tuple[int, ...], all_failed: bool, actor: str | None
) -> None:
    """Queue failed messages again (by outbox id, or --all-failed)."""
    if not ids and not all_failed:
        raise click.UsageError("give outbox ids, or --all-failed")
    with store_session(ctx) as session:
        done = outbox.retry(session, list(ids), datetime.now(UTC), staff_identity(actor))
        session.commit()
    missing = sorted(set(ids) - set(done))
    click.echo(f"queued again: {', '.join(map(str, done)) or 'nothing'}")
    if missing:
        raise click.ClickException(
            f"not failed (or unknown): {', '.join(map(str, missing))}; see `stopitd outbox list`"
        )
