"""Failures of a backend turned into messages that name their cause.

Old counters assert shapes without a message (torchstat's ``assert
len(inp.size()) == 2``, calflops' ``assert weight.shape[1] * groups ==
input.shape[1]``): a result reading "AssertionError: " says nothing.
:func:`located_assertions` re-raises such an assertion with the function,
file, line and source of the check that failed.
"""

from __future__ import annotations

import contextlib
import linecache
import traceback
from collections.abc import Iterator


def failed_assertion(exc: AssertionError) -> str:
    """Where an ``assert`` failed: ``"function (file:line): source"`` (plus its message, if any)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return str(exc)
    last = frames[-1]
    source = (last.line or linecache.getline(last.filename, last.lineno or 0)).strip()
    where = f"{last.name} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    return f"{where}: {source}" + (f" ({exc})" if str(exc) else "")


@contextlib.contextmanager
def located_assertions() -> Iterator[None]:
    """Re-raise an ``AssertionError`` from the block with :func:`failed_assertion` as its message
    (and the original traceback, so that the error still says where it was raised)."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(failed_assertion(exc)).with_traceback(exc.__traceback__) from exc


__all__ = ["failed_assertion", "located_assertions"]
