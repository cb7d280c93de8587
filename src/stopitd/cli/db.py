"""`stopitd db upgrade|current`: the case store's schema."""

from __future__ import annotations

import click

from stopitd.cli.common import config_option, state
from stopitd.store import db


@click.group("db")
def db_group() -> None:
    """Create or upgrade the case store's schema, and show where it stands."""


@db_group.command("upgrade")
@config_option
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Bring the database to this stopitd's schema (creates it when new)."""
    url = state(ctx).settings().database.url
    before = _current(url)
    db.upgrade(url)
    after = _current(url)
    if before == after:
        click.echo(f"database already at {after} (head)")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {after} (head)")


@db_group.command("current")
@config_option
@click.pass_context
def current(ctx: click.Context) -> None:
    """Print the database's schema revision and whether it is current."""
    url = state(ctx).settings().database.url
    rev = _current(url)
    head = db.head_revision()
    if rev == head:
        click.echo(f"{rev} (head): up to date")
    else:
        click.echo(f"{rev or 'empty'}: behind {head}; run `stopitd db upgrade`")
        ctx.exit(1)


def _current(url: str) -> str | None:
    engine = db.make_engine(url)
    try:
        return db.current_revision(engine)
    except Exception as e:  # unreachable server, bad URL: say so plainly
        raise click.ClickException(f"cannot reach the database: {e}") from None
    finally:
        engine.dispose()
