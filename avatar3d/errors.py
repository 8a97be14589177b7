"""Errors a user can cause. The CLI prints their message on one line and exits 2."""


class UserError(Exception):
    """Something the user can fix: the message says what was wrong and what to do."""


class BadArgumentError(UserError):
    """A command-line value or config field is out of range or malformed."""


class BadInputError(UserError):
    """An input file is missing, unreadable or holds unusable data."""


class OutputError(UserError):
    """An output location cannot be written."""
