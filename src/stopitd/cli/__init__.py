"""The `stopitd` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import importlib

import click

from stopitd import privileges
from stopitd.cli.common import CliState
from stopitd.cli.common import config_option as config_option

_CONFIG_HELP = (
    "Config file (default: $STOPITD_CONFIG, ./config/stopitd.toml, /etc/stopitd/stopitd.toml)."
)


# Subcommand name -> (module, attribute). Modules load only when their command runs, so
# `stopitd analyze` does not pay for SQLAlchemy and alembic at start-up.
_COMMANDS = {
    "analyze": ("stopitd.cli.analyze", "analyze"),
    "cases": ("stopitd.cli.cases", "cases_group"),
    "check-config": ("stopitd.cli.check_config", "check_config"),
    "db": ("stopitd.cli.db", "db_group"),
    "outbox": ("stopitd.cli.outbox", "outbox_group"),
    "serve": ("stopitd.cli.serve", "serve"),
    "sources": ("stopitd.cli.sources", "sources_group"),
    "spool": ("stopitd.cli.spool", "spool_group"),
    "stats": ("stopitd.cli.stats", "stats_command"),
}


def _load(name: str) -> click.Command:
    module, attr = _COMMANDS[name]
    command: object = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    if name == "cases" and isinstance(command, click.Group) and "notify" not in command.commands:
        from stopitd.cli.notify import notify_command

        command.add_command(notify_command)
    return command


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _load(cmd_name) if cmd_name in _COMMANDS else None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=_CONFIG_HELP)
@click.version_option(package_name="stopitd")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """stopitd: the daemon and staff tools behind an abuse reporting address."""
    privileges.restrict_umask()  # databases, spool entries and exports: 0600, folders 0700
    ctx.obj = CliState(config_path=config_path)
