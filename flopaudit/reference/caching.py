"""The reference counter's process cache, and the one switch that turns it off.

One cache remains, because it pays: the **pricing memo**. An operator call is
priced (its schema bound, its formula run, its shapes and bytes summed) once
per process for each *signature* of the call: the operator, its formula, and
everything the formula and the event read of the call (each input tensor's
shape and dtype as it was before the call, every non-tensor argument with its
type, the keyword names, each output's shape and dtype, and which tensors are
one and the same object, since bytes are summed over distinct tensors:
``addcmul_(v, g, g)`` in every Adam step; see
:func:`flopaudit.reference.call_pricing.describe_inputs`). Formulas see a call only
through an :class:`~flopaudit.reference.registry.OpCall` built from exactly
those, so two calls with one signature are priced the same: the memo cannot
change an answer. It keeps nothing where the signature cannot say all of it:
nested tensors, symbolic sizes, arguments it cannot hold by value, a formula
that failed. Registering or removing a formula changes the formula in the
signature, so nothing priced before is reused for it. It pays
(``benchmarks/bench_reference_caches.py``, on against off side by side in one
run): it saves 18% of a count of mobilenet_v2 counted before in the process
(11% of a first count), 33% on lstm-bidir-2layer, 25% of a second count of
the 7B Llama-style config on meta (4% of a first); on resnet18 and resnet50,
whose operators do more work per call, 1% to 7%.

Nothing else of the recorder outlives a count: which modules run which
operators is recorded afresh every time, and what does not change during a
count (operator facts, module facts) is read once per count.

The switch: ``count(..., cache=False)`` (or ``record(..., cache=False)``)
prices every call afresh and leaves the memo as it is; the environment
variable ``FLOPAUDIT_REFERENCE_CACHE=0`` (also ``false``, ``no``, ``off``)
does the same for every count that does not say ``cache=``.
:func:`clear_caches` empties the memo.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from flopaudit.reference.call_pricing import ALIASES, OperatorCall, PricedCall, alias_pattern, describe_outputs, price

ENV_VAR = "FLOPAUDIT_REFERENCE_CACHE"
"""Set to ``0`` (or ``false``, ``no``, ``off``) to turn the reference counter's process cache off."""
_OFF = frozenset({"0", "false", "no", "off"})


def enabled(cache: bool | None = None) -> bool:
    """Whether a count uses the process cache: ``cache`` if given, else not
    while :data:`ENV_VAR` says off (read at each count)."""
    if cache is not None:
        return bool(cache)
    return os.environ.get(ENV_VAR, "1").strip().lower() not in _OFF


class Pricer(Protocol):
    """How the recorder prices an operator call that has a formula."""

    def price(self, call: OperatorCall) -> PricedCall: ...


class FreshPricer:
    """Prices every call afresh (the cache off)."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes

    def price(self, call: OperatorCall) -> PricedCall:
        return price(call, self.notes).priced


#: Priced calls by signature (see the module docstring). Emptied when it reaches
#: :data:`_PRICED_MAX` entries (an entry and its key take about 1.8 kB).
_PRICED: dict[tuple[Any, ...], PricedCall] = {}
_PRICED_MAX = 20_000


class MemoPricer(FreshPricer):
    """Prices a call once per process for each signature (:data:`_PRICED`)."""

    def price(self, call: OperatorCall) -> PricedCall:
        key = _signature(call)
        if key is not None:
            try:
                known = _PRICED.get(key)
            except TypeError:  # a symbolic size: unhashable
                key = known = None
            if known is not None:
                return known
        pricing = price(call, self.notes)
        if key is not None and pricing.reusable:
            if len(_PRICED) >= _PRICED_MAX:
                _PRICED.clear()
            _PRICED[key] = pricing.priced
        return pricing.priced


def _signature(call: OperatorCall) -> tuple[Any, ...] | None:
    """The call's memo key, or None where a signature cannot tell it apart."""
    inputs = call.inputs
    if inputs.signature is None:
        return None
    key = [call.func, call.facts.formula]
    key += inputs.signature
    aliased = alias_pattern(inputs.tensors)  # a tensor passed twice: its bytes count once
    if aliased is not None:
        key += (ALIASES, aliased)
    try:
        outputs = describe_outputs(call.out, key)
    except Exception:  # noqa: BLE001 - an output it cannot describe: price afresh
        return None
    aliased = alias_pattern(outputs)
    if aliased is not None:
        key += (ALIASES, aliased)
    return tuple(key)


def pricer(cache: bool | None, notes: list[str]) -> Pricer:
    """The pricer of one recording: with the memo if :func:`enabled`."""
    return MemoPricer(notes) if enabled(cache) else FreshPricer(notes)


#: Every process cache of the reference counter: what :func:`clear_caches` empties.
PROCESS_CACHES: tuple[dict[Any, Any], ...] = (_PRICED,)


def clear_caches() -> None:
    """Forget every operator call priced in this process: the next count
    prices each call afresh, as the first count in a fresh process does."""
    for cache in PROCESS_CACHES:
        cache.clear()


__all__ = ["ENV_VAR", "FreshPricer", "MemoPricer", "PROCESS_CACHES", "Pricer", "clear_caches", "enabled", "pricer"]
