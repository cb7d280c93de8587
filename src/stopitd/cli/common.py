"""What every subcommand shares: the config option (before or after the subcommand)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from stopitd import config
from stopitd.config import Settings
from stopitd.errors import StopitdError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    config_path: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = config.load_discovered(self.config_path)
            except StopitdError as e:
                raise click.ClickException(str(e)) from None
        return self._settings


def state(ctx: click.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def config_option(func: F) -> F:
    """Accept `--config` after the subcommand too; it overrides one given before."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Config file (overrides the one given before the subcommand).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: str | None = None, **kwargs: Any) -> Any:
        if config_path is not None:
            st = state(click.get_current_context())
            st.config_path = config_path
            st._settings = None
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> click.ClickException:
    return click.ClickException(message)
