"""`stopitd cases notify ID --template stop|provider-abuse [--to ADDR] [--dry-run]`."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import click

from stopitd.cli.cases import store_session
from stopitd.cli.common import config_option, state
from stopitd.outbound.notices import (
    DEFAULT_BEHAVIOUR,
    NOTICE_KINDS,
    NoticeRefused,
    prepare,
    queue_notice,
)
from stopitd.outbound.render import TemplateError


def staff_identity(given: str | None) -> str:
    """Who acts, for the event log: --as, else the login user."""
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "staff"


@click.command("notify")
@config_option
@click.argument("case_id", type=int)
@click.option(
    "--template",
    "template",
    type=click.Choice(sorted(NOTICE_KINDS)),
    required=True,
    help="stop: ask the (authenticated) sender to stop; provider-abuse: tell their provider.",
)
@click.option("--to", "to", help="Send to this address instead of the one the case gives.")
@click.option(
    "--behaviour",
    default=DEFAULT_BEHAVIOUR,
    show_default=True,
    help="The behaviour the notice names.",
)
@click.option("--dry-run", is_flag=True, help="Print the message; queue nothing.")
@click.option("--as", "actor", help="Staff name for the case history (default: login user).")
@click.pass_context
def notify_command(
    ctx: click.Context,
    case_id: int,
    template: str,
    to: str | None,
    behaviour: str,
    dry_run: bool,
    actor: str | None,
) -> None:
    """Send a notice about a case (staff only; never automatic).

    A stop notice is refused when the sender's From address is not authenticated: a
    forged sender must not be pestered. The refusal names the alternative.
    """
    settings = state(ctx).settings()
    if not dry_run and not settings.outbound.enabled:
        raise click.ClickException(
            "outbound mail is disabled ([outbound] enabled = false); use --dry-run to preview"
        )
    now = datetime.now(UTC)
    who = staff_identity(actor)
    with store_session(ctx) as session:
        try:
            notice = prepare(
                session, case_id, template, settings, now=now, to=to, behaviour=behaviour
            )
        except (NoticeRefused, TemplateError) as e:
            raise click.ClickException(str(e)) from None
        if dry_run:
            click.echo(notice.message.raw.decode("utf-8", "replace").replace("\r\n", "\n"))
            click.echo(f"(dry run: nothing queued; would go to {notice.message.to})", err=True)
            return
        outbox_id = queue_notice(session, case_id, notice, actor=who, now=now)
        session.commit()
    click.echo(
        f"queued {template} notice for case {case_id} to {notice.message.to} "
        f"(outbox {outbox_id}, Message-ID <{notice.message.message_id}>)"
    )
