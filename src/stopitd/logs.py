"""One structlog setup for the daemon and its worker; stdlib logging is routed through it.

JSON lines under systemd or when stderr is not a terminal, readable console lines on a
terminal (``[log] format`` overrides). Event names are snake_case past tense with keys
(``message_spooled``, ``report_saved``). Message bodies, subjects and reporter addresses are
only ever logged at debug level.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog

from stopitd.config import LogSettings

# Loggers of libraries that put envelope addresses or peer details into INFO lines
# (aiosmtpd's "mail.log" logs "sender: <address>"), or chatter (alembic's schema check):
# warnings only unless we run at debug.
_CHATTY = ("mail.log", "aiosmtpd", "asyncio", "alembic")


def under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def choose_format(fmt: str, stream: TextIO) -> str:
    if fmt != "auto":
        return fmt
    if under_systemd():
        return "json"
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def setup(settings: LogSettings, *, process: str = "", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger (call once per process)."""
    out = stream if stream is not None else sys.stderr
    fmt = choose_format(settings.format, out)
    level = getattr(logging, settings.level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        shared.append(_add_process(process))
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


def _add_process(name: str) -> Any:
    def add(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("process", name)
        return event

    return add
