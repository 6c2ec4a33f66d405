"""Optional zoo families (timm, transformers): availability and offline builds."""

from __future__ import annotations

import importlib.util
import os


def available(module: str) -> bool:
    """Whether ``module`` could be imported (without importing it: timm and
    transformers are slow to import, and building the registry must not)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def offline() -> None:
    """Building from a config never needs the Hugging Face hub: make sure nothing tries."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
