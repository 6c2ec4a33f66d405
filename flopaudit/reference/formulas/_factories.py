"""Formula factories for operator families (one formula per family, not per op).

Like fvcore's ``elementwise_flop_counter``: the family's cost rule is
written once and registered for every operator of the family. Operators
that this torch build does not have are skipped (the registry only holds
operators that exist), so the same code serves several torch versions.
"""

from __future__ import annotations

from typing import Callable

import torch

from flopaudit.reference.registry import Category, Cost, Formula, OpCall, numel, register_formula

aten = torch.ops.aten


def existing(*names: str, namespace: str = "aten") -> list[str]:
    """Keys ``<namespace>.<name>`` for the names this torch build defines (``aten``, ``quantized``)."""
    ops = getattr(torch.ops, namespace)
    return [f"{namespace}.{n}" for n in names if hasattr(ops, n)]


def per_output_element(
    category: Category, flops_per_element: int, *names: str, name: str, doc: str, namespace: str = "aten"
) -> Formula:
    """Register ``flops_per_element`` extra FLOPs per output element, 0 MACs.

    ``names`` are packet names in ``namespace``; absent ones are skipped. The output
    element count is that of the first tensor output, which for a
    broadcasting op is the broadcast shape.
    """

    def formula(call: OpCall) -> Cost:
        return Cost(0, flops_per_element * numel(call.out), category)

    return _registered(formula, name, doc, existing(*names, namespace=namespace))


def per_listed_element(
    category: Category, flops_per_element: int, *names: str, name: str, doc: str
) -> Formula:
    """Register ``flops_per_element`` extra FLOPs per element of each tensor of the first list
    argument (``self``), 0 MACs: the ``_foreach_*`` ops, which apply an elementwise op to every
    tensor of a list (in place or not), each of the same shape as its result.

    ``names`` are aten packet names; absent ones are skipped."""

    def formula(call: OpCall) -> Cost:
        return Cost(0, flops_per_element * sum(numel(s) for s in call["self"] if s is not None), category)

    return _registered(formula, name, doc, existing(*names))


def _registered(formula: Formula, name: str, doc: str, keys: list[str]) -> Formula:
    """``formula`` named ``name`` (as the events and reports call it), documented ``doc`` and
    registered for ``keys``."""
    formula.__qualname__ = name
    formula.__name__ = name
    formula.__doc__ = doc
    register_formula(*keys)(formula)
    return formula


def on(*names: str) -> Callable[[Formula], Formula]:
    """Decorator: register a hand-written formula for the existing aten ``names``."""

    def decorator(fn: Formula) -> Formula:
        register_formula(*existing(*names))(fn)
        return fn

    return decorator
