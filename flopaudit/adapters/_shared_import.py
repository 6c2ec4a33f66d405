"""Which of several distributions installed the files of one import package.

``torchsummary`` (sksq96, 1.5.1) and ``torch-summary`` (TylerYep, 1.4.x)
both install the import package ``torchsummary``; ``thop`` (Lyken17, 0.1.1)
and ``ultralytics-thop`` (2.x, which ``ultralytics`` depends on) both
install ``thop``. pip keeps one set of files
per path: installing the second overwrites the first's ``__init__.py`` and
``torchsummary.py`` and leaves both distributions listed. So one environment
runs at most one of them, and the installed version numbers do not say which.
:func:`owner` answers from the files themselves: the distribution whose
``RECORD`` hashes match the files on disk owns the package.

Imports nothing but the standard library (no torch, no backend).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flopaudit.adapters.descriptor import Backend


def _digest(path: Path) -> str:
    """A file's sha256 as RECORD writes it (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()


def imported_root(package: str) -> Path | None:
    """The directory holding top-level ``package`` as ``import`` would find it
    (the parent of the package's own directory), without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent


def owns(distribution: str, files: Sequence[str], root: Path | None) -> bool:
    """True if ``distribution`` is installed in ``root`` (where the import
    package is found) and each of ``files`` there is the file its RECORD lists
    (same sha256)."""
    if root is None:
        return False
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    recorded = {f.as_posix(): f for f in dist.files or () if f.hash is not None}
    for name in files:
        entry = recorded.get(name)
        if entry is None or entry.hash is None:
            return False
        path = Path(str(dist.locate_file(entry))).resolve()
        if path != root / name or not path.is_file() or _digest(path) != entry.hash.value:
            return False
    return True


def owner(distributions: Sequence[str], files: Sequence[str]) -> str | None:
    """The first of ``distributions`` whose recorded ``files`` are the ones
    ``import`` finds, or None. ``files`` are paths under one top-level package
    (``"torchsummary/__init__.py"``)."""
    root = imported_root(files[0].split("/", 1)[0])
    return next((d for d in distributions if owns(d, files, root)), None)


@dataclass(frozen=True)
class SharedImportBackend(Backend):
    """A backend whose import package another distribution also installs.

    Available only when the files ``import`` finds are :attr:`~Backend.distribution`'s
    own (:func:`owner` among :attr:`rivals`); its version is then that
    distribution's, else "". :meth:`missing_reason` says which one is there.
    """

    rivals: tuple[str, ...] = ()
    """The distributions that install the same import package, this one included."""
    files: tuple[str, ...] = ()
    """Files all of them install, whose RECORD hashes tell them apart."""
    assumed: bool = False
    """Where no RECORD matches the files ``import`` finds (a source or editable install),
    the backend is taken to be there if its module imports (for a distribution whose
    rival is the exception, not an equal)."""

    def installed_owner(self) -> str | None:
        return owner(self.rivals, self.files)

    def available(self) -> bool:
        present = self.installed_owner()
        if present is None and self.assumed:
            return super().available()
        return present == self.distribution

    def version(self) -> str:
        return super().version() if self.available() else ""

    def missing_reason(self) -> str:
        present = self.installed_owner()
        if present is None or present == self.distribution:
            return super().missing_reason()
        how = self.install
        if Backend.version(self):  # listed as installed, its files overwritten by the rival's
            how = f"pip install --force-reinstall --no-deps {self.distribution}"
        return (f"the import package {self.module!r} installed here is {present}'s, not {self.distribution}'s "
                f"(both install it; one per environment): {how}")


__all__ = ["SharedImportBackend", "owner", "owns"]
