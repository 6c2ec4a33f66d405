"""One ruleset per audited backend, named like the backend.

A backend's descriptor names its ruleset module (:attr:`flopaudit.adapters.Backend.ruleset`).
Each module defines its backend's :class:`~flopaudit.reference.rulesets.Ruleset`
(plus any event/module counters it needs) and registers it; a ruleset named
``fvcore`` predicts what the ``fvcore`` adapter reports, in whole-batch MACs.
The reference adapter attaches every one of them to its result as a
:class:`~flopaudit.records.RulesetPrediction`, which the diff report uses to
explain each backend's difference from the canonical count.

A backend that counts training steps (:attr:`flopaudit.adapters.Backend.passes`)
is predicted on a recorded training step by the same ruleset, unless its
module also registers one named ``<backend>:train`` (a backend that counts a
training step in another way than a forward pass: scaling its forward count,
:func:`~flopaudit.reference.backend_rulesets.rules_of_thumb.times_forward`).
"""

from __future__ import annotations

import importlib
from typing import Any


def backend_rulesets(kind: str = "inference") -> dict[str, Any]:
    """``{backend id: Ruleset}`` for every backend that counts passes of ``kind`` and whose
    descriptor names a ruleset module that exists (for ``train``, its ``<backend>:train``
    ruleset where it has one).

    The modules are named by :attr:`flopaudit.adapters.Backend.ruleset` and imported here (once).
    """
    from flopaudit.adapters import backends
    from flopaudit.reference.rulesets import RULESETS, get_ruleset

    out = {}
    for name, backend in backends().items():
        if backend.ruleset is None or not backend.counts(kind):
            continue
        try:
            importlib.import_module(backend.ruleset)
        except ModuleNotFoundError as exc:
            if exc.name == backend.ruleset:
                continue
            raise
        out[name] = RULESETS.get(f"{name}:train") if kind == "train" and f"{name}:train" in RULESETS else \
            get_ruleset(name)
    return out
