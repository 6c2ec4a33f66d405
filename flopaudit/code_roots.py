"""Where installed code lives: the standard library and site-packages, whose files change only with
Python's or a distribution's version. Code anywhere else, flopaudit's own excepted, is the user's (a
model module, its helpers)."""

from __future__ import annotations

import functools
import os
import site
import sysconfig
from types import ModuleType


@functools.lru_cache(maxsize=1)
def installed_roots() -> tuple[str, ...]:
    """The standard library's and site-packages' directories, resolved, each ending in ``os.sep``."""
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots if r))


FLOPAUDIT_ROOT = os.path.realpath(os.path.dirname(os.path.abspath(__file__))) + os.sep
"""flopaudit's own package directory (an editable install keeps it outside site-packages)."""


@functools.lru_cache(maxsize=1)
def not_users_roots() -> tuple[str, ...]:
    """:func:`installed_roots` and :data:`FLOPAUDIT_ROOT`: the directories whose code is not the user's."""
    return tuple(sorted({*installed_roots(), FLOPAUDIT_ROOT}))


def is_users(module: ModuleType | None) -> bool:
    """Is ``module`` the user's own code: a file outside :func:`not_users_roots` (not built in, not
    installed, not flopaudit's)?"""
    path = getattr(module, "__file__", None)
    if not path:
        return False
    roots = not_users_roots()
    return not path.startswith(roots) and not os.path.realpath(path).startswith(roots)  # (resolved only if needed)


__all__ = ["FLOPAUDIT_ROOT", "installed_roots", "is_users", "not_users_roots"]
