"""What a worker's counts depended on: source files, files read, installed distributions.

A worker takes a :class:`Manifest` after each order (:func:`take`): the
SHA-256 of every imported Python file that lies outside the standard
library, site-packages and flopaudit itself (the user's model modules and
the helpers they import, wherever they are) and of every file the order's
code opened for reading there (a JSON or YAML config, a vocabulary, a
checkpoint: see :func:`reads_watched`), and the version of every
installed distribution that owns an imported module (torch, torchvision,
timm, transformers, the counters...). A result cached under a manifest is
reused only while the manifest still holds (:func:`still_holds`): every
file unchanged, every distribution at the same version. A file larger than
:data:`HASHED_UP_TO` bytes is fingerprinted by its size and modification
time instead of hashed (a checkpoint is not read whole at every look-up).

NB: a warm worker's manifest also lists what earlier orders of that worker
imported or read, so it may be a superset of what one case needs; that costs
a recount now and then, never a stale answer. A file modified after the order
began gets a digest that matches nothing (:data:`CHANGED_DURING_THE_RUN`): the
code may have read it before the edit. Files a process opens for writing only
are left out (its own scratch files). Not seen: files opened outside Python's
``open``/``os.open``/``io.open_code`` and ``torch.jit.load`` (memory-mapped by a C or Rust
library, as safetensors does), through an ``open`` bound before the
watch began (``from io import open`` at import; numpy's openers table is
watched), or in a child process a count forks (Dask workers fork one per
count), and what a directory lists: for those, name an environment variable
with ``--cache-env`` or use ``--no-cache``.

What an import would find now is part of the manifest too (:attr:`Manifest.searched`):
for every module the import system looked for and did not find (an optional
dependency, ``try: import fused_ops``, or transformers' ``find_spec`` check), and
for every imported module of the user's own (outside the standard library and
site-packages) that another module of its name could come to shadow, the entries
of that name in each directory it was looked for in (``sys.path``, or a
package's ``__path__``), and the ``.pth`` files there. A package installed since
(a ``fused_ops`` directory in site-packages, an editable install's ``.pth``), or a
helper that a new package of its name now hides, makes the manifest fail.
# NB: a missing submodule of a package in the standard library or site-packages is
# not followed: that package's version covers what it ships.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flopaudit.code_roots import not_users_roots


@dataclass(frozen=True)
class Manifest:
    """Imported files (path -> SHA-256) and loaded distributions (name -> version)."""

    files: tuple[tuple[str, str], ...] = ()
    distributions: tuple[tuple[str, str], ...] = ()
    searched: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    """``(directory, module names looked for there, what it holds of them)``: see :func:`found_in`."""

    @property
    def digest(self) -> str:
        text = json.dumps([self.files, self.distributions, self.searched])
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"files": dict(self.files), "distributions": dict(self.distributions),
                "searched": {d: {"names": list(names), "found": found} for d, names, found in self.searched}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        searched = tuple(sorted((str(k), tuple(v["names"]), str(v["found"]))
                                for k, v in d.get("searched", {}).items()))
        return cls(tuple(sorted(d.get("files", {}).items())), tuple(sorted(d.get("distributions", {}).items())),
                   searched)


HASHED_UP_TO = 64 << 20
"""Files up to this size are hashed; larger ones are known by size and modification time."""


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, ``stat:<size>:<mtime_ns>`` for a file larger than
    :data:`HASHED_UP_TO` ("" when it cannot be read)."""
    try:
        stat = os.stat(path)
        if stat.st_size > HASHED_UP_TO:
            return f"stat:{stat.st_size}:{stat.st_mtime_ns}"
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=1)
def _owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


_READ: set[str] = set()
"""Absolute paths of the files this process opened for reading inside :func:`reads_watched`."""
_WRITTEN: set[str] = set()
"""... and of those it opened for writing (left out of manifests: its own scratch files)."""
_SOUGHT: dict[str, set[str]] = {}
"""Directory -> names of the modules this process looked for there inside :func:`reads_watched`
and did not find anywhere (the last part of a dotted name)."""
_SYSTEM = ("/proc/", "/sys/", "/dev/")
_watch: dict[str, Any] = {"depth": 0, "skip": None, "saved": None}


