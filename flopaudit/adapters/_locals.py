"""Read a function's local variables as it returns.

Some counters compute their totals in local variables, print them rounded and
return nothing (sksq96's ``torchsummary.summary``). :func:`call_with_locals`
runs such a function and hands back its locals at ``return``, so the adapter
reads the exact numbers the function printed, not their rounded text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def call_with_locals(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``fn(*args, **kwargs)`` and the locals of its frame when it returned.

    A trace function is installed for the call only (the previous one is put
    back): it is asked about each new frame, and follows only ``fn``'s own
    frame, whose locals it copies at its ``return`` event. If ``fn`` raises,
    the exception propagates and no locals are returned.
    """
    code = getattr(fn, "__code__", None)
    if code is None:
        raise TypeError(f"{fn!r} is not a Python function")
    captured: dict[str, Any] = {}

    def local_trace(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return":
            captured.update(frame.f_locals)
        return local_trace

    def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
        return local_trace if frame.f_code is code else None

    previous = sys.gettrace()
    sys.settrace(global_trace)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return result, captured


__all__ = ["call_with_locals"]
