"""Hand-made hard cases, one module per family.

Each module has a ``cases()`` function; :func:`flopaudit.zoo.hard_cases.cases`
concatenates them in :data:`FAMILIES` order.
"""

from __future__ import annotations

FAMILIES = ("layers", "pointwise", "attention", "rnn", "structure", "custom", "params", "realworld")
