"""Exceptions with a meaning for the command line."""


class UserError(Exception):
    """Bad input from the user: the CLI prints ``error: <message>`` and exits with status 2."""


class TrialFailed(RuntimeError):
    """A trial that started but could not finish (NaN loss, a crash in a plugin, ...)."""
