"""Tiny hand-made models that stress the counters where they disagree.

Every case is seeded, runs on CPU in milliseconds, is tagged ``hard`` and
carries its canonical MACs and parameter count derived in closed form (the
arithmetic is written out where each case is defined, under
:mod:`flopaudit.zoo.hard`).
"""

from __future__ import annotations

import importlib

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard import FAMILIES


def cases() -> list[ModelCase]:
    """All hard cases, family by family."""
    out: list[ModelCase] = []
    for family in FAMILIES:
        out += importlib.import_module(f"flopaudit.zoo.hard.{family}").cases()
    return out