class _NotFound:
    """A finder placed last on ``sys.meta_path``: asked only where every other finder found
    nothing, it notes where the module was looked for and finds nothing either."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> None:
        try:
            parent, _, name = fullname.rpartition(".")
            where = sys.path if path is None else path
            excluded = not_users_roots() if parent else ()
            for entry in list(where):
                if isinstance(entry, str):
                    directory = os.path.abspath(entry)
                    if not (excluded and (directory + os.sep).startswith(excluded)):
                        _SOUGHT.setdefault(directory, set()).add(name)
        except Exception:  # noqa: BLE001, S110 - never disturb the import being made
            pass
        return None


_NOT_FOUND = _NotFound()


def _note(path: Any, mode: Any, flags: int) -> None:
    """Note a file about to be opened (``mode`` as ``open`` takes it, or None and ``os.open``'s
    ``flags``). Never raises: an exception here would fail the code being watched."""
    try:
        if isinstance(path, int):
            return  # a file descriptor: opened (and seen) before
        path = os.path.abspath(os.fsdecode(path))
        if path.startswith(_watch["skip"]):
            return
        # (read and written, "r+" or O_RDWR: a read, whose digest then changes with the code's own writes)
        writes = any(c in mode for c in "wax") if isinstance(mode, str) else bool(
            flags & (os.O_WRONLY | os.O_CREAT)) and not flags & os.O_RDWR
        (_WRITTEN if writes else _READ).add(path)
    except Exception:  # noqa: BLE001, S110 - never disturb the watched code
        pass


def _watching_open(real: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real)
    def open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:  # noqa: A001 - it stands for open
        _note(file, mode, 0)
        return real(file, mode, *args, **kwargs)

    return open


def _watching_open_code(real: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real)
    def open_code(path: Any) -> Any:
        _note(path, "rb", 0)
        return real(path)

    return open_code


def _watching_ir_import(real: Callable[..., Any]) -> Callable[..., Any]:
    """``torch._C.import_ir_module(unit, path, ...)``, which ``torch.jit.load(path)`` reads in C++."""
    @functools.wraps(real)
    def import_ir_module(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 1 and isinstance(args[1], (str, bytes, os.PathLike)):
            _note(args[1], "rb", 0)
        return real(*args, **kwargs)

    return import_ir_module


def _watching_os_open(real: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(real)
    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> Any:
        _note(path, None, flags)
        return real(path, flags, *args, **kwargs)

    return os_open


@contextlib.contextmanager
def reads_watched() -> Iterator[None]:
    """Note the files opened for reading while in this block (an order's building, running and
    counting), for :func:`take`: ``open`` (``builtins.open``, ``io.open``: what ``pathlib``,
    ``json``, ``numpy``, ``torch.load``, ``torch.export.load`` and YAML readers open with),
    ``os.open`` and the C++ reader behind ``torch.jit.load(path)`` are wrapped for the block and put
    back after it; modules looked for and not found are noted too (see :class:`_NotFound`).

    NB: an audit hook would see more opens, but Python calls it for every audited event, ``id()``
    included (2,600 calls in one reference count of mobilenet_v2: 4% of the count)."""
    if _watch["depth"] == 0:
        if _watch["skip"] is None:
            unresolved = sysconfig.get_paths()
            roots = {unresolved.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
            skip = tuple(os.path.abspath(r) + os.sep for r in roots if r)
            _watch["skip"] = skip + not_users_roots() + _SYSTEM
        openers = _numpy_openers()
        torch_c = sys.modules.get("torch._C")
        ir_import = getattr(torch_c, "import_ir_module", None)
        _watch["saved"] = {"open": builtins.open, "os_open": os.open, "open_code": io.open_code,
                           "numpy_openers": openers, "numpy_open": openers.get(None) if openers else None,
                           "ir_import": ir_import}
        builtins.open = io.open = _watching_open(builtins.open)
        os.open = _watching_os_open(os.open)
        io.open_code = _watching_open_code(io.open_code)
        if ir_import is not None:
            torch_c.import_ir_module = _watching_ir_import(ir_import)  # type: ignore[union-attr]
        if openers is not None:
            openers[None] = builtins.open
        sys.meta_path.append(_NOT_FOUND)
    _watch["depth"] += 1
    try:
        yield
    finally:
        _watch["depth"] -= 1
        if _watch["depth"] == 0:
            saved = _watch["saved"]
            builtins.open = io.open = saved["open"]
            os.open, io.open_code = saved["os_open"], saved["open_code"]
            if saved["numpy_openers"] is not None:
                saved["numpy_openers"][None] = saved["numpy_open"]
            if saved["ir_import"] is not None:
                sys.modules["torch._C"].import_ir_module = saved["ir_import"]
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_NOT_FOUND)


def _numpy_openers() -> dict[Any, Any] | None:
    """numpy's table of file openers (``np.loadtxt`` and ``np.genfromtxt`` open plain files with its
    ``None`` entry, the ``open`` numpy saw when imported), if numpy is imported; else None."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    for name in ("numpy.lib._datasource", "numpy.lib._datasource_impl"):
        module = sys.modules.get(name)
        table = getattr(getattr(module, "_file_openers", None), "_file_openers", None)
        if isinstance(table, dict) and None in table:
            return table
    return None


