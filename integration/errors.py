"""Errors the integration package raises: each message is one line a user can act on."""
from __future__ import annotations


class IntegrationPackageError(Exception):
    """Base of every error raised by `integration`."""


class ExtractionError(IntegrationPackageError):
    """The source file or its target cannot be turned into a task (missing, unparsable, ambiguous)."""


class IntegrationError(IntegrationPackageError):
    """An accepted kernel cannot be written into the user's code; nothing was changed."""


class RollbackError(IntegrationPackageError):
    """A rollback cannot proceed safely (no backup, or files changed since the integration)."""
