"""Exceptions that carry meaning for the CLI and the run orchestration."""

from __future__ import annotations

import difflib
import linecache
import traceback
from collections.abc import Iterable


def failed_assertion(exc: AssertionError) -> str:
    """Where an ``assert`` failed: ``"function (file:line): source"`` (plus its message, if any)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return str(exc)
    last = frames[-1]
    source = (last.line or linecache.getline(last.filename, last.lineno or 0)).strip()
    where = f"{last.name} ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    return f"{where}: {source}" + (f" ({exc})" if str(exc) else "")


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message; for an ``assert`` without one (``AssertionError()``, as
    timm's attention layers check their input size), the statement that failed and where
    (:func:`failed_assertion`); ``""`` for an empty message of any other exception."""
    text = str(exc).strip()
    if not text and isinstance(exc, AssertionError):
        return failed_assertion(exc)
    return text.splitlines()[0] if text else ""


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


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` naming the (up to three) candidates closest to ``name``,
    letter case aside, for a message about a name that is not there; "" if none is close."""
    lowered = {c.lower(): c for c in candidates if c != name}
    close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.75)]
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def keyword_inputs_hint(exc: BaseException, args: tuple[object, ...], kwargs: object) -> str:
    """What to do about ``exc`` if it is what a model taking one mapping argument raises when the
    mapping was given as the inputs (so as keyword arguments), or a backend's failure caused by
    that; ``""`` for any other error."""
    if args or not kwargs:
        return ""
    cause: BaseException | None = exc
    while cause is not None and not (isinstance(cause, TypeError) and any(
            words in str(cause) for words in ("forward() got an unexpected keyword argument",
                                              "forward() missing 1 required positional argument"))):
        cause = cause.__cause__
    if cause is None:
        return ""
    return ("; the inputs were keyword arguments (a mapping given as the inputs is model(**batch)): "
            "a model taking the mapping as its one argument is given (batch,)")


_ONE_VALUE_PER_CHANNEL = "Expected more than 1 value per channel when training"
_INTEGER_INDICES = ("'indices' to have one of the following scalar types: Long, Int",  # nn.Embedding
                    "tensors used as indices must be long, int, byte or bool")  # x[ids]


def batch_statistics_hint(exc: BaseException) -> str:
    """What to do about ``exc`` if it is the error a batch norm raises in train
    mode on one value per channel (a batch of one, or one pooled to 1x1, as in
    a training step of most convnets' heads at batch size 1); ``""`` for any other error."""
    if _ONE_VALUE_PER_CHANNEL not in str(exc):
        return ""
    return ("; in train mode a batch norm needs more than one value per channel: give a batch of 2 or more "
            "(--input-shape or --inputs), or put the model in eval mode (--mode eval)")


def integer_inputs_hint(exc: BaseException) -> str:
    """What to do about ``exc`` if it is what a model taking integer indices (token ids) raises
    on a float tensor, as ``--input-shape`` makes; ``""`` for any other error."""
    if not any(text in str(exc) for text in _INTEGER_INDICES):
        return ""
    return ("; the model takes integer indices (token ids) and --input-shape makes a float tensor "
            "(torch.randn): give them with --inputs module:function, a function returning e.g. "
            "torch.randint(0, vocab_size, (1, 16))")


def placement_hint(device: str, dtype: str) -> str:
    """What a forward failing after ``--device``/``--dtype`` placed the model may be failing on (a tensor its
    own code makes in float32 or on the CPU, an operator without a kernel for that dtype there); ``""``
    for the CPU in float32, where nothing was moved or cast."""
    if (device, dtype) == ("cpu", "float32"):
        return ""
    if device == "cpu":
        return (f"; the model and its floating inputs were cast to {dtype} (--dtype) once built: a tensor its code "
                f"makes in float32, or an operator without a {dtype} kernel on the CPU, fails there; count it "
                "without --dtype to tell")
    return (f"; the model and its inputs were put on {device} in {dtype} (--device, --dtype) once built: a tensor "
            f"its code makes on the CPU or in float32, or an operator without a {dtype} kernel there, fails there; "
            "count it without those options to tell")


class Terminated(KeyboardInterrupt):
    """The command line was sent SIGTERM (``kill``, a CI job's time limit): stopped as Ctrl-C stops
    it, every worker and the fork server with it, and exit 143."""
