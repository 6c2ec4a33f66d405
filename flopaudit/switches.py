"""Switches set by environment variables: one reading of on and off for every ``FLOPAUDIT_*`` switch."""

from __future__ import annotations

import os

ON = frozenset({"1", "true", "yes", "on"})
OFF = frozenset({"0", "false", "no", "off"})


def switch(name: str, default: bool) -> bool:
    """Whether the switch ``name`` is on: ``default`` unless the environment variable says ``1``,
    ``true``, ``yes`` or ``on`` (on) or ``0``, ``false``, ``no`` or ``off`` (off), in any case."""
    value = os.environ.get(name, "").strip().lower()
    return True if value in ON else False if value in OFF else default


__all__ = ["OFF", "ON", "switch"]
