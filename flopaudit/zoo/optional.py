"""Optional zoo families (timm, transformers): offline builds."""

from __future__ import annotations

import os


def offline() -> None:
    """Building from a config never needs the Hugging Face hub: make sure nothing tries."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