def warm_up() -> None:
    """Read what :func:`take` needs to know about the installed distributions (once per process)."""
    not_users_roots()
    _owners()


CHANGED_DURING_THE_RUN = "changed while it ran"
"""The digest of a file modified after the order began: it matches no file, so the result is counted
again next time (the code may have read the file before or after the change)."""


def take(since_ns: int | None = None) -> Manifest:
    """The manifest of this process now (see the module docstring); a file modified at or after
    ``since_ns`` (``time.time_ns()`` when the order began) gets :data:`CHANGED_DURING_THE_RUN`."""
    excluded = not_users_roots()  # (covered otherwise: installed code by versions, flopaudit by its source digest)
    files: dict[str, str] = {}

    def digest(path: str) -> str:
        if since_ns is not None:
            with contextlib.suppress(OSError):
                if os.stat(path).st_mtime_ns >= since_ns:
                    return CHANGED_DURING_THE_RUN
        return file_digest(path)

    tops: set[str] = set()
    own: set[str] = set()
    for name, module in list(sys.modules.items()):
        tops.add(name.partition(".")[0])
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        if real.startswith(excluded):
            continue
        if "." not in name:
            own.add(name)  # a top-level module of the user's: a new one of its name could shadow it
        if real not in files:
            files[real] = digest(real)
    written = {os.path.realpath(p) for p in _WRITTEN}
    for path in list(_READ):
        real = os.path.realpath(path)
        if real in files or real in written or real.startswith(excluded):
            continue
        files[real] = digest(real)
    owners = _owners()
    dists: dict[str, str] = {}
    for top in tops:
        for dist in owners.get(top, ()):
            dists.setdefault(dist, installed_version(dist))
    sought = {d: set(names) for d, names in _SOUGHT.items()}
    if own:
        for entry in sys.path:
            if isinstance(entry, str):
                sought.setdefault(os.path.abspath(entry), set()).update(own)
    searched = tuple(sorted((d, tuple(sorted(names)), found_in(d, names)) for d, names in sought.items()))
    return Manifest(tuple(sorted(files.items())), tuple(sorted(dists.items())), searched)


def found_in(directory: str, names: Any) -> str:
    """What ``directory`` holds that an import of one of ``names`` could find: the digest of its
    entries named ``<name>`` or ``<name>.<anything>`` (a package, a module, an extension module)
    and of its ``.pth`` files with their sizes and times (they add paths and finders);
    ``file:<size>:<mtime_ns>`` for a zip file on the path, "absent" where there is nothing."""
    try:
        stat = os.stat(directory)
        if not os.path.isdir(directory):
            return f"file:{stat.st_size}:{stat.st_mtime_ns}"
        wanted = set(names)
        hits = []
        for entry in sorted(os.listdir(directory)):
            if entry.endswith(".pth"):
                pth = os.stat(os.path.join(directory, entry))
                hits.append(f"{entry}:{pth.st_size}:{pth.st_mtime_ns}")
            elif entry.partition(".")[0] in wanted:
                hits.append(entry)
    except OSError:
        return "absent"
    return hashlib.sha256("\n".join(hits).encode()).hexdigest()


def still_holds(manifest: Manifest) -> bool:
    """Whether every file and distribution of ``manifest`` is as it was, and every import it
    looked for would find what it found (imports nothing)."""
    return (all(installed_version(d) == v for d, v in manifest.distributions)
            and all(file_digest(p) == h for p, h in manifest.files)
            and all(found_in(d, names) == found for d, names, found in manifest.searched))
