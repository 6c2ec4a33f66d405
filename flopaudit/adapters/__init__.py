"""Backends behind the one :class:`~flopaudit.adapters.base.Adapter` interface.

Each backend is one module of this package that declares its descriptor as
the module constant ``BACKEND = Backend(...)`` (:mod:`flopaudit.adapters.descriptor`)
and defines the adapter class the descriptor names. The backends are found by
importing this package's public modules (names not starting with ``_``); adding
a backend is adding its module. Backends declared outside the package (tests,
plug-ins) are added at run time with :func:`register_backend`.

Importing this package, listing the backends and reading their descriptors
imports neither torch nor any backend: adapter modules keep torch and their
backend's imports inside functions. :func:`get_adapter` is what loads them.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import Backend, MetaSupport
from flopaudit.errors import UserError, did_you_mean

_runtime: dict[str, tuple[Backend, str]] = {}
"""Backends added with :func:`register_backend`: name -> (descriptor, module of its adapter)."""


@functools.cache
def _discovered() -> dict[str, tuple[Backend, str]]:
    """The package's own backends: name -> (descriptor, module declaring it), found once per process."""
    found: dict[str, tuple[Backend, str]] = {}
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        backend = getattr(importlib.import_module(info.name), "BACKEND", None)
        if not isinstance(backend, Backend):
            continue
        if backend.name in found:
            raise RuntimeError(f"backend {backend.name!r} is declared by {found[backend.name][1]} and {info.name}")
        found[backend.name] = (backend, info.name)
    return found


def _registry() -> dict[str, tuple[Backend, str]]:
    entries = {**_discovered(), **_runtime}
    return dict(sorted(entries.items(), key=lambda item: (item[1][0].order, item[0])))


def backends() -> dict[str, Backend]:
    """Every backend, ``{name: descriptor}``, in column order (:attr:`Backend.order`, the reference first)."""
    return {name: backend for name, (backend, _) in _registry().items()}


def backend_names() -> tuple[str, ...]:
    """Every backend id, in column order."""
    return tuple(_registry())


def get_backend(name: str) -> Backend:
    """The descriptor of backend ``name``; an unknown name is a :class:`UserError` listing the valid ones."""
    return registration(name)[0]


def registration(name: str) -> tuple[Backend, str]:
    """``(descriptor, module defining its adapter class)`` of backend ``name``.

    Picklable: a worker process that does not know the backend (one added
    with :func:`register_backend` in the parent) registers it from this pair.
    """
    registry = _registry()
    try:
        return registry[name]
    except KeyError:
        raise UserError(f"unknown backend {name!r}{did_you_mean(name, registry)}; "
                        f"valid backends: {', '.join(registry)}") from None


def get_adapter(name: str) -> Adapter:
    """An instance of backend ``name``'s adapter class (importing its module, and so torch)."""
    backend, module = registration(name)
    cls = getattr(importlib.import_module(module), backend.adapter)
    declared = getattr(cls, "backend", None)
    if declared != backend:
        raise TypeError(f"{module}.{backend.adapter}.backend is {declared!r}, not the descriptor of {name!r}")
    return cls()


def register_backend(backend: Backend, module: str) -> None:
    """Add (or replace) a backend declared outside this package, for this process.

    ``module`` is the import path of the module defining the adapter class
    ``backend.adapter`` (it is imported by :func:`get_adapter`, not here). A
    built-in backend cannot be replaced.
    """
    if not isinstance(backend, Backend):
        raise TypeError(f"register_backend takes a Backend, not {type(backend).__name__}")
    builtin = _discovered().get(backend.name)
    if builtin is not None:
        if builtin == (backend, module):
            return
        raise ValueError(f"backend {backend.name!r} is built in ({builtin[1]}); choose another name")
    _runtime[backend.name] = (backend, module)


def unregister_backend(name: str) -> None:
    """Remove a backend added with :func:`register_backend` (no-op if there is none by that name)."""
    _runtime.pop(name, None)


__all__ = [
    "Adapter",
    "Backend",
    "MetaSupport",
    "RawCount",
    "backend_names",
    "backends",
    "get_adapter",
    "get_backend",
    "register_backend",
    "registration",
    "unregister_backend",
]
