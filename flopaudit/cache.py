"""A result cache: one JSON file per (model case, backend) key.

A count is reused only when everything it depends on is the same:

* the case: its id, the input override (``--input-shape`` / ``--inputs``),
  seed, train flag, meta device, the digest of flopaudit's own source files
  (zoo builders, adapters, reference formulas: any edit invalidates), the
  digest of the user's module for ``module:function`` models and inputs
  factories, and the versions of torch and the model libraries
  (torchvision, timm, transformers);
* the backend: its name, adapter path (and the adapter's source digest when
  it lives outside flopaudit), version, torch version and adapter options.

Only results with status ``ok`` or ``not applicable`` are stored; errors and
timeouts are counted again next time. The case's :class:`~flopaudit.run.CaseInfo`
(forward time, input description) is stored too, so a run whose counts are
all cached builds no model. Files are written atomically; a file that
cannot be read or does not match its key is ignored and rewritten.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flopaudit.records import CountResult, Status

if TYPE_CHECKING:
    from flopaudit.execution.refs import CaseRef
    from flopaudit.run import CaseInfo
    from flopaudit.zoo.case import ModelCase

CACHE_SCHEMA = "flopaudit.cache"
CACHE_VERSION = 1
CACHEABLE = (Status.OK, Status.NOT_APPLICABLE)
MODEL_LIBRARIES = ("torch", "torchvision", "timm", "transformers")

Key = dict[str, Any]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/flopaudit``, or ``~/.cache/flopaudit``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flopaudit"


def _package_dir() -> Path:
    import flopaudit

    return Path(flopaudit.__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def package_digest() -> str:
    """SHA-256 over the paths and contents of flopaudit's ``.py`` files."""
    root = _package_dir()
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def module_digest(module_name: str) -> str:
    """SHA-256 of a module's source file, "" for a module in flopaudit (covered by
    :func:`package_digest`) or one without a file."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ""
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        return ""
    if Path(origin).resolve().is_relative_to(_package_dir()):
        return ""
    return file_digest(origin)


@functools.lru_cache(maxsize=1)
def library_versions() -> tuple[tuple[str, str], ...]:
    out = []
    for name in MODEL_LIBRARIES:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, ""))
    return tuple(out)


def _normal(obj: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj, sort_keys=True))


class ResultCache:
    """Cached results and case infos under ``directory``.

    ``hits``/``misses`` count result look-ups, ``writes`` the files written.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.writes = 0
        self._backend_keys: dict[str, Key] = {}

    # -- keys ---------------------------------------------------------------
    def case_key(self, case: ModelCase, ref: CaseRef | None, *, meta: bool = False) -> Key | None:
        """The key of a case, or ``None`` for a case without a name (never cached)."""
        if ref is None:
            return None
        key: Key = {
            "id": ref.id,
            "input_shape": list(ref.input_shape) if ref.input_shape else None,
            "inputs_factory": ref.inputs_factory,
            "seed": case.seed,
            "train": case.train,
            "meta": meta,
            "flopaudit_source": package_digest(),
            "libraries": dict(library_versions()),
        }
        if ref.is_spec:
            key["model_source"] = module_digest(ref.id.partition(":")[0])
        if ref.inputs_factory:
            key["inputs_source"] = module_digest(ref.inputs_factory.partition(":")[0])
        return _normal(key)

    def backend_key(self, backend: str) -> Key:
        """Name, adapter path and source, version, torch version and options of a backend."""
        if backend not in self._backend_keys:
            import torch

            from flopaudit.adapters import get_adapter, registration

            adapter = get_adapter(backend)
            described, module = registration(backend)
            self._backend_keys[backend] = _normal({
                "name": backend,
                "adapter": f"{module}:{described.adapter}",
                "adapter_source": module_digest(module),
                "version": adapter.version(),
                "torch": torch.__version__,
                "options": sorted((k, repr(v)) for k, v in adapter.options().items()),
            })
        return self._backend_keys[backend]

    def path_for(self, kind: str, key: Key) -> Path:
        text = json.dumps({"kind": kind, "key": key}, sort_keys=True)
        return self.directory / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:40]}.json"

    # -- results ------------------------------------------------------------
    def get_result(self, case_key: Key, backend: str) -> CountResult | None:
        value = self._read("result", {"case": case_key, "backend": self.backend_key(backend)})
        try:
            result = CountResult.from_dict(value) if value is not None else None
        except (ValueError, KeyError, TypeError, AttributeError):
            result = None
        if result is None or result.status not in CACHEABLE:
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put_result(self, case_key: Key, backend: str, result: CountResult) -> bool:
        """Store ``result`` if its status may be cached; return whether it was."""
        if result.status not in CACHEABLE:
            return False
        self._write("result", {"case": case_key, "backend": self.backend_key(backend)}, result.to_dict())
        return True

    # -- case infos -----------------------------------------------------------
    def get_info(self, case_key: Key) -> CaseInfo | None:
        from flopaudit.run import CaseInfo

        value = self._read("case", {"case": case_key})
        try:
            return CaseInfo.from_dict(value) if value is not None else None
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def put_info(self, case_key: Key, info: CaseInfo) -> None:
        if info.error is None:
            self._write("case", {"case": case_key}, info.to_dict())

    # -- files ----------------------------------------------------------------
    def _read(self, kind: str, key: Key) -> Any:
        path = self.path_for(kind, key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ok = (isinstance(data, dict) and data.get("schema") == CACHE_SCHEMA
                  and data.get("schema_version") == CACHE_VERSION and data.get("kind") == kind
                  and data.get("key") == key and "value" in data)
        except (OSError, ValueError):
            ok = False
        return data["value"] if ok else None

    def _write(self, kind: str, key: Key, value: Any) -> None:
        from flopaudit.results_io import write_atomic

        doc = {"schema": CACHE_SCHEMA, "schema_version": CACHE_VERSION, "kind": kind, "key": key, "value": value}
        try:
            write_atomic(self.path_for(kind, key), json.dumps(doc, indent=1, sort_keys=True) + "\n")
        except OSError:
            return  # a cache that cannot be written only costs time
        self.writes += 1

    def summary(self) -> str:
        return f"cache: {self.hits} results reused, {self.misses} counted, {self.writes} files written ({self.directory})"


__all__ = ["ResultCache", "default_cache_dir", "package_digest", "module_digest", "CACHEABLE"]
