"""`stopitd spool status` and `stopitd spool retry`: look at and un-stick the queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from stopitd.cli.common import config_option, state
from stopitd.errors import SpoolError
from stopitd.spool import Spool, SpoolStatus


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_json(status: SpoolStatus) -> dict[str, Any]:
    return {
        "new": status.new,
        "cur": status.cur,
        "failed": status.failed,
        "tmp": status.tmp,
        "oldest_new": _iso(status.oldest_new),
        "store": {
            "down": status.store_down_since is not None,
            "since": _iso(status.store_down_since),
            "error": status.store_down_error,
        },
        "failed_entries": [
            {
                "id": f.id,
                "attempts": f.attempts,
                "reason": f.reason.splitlines()[0] if f.reason else "",
            }
            for f in status.failed_entries
        ],
    }


def _spool(ctx: click.Context) -> Spool:
    settings = state(ctx).settings()
    spool = Spool(settings.spool.path)
    if not spool.root.is_dir():
        raise click.ClickException(f"no spool at {spool.root} (has `stopitd serve` run yet?)")
    return spool


@click.group("spool")
def spool_group() -> None:
    """Inspect the spool (the durable queue between SMTP and the case store)."""


@spool_group.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Count waiting, in-progress and failed entries; list failed ones with their reason."""
    spool = _spool(ctx)
    try:
        st = spool.status()
    except SpoolError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(status_json(st), indent=2))
        return
    console = Console()
    console.print(f"spool {spool.root}")
    console.print(
        f"waiting: {st.new}   in progress: {st.cur}   failed: {st.failed}"
        + (f"   oldest waiting since {_iso(st.oldest_new)}" if st.oldest_new else "")
    )
    if st.store_down_since is not None:
        console.print(
            f"[bold red]case store unreachable since {_iso(st.store_down_since)}[/]: "
            f"{st.store_down_error} (entries stay queued and are retried)"
        )
    if st.failed_entries:
        table = Table("id", "attempts", "reason", title="failed (retry: stopitd spool retry [ID])")
        for f in st.failed_entries:
            table.add_row(f.id, str(f.attempts), f.reason.splitlines()[0] if f.reason else "")
        console.print(table)


@spool_group.command("retry")
@config_option
@click.argument("spool_id", required=False)
@click.pass_context
def retry(ctx: click.Context, spool_id: str | None) -> None:
    """Move failed entries (all, or SPOOL_ID) back to the queue with a fresh attempt count."""
    spool = _spool(ctx)
    try:
        moved = spool.retry(spool_id)
    except SpoolError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot move failed entries: {e.strerror}") from None
    for spool_id_moved in moved:
        click.echo(f"requeued {spool_id_moved}")
    click.echo(f"{len(moved)} entr{'y' if len(moved) == 1 else 'ies'} requeued")
