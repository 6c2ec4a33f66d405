"""Exceptions that carry meaning for the CLI and the run orchestration."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for (bad name, shape, path).

    The CLI prints the message on one line and exits with status 2; no
    traceback is shown.
    """


class NotApplicable(Exception):
    """A backend cannot count this model/input combination at all.

    Raised inside an adapter; the result gets status ``not applicable`` and
    this message as the reason.
    """
