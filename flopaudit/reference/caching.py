"""The reference counter's process cache, and the one switch that turns it off.

The cache has two tables, kept because they pay:

- **The pricing memo.** An operator call is
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
  signature, so nothing priced before is reused for it.
- **Operator facts** (:class:`~flopaudit.reference.operators.OperatorFacts`: an
  operator's formula, its name, which arguments it writes, whether it is a view
  or a query), read from the operator's schema and the formula registry: once
  per process for each operator instead of once per count. An operator's schema
  does not change (the table holds the operator object itself, so it is never
  mistaken for another one made later at the same address), and the table is
  emptied whenever the registry changes
  (:func:`~flopaudit.reference.registry.generation`), so it cannot change an
  answer either.

What they save (``benchmarks/bench_reference_caches.py``, side by side in one
run, a model counted before in the process): the memo saves 19% of a count of
mobilenet_v2 and of lstm-bidir-2layer, and 3% to 9% on resnet18, resnet50,
convnext_tiny and vit_b_16, whose operators do more work per call; the facts
table saves 16% more on lstm-bidir-2layer (a few operators, each called a few
times: reading an operator's schema costs more than pricing a call from the
memo) and 1% or less on the others. Together they take a second count of the
7B Llama-style config on meta from 0.50 s to 0.24 s.

Nothing else of the recorder outlives a count: which modules run which
operators is recorded afresh every time, and what may change between counts
(module facts: attributes, parameter shapes) is read once per count.

The switch: ``count(..., cache=False)`` (or ``record(..., cache=False)``)
prices every call afresh, reads every operator's facts afresh and leaves both
tables as they are; the environment
variable ``FLOPAUDIT_REFERENCE_CACHE=0`` (also ``false``, ``no``, ``off``)
does the same for every count that does not say ``cache=``.
:func:`clear_caches` empties both.
"""

from __future__ import annotations

from typing import Any, Protocol

from flopaudit.reference.call_pricing import ALIASES, OperatorCall, PricedCall, alias_pattern, describe_outputs, price
from flopaudit.reference.operators import OperatorFacts
from flopaudit.reference.registry import generation
from flopaudit.switches import switch

ENV_VAR = "FLOPAUDIT_REFERENCE_CACHE"
"""Set to ``0`` (or ``false``, ``no``, ``off``) to turn the reference counter's process cache off."""


def enabled(cache: bool | None = None) -> bool:
    """Whether a count uses the process cache: ``cache`` if given, else not
    while :data:`ENV_VAR` says off (read at each count)."""
    if cache is not None:
        return bool(cache)
    return switch(ENV_VAR, default=True)


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


#: Operator -> its facts, for the formula registry at generation ``_FACTS_GENERATION[0]``
#: (see the module docstring). Emptied when it reaches :data:`_FACTS_MAX` entries.
_FACTS: dict[Any, OperatorFacts] = {}
_FACTS_GENERATION = [-1]
_FACTS_MAX = 5_000


def facts_table(cache: bool | None) -> dict[Any, OperatorFacts]:
    """Where one recording looks up and keeps operator facts: the process's table if
    :func:`enabled` (emptied first if the formula registry changed since it was filled),
    else a table of its own."""
    if not enabled(cache):
        return {}
    now = generation()
    if _FACTS_GENERATION[0] != now or len(_FACTS) >= _FACTS_MAX:
        _FACTS.clear()
        _FACTS_GENERATION[0] = now
    return _FACTS


def pricer(cache: bool | None, notes: list[str]) -> Pricer:
    """The pricer of one recording: with the memo if :func:`enabled`."""
    return MemoPricer(notes) if enabled(cache) else FreshPricer(notes)


#: Every process cache of the reference counter: what :func:`clear_caches` empties.
PROCESS_CACHES: tuple[dict[Any, Any], ...] = (_PRICED, _FACTS)


def clear_caches() -> None:
    """Forget every operator call priced and every operator's facts read in this process:
    the next count prices each call afresh, as the first count in a fresh process does."""
    for cache in PROCESS_CACHES:
        cache.clear()


__all__ = ["ENV_VAR", "FreshPricer", "facts_table", "MemoPricer", "PROCESS_CACHES", "Pricer", "clear_caches", "enabled", "pricer"]
