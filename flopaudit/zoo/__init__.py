"""Model cases: torchvision models, hand-made hard cases, timm and transformers families.

Use :func:`all_cases` for the registry and :func:`select_cases` to pick by
id, glob or tag. Importing this package imports no torch: the command line
reads :mod:`flopaudit.zoo.catalog` instead of building the registry.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

from flopaudit.lazy import lazy_attributes
from flopaudit.zoo.hard import FAMILIES as HARD_FAMILIES

if TYPE_CHECKING:
    from flopaudit.zoo.case import ModelCase

__getattr__ = lazy_attributes(__name__, {
    "ModelCase": "flopaudit.zoo.case",
    "tensor_inputs": "flopaudit.zoo.case",
    "select_cases": "flopaudit.zoo.select",
    "resolve_model_spec": "flopaudit.zoo.select",
})


FAMILIES: tuple[str, ...] = (
    "flopaudit.zoo.torchvision_models:classification_cases",
    *(f"flopaudit.zoo.hard.{name}:cases" for name in HARD_FAMILIES),
    "flopaudit.zoo.torchvision_extra:cases",
    "flopaudit.zoo.timm_models:cases",
    "flopaudit.zoo.hf_models:cases",
    "flopaudit.zoo.faulty:cases",
)
"""Where the zoo's cases come from, in registration order: ``module:function`` returning a list of cases.

A worker building one case imports only its family (the catalog records
which), so counting a hard case imports neither torchvision nor timm.
"""


@functools.cache
def family_cases(source: str) -> dict[str, ModelCase]:
    """The cases of one family, by id (a family giving one id twice is an error)."""
    module, _, function = source.partition(":")
    cases: dict[str, ModelCase] = {}
    for case in getattr(importlib.import_module(module), function)():
        if case.id in cases:
            raise ValueError(f"duplicate zoo case id {case.id!r} in {source}")
        cases[case.id] = case
    return cases


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, ModelCase]:
    registry: dict[str, ModelCase] = {}
    for source in FAMILIES:
        for case_id, case in family_cases(source).items():
            if case_id in registry:
                raise ValueError(f"duplicate zoo case id {case_id!r}")
            registry[case_id] = case
    return registry


def all_cases() -> list[ModelCase]:
    """Every registered case, in registration order."""
    return list(_registry().values())


def source_of(case_id: str) -> str | None:
    """The family a case comes from (:data:`FAMILIES`), or None when no family has it."""
    for source in FAMILIES:
        if case_id in family_cases(source):
            return source
    return None


def get_case(case_id: str) -> ModelCase:
    """The case ``case_id``, importing only its family when the catalog knows which it is."""
    from flopaudit.errors import UserError
    from flopaudit.zoo.catalog import load_catalog

    source = next((e.source for e in load_catalog() if e.id == case_id), None)
    if source in FAMILIES and case_id in family_cases(source):
        return family_cases(source)[case_id]
    try:
        return _registry()[case_id]
    except KeyError:
        raise UserError(f"unknown model {case_id!r}; run 'flopaudit zoo' to list the valid ones") from None


__all__ = ["ModelCase", "tensor_inputs", "all_cases", "get_case", "select_cases", "resolve_model_spec"]
