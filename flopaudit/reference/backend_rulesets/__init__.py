"""One ruleset per audited backend, named like the backend.

A backend's descriptor names its ruleset module (:attr:`flopaudit.adapters.Backend.ruleset`).
Each module defines its backend's :class:`~flopaudit.reference.rulesets.Ruleset`
(plus any event/module counters it needs) and registers it; a ruleset named
``fvcore`` predicts what the ``fvcore`` adapter reports, in whole-batch MACs.
The reference adapter attaches every one of them to its result as a
:class:`~flopaudit.records.RulesetPrediction`, which the diff report uses to
explain each backend's difference from the canonical count.
"""

from __future__ import annotations

import importlib
from typing import Any


def backend_rulesets() -> dict[str, Any]:
    """``{backend id: Ruleset}`` for every backend whose descriptor names a ruleset module that exists.

    The modules are named by :attr:`flopaudit.adapters.Backend.ruleset` and imported here (once).
    """
    from flopaudit.adapters import backends
    from flopaudit.reference.rulesets import get_ruleset

    out = {}
    for name, backend in backends().items():
        if backend.ruleset is None:
            continue
        try:
            importlib.import_module(backend.ruleset)
        except ModuleNotFoundError as exc:
            if exc.name == backend.ruleset:
                continue
            raise
        out[name] = get_ruleset(name)
    return out
