"""Exceptions that carry meaning for the CLI and the run orchestration."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for (bad name, shape, path).

    The CLI prints the message on one line and exits with status 2; no
    traceback is shown.
    """


class BackendFailure(RuntimeError):
    """A backend's own failure that its adapter saw coming or caught, told in
    words (where in the backend and why); raised inside an adapter, the
    result gets status ``error`` with this message. Its location is the
    backend's (the exception it was raised from, if any), never flopaudit's.
    """


class NotApplicable(Exception):
    """A backend cannot count this model/input combination at all.

    Raised inside an adapter; the result gets status ``not applicable`` and
    this message as the reason.
    """
