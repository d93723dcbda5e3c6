"""Errors a user can act on. The CLI prints their message as one line, never a traceback."""


class UserError(Exception):
    """Bad input or a state the user must fix; the message says what to do."""


class InvalidAnswer(UserError):
    """An answer that does not fit the pending question: it is re-asked and changes nothing."""
