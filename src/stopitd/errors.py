"""The few exceptions stopitd raises for real faults (odd mail is a Finding, not an error)."""

from __future__ import annotations


class StopitdError(Exception):
    """Base class: the message is written for the person who has to act on it."""


class ConfigError(StopitdError):
    """The configuration file is missing, unreadable or invalid."""


class SpoolError(StopitdError):
    """The spool cannot be written or read."""


class StoreError(StopitdError):
    """The case store is unreachable or not at the expected schema."""


class SchemaBehindError(StoreError):
    """The database schema is older than this stopitd: run `stopitd db upgrade`."""
