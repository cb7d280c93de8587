"""`stopitd check-config`: validate a config file and print the effective settings."""

from __future__ import annotations

import json

import click

from stopitd import config
from stopitd.cli.common import config_option, state


@click.command("check-config")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
def check_config(ctx: click.Context, as_json: bool) -> None:
    """Validate the config file and print the effective settings."""
    settings = state(ctx).settings()
    effective = config.as_toml_dict(settings)
    if as_json:
        click.echo(json.dumps({"file": str(settings.source), "settings": effective}, indent=2))
        return
    click.echo(f"# {settings.source}: valid")
    for section, values in effective.items():
        click.echo(f"\n[{section}]")
        for key, value in values.items():
            click.echo(f"{key} = {json.dumps(value)}")
