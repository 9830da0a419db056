"""The one exception type library code raises for bad input; only the CLI turns it into a message and exit code."""


class CurateError(Exception):
    """A user-facing problem: the message names what is wrong and how to fix it, in one line."""

    exit_code = 2
