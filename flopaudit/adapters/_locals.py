"""Read a function's totals from its own variables when it prints them.

Some counters compute their totals in local variables, print them rounded and
return nothing (sksq96's ``torchsummary.summary``). :func:`call_reading_locals`
runs such a function with the ``print`` of its module replaced, for the call
only, by one that prints nothing and copies the calling frame's locals once
they hold every name asked for: the adapter reads the exact numbers the
function printed, not their rounded text, and nothing is traced (the model's
forward runs at full speed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any

_ABSENT = object()


def call_reading_locals(fn: Callable[..., Any], module: ModuleType, names: Collection[str], *args: Any,
                        **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """``fn(*args, **kwargs)`` and the locals of the frame that called ``print``
    (looked up in ``module``'s globals) when they first held all of ``names``
    ({} if it never did). Output is dropped; ``module.print`` is restored."""
    captured: dict[str, Any] = {}

    def reading_print(*_args: Any, **_kwargs: Any) -> None:
        if captured:
            return
        local = sys._getframe(1).f_locals
        if all(name in local for name in names):
            captured.update(local)

    saved = module.__dict__.get("print", _ABSENT)
    module.print = reading_print  # type: ignore[attr-defined]
    try:
        result = fn(*args, **kwargs)
    finally:
        if saved is _ABSENT:
            del module.print  # type: ignore[attr-defined]
        else:
            module.print = saved  # type: ignore[attr-defined]
    return result, captured


__all__ = ["call_reading_locals"]
