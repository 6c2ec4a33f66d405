"""What a worker's counts depended on: imported source files and installed distributions.

A worker takes a :class:`Manifest` after each order (:func:`take`): the
SHA-256 of every imported Python file that lies outside the standard
library, site-packages and flopaudit itself (the user's model modules and
the helpers they import, wherever they are), and the version of every
installed distribution that owns an imported module (torch, torchvision,
timm, transformers, the counters...). A result cached under a manifest is
reused only while the manifest still holds (:func:`still_holds`): every
file unchanged, every distribution at the same version.

NB: a warm worker's manifest also lists what earlier orders of that worker
imported, so it may be a superset of what one case needs; that costs a
recount now and then, never a stale answer. Files that are read rather
than imported (a JSON config) are not covered: name an environment
variable with ``--cache-env`` or use ``--no-cache`` for those.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Manifest:
    """Imported files (path -> SHA-256) and loaded distributions (name -> version)."""

    files: tuple[tuple[str, str], ...] = ()
    distributions: tuple[tuple[str, str], ...] = ()

    @property
    def digest(self) -> str:
        text = json.dumps([self.files, self.distributions])
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"files": dict(self.files), "distributions": dict(self.distributions)}

    @classmethod
    def from_dict(cls, d: dict[str, dict[str, str]]) -> Manifest:
        return cls(tuple(sorted(d.get("files", {}).items())), tuple(sorted(d.get("distributions", {}).items())))


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=1)
def _excluded_roots() -> tuple[str, ...]:
    """Directories whose modules are covered otherwise: stdlib and site-packages (versions), flopaudit (source digest)."""
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    roots.add(str(Path(__file__).resolve().parents[1]))  # flopaudit itself
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots if r))


@functools.lru_cache(maxsize=1)
def _owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def warm_up() -> None:
    """Read what :func:`take` needs to know about the installed distributions (once per process)."""
    _excluded_roots()
    _owners()


def take() -> Manifest:
    """The manifest of this process now (see the module docstring)."""
    excluded = _excluded_roots()
    files: dict[str, str] = {}
    tops: set[str] = set()
    for name, module in list(sys.modules.items()):
        tops.add(name.partition(".")[0])
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        if real.startswith(excluded) or real in files:
            continue
        files[real] = file_digest(real)
    owners = _owners()
    dists: dict[str, str] = {}
    for top in tops:
        for dist in owners.get(top, ()):
            dists.setdefault(dist, installed_version(dist))
    return Manifest(tuple(sorted(files.items())), tuple(sorted(dists.items())))


def still_holds(manifest: Manifest) -> bool:
    """Whether every file and distribution of ``manifest`` is as it was (imports nothing)."""
    return all(installed_version(d) == v for d, v in manifest.distributions) and all(
        file_digest(p) == h for p, h in manifest.files
    )
