"""The `stopitd` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from stopitd import privileges
from stopitd.cli.common import CliState
from stopitd.cli.common import config_option as config_option

_CONFIG_HELP = (
    "Config file (default: $STOPITD_CONFIG, ./config/stopitd.toml, /etc/stopitd/stopitd.toml)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=_CONFIG_HELP)
@click.version_option(package_name="stopitd")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """stopitd: the daemon and staff tools behind an abuse reporting address."""
    privileges.restrict_umask()  # databases, spool entries and exports: 0600, folders 0700
    ctx.obj = CliState(config_path=config_path)


def _register() -> None:
    from stopitd.cli import analyze, cases, check_config, db, notify, outbox, sources, stats
    from stopitd.cli import serve as serve_cli
    from stopitd.cli import spool as spool_cli

    main.add_command(analyze.analyze)
    main.add_command(check_config.check_config)
    main.add_command(db.db_group)
    main.add_command(cases.cases_group)
    main.add_command(serve_cli.serve)
    main.add_command(spool_cli.spool_group)
    main.add_command(sources.sources_group)
    main.add_command(stats.stats_command)
    main.add_command(outbox.outbox_group)
    cases.cases_group.add_command(notify.notify_command)


_register()
