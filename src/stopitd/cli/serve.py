"""`stopitd serve`: run the daemon (SMTP intake, spool, worker) in the foreground."""

from __future__ import annotations

import sys

import click

from stopitd.cli.common import config_option, state


@click.command("serve")
@config_option
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the daemon in the foreground (systemd: Type=notify)."""
    settings = state(ctx).settings()
    from stopitd import daemon

    sys.exit(daemon.run(settings))
