"""Errors a user can meet: each carries one clear line and an exit code.

The CLI prints ``vtguardian: <message>`` for these and never a traceback, because
the people running this on a Raspberry Pi need the cause, not the call stack.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure caused by input or environment that the user can fix."""

    exit_code = 1


class ConfigError(UserError):
    """Invalid configuration file or value."""

    exit_code = 2


class DatabaseUnavailable(UserError):
    """The configured database cannot be reached or opened."""

    exit_code = 3


class InvalidInput(UserError):
    """A value or file given on the command line cannot be used."""

    exit_code = 2
