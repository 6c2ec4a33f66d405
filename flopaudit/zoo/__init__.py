"""Model cases: torchvision models plus hand-made hard cases.

Use :func:`all_cases` for the registry and :func:`select_cases` to pick by
id, glob or tag.
"""

from __future__ import annotations

import functools

from flopaudit.zoo.case import ModelCase, tensor_inputs
from flopaudit.zoo.select import resolve_model_spec, select_cases


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, ModelCase]:
    from flopaudit.zoo import torchvision_models

    cases: list[ModelCase] = []
    cases += torchvision_models.classification_cases()
    try:
        from flopaudit.zoo import hard_cases
    except ImportError:  # pragma: no cover - hard cases ship with the package
        pass
    else:
        cases += hard_cases.cases()
    try:
        from flopaudit.zoo import extra_cases
    except ImportError:
        pass
    else:
        cases += extra_cases.cases()
    registry: dict[str, ModelCase] = {}
    for case in cases:
        if case.id in registry:
            raise ValueError(f"duplicate zoo case id {case.id!r}")
        registry[case.id] = case
    return registry


def all_cases() -> list[ModelCase]:
    """Every registered case, in registration order."""
    return list(_registry().values())


def get_case(case_id: str) -> ModelCase:
    from flopaudit.errors import UserError

    try:
        return _registry()[case_id]
    except KeyError:
        raise UserError(f"unknown model {case_id!r}; run 'flopaudit zoo' to list the valid ones") from None


__all__ = ["ModelCase", "tensor_inputs", "all_cases", "get_case", "select_cases", "resolve_model_spec"]
