"""The result cache: a count is reused only when nothing it depends on has changed.

A cached result is found by two keys and checked against a manifest:

* the case key: the case id (zoo id or ``module:function``), where the
  code a ``module:function`` spec names lives (:func:`flopaudit.callables.origin`:
  two projects' ``net:build`` are different models), the input
  override (``--input-shape`` / ``--inputs``), seed, train flag, ``--mode``,
  ``--meta``, ``--device``, ``--dtype``, the pass (``--pass``, ``--loss``, ``--optimizer``), the digest
  of flopaudit's own source files, the Python
  version, and every environment variable whose name starts with
  :data:`ENV_PREFIXES` (``TIMM_FUSED_ATTN``...) or is named with
  ``--cache-env``;
* the backend key: its name, adapter (and the adapter's source digest when
  it lives outside flopaudit), version, torch version and adapter options;
* the manifest (:mod:`flopaudit.execution.manifest`) the worker took after
  counting: the SHA-256 of every imported Python file outside the standard
  library and site-packages (the user's model module and every helper it
  imports), the version of every installed distribution that was
  loaded, and what the imports it looked for would find now (a module it
  did not find, a helper a new package could shadow). A result is served
  only while its manifest still holds, checked without importing anything.

Only results with status ``ok`` or ``not applicable`` are stored; errors and
timeouts are counted again next time. The case's
:class:`~flopaudit.records.CaseInfo` is stored the same way, so a run whose
counts are all cached builds no model. Each file keeps the newest few
entries of its key (one per manifest), is written atomically, and is
ignored when it cannot be read. ``--no-cache`` turns the cache off; the
answer is the same either way (``tests/test_cache.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from flopaudit.callables import is_spec, origin
from flopaudit.execution.manifest import Manifest, still_holds
from flopaudit.passes import INFERENCE_PASS, Pass
from flopaudit.records import CaseInfo, CountResult, Status, installed_version

CACHE_SCHEMA = "flopaudit.cache"
CACHE_VERSION = 2
CACHEABLE = (Status.OK, Status.NOT_APPLICABLE)
ENV_PREFIXES = ("TIMM_", "HF_", "TRANSFORMERS_", "TORCH_", "PYTORCH_")
"""Environment variables that change how models are built; part of every case key."""
ENTRIES_PER_KEY = 8

Key = dict[str, Any]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/flopaudit``, or ``~/.cache/flopaudit``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flopaudit"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def package_digest() -> str:
    """SHA-256 over the paths and contents of flopaudit's source and data files."""
    root = _package_dir()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json") and p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def module_source_digest(module_path: str) -> str:
    """SHA-256 of the file of an already imported module, "" for flopaudit's own (covered by
    :func:`package_digest`) or one without a file."""
    module = sys.modules.get(module_path)
    origin = getattr(module, "__file__", None)
    if not origin or Path(origin).resolve().is_relative_to(_package_dir()):
        return ""
    from flopaudit.execution.manifest import file_digest

    return file_digest(origin)


def environment_key(extra_names: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment variables that are part of every case key."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) or k in extra_names}


def _normal(obj: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj, sort_keys=True))


class ResultCache:
    """Cached results and case infos under ``directory``.

    ``env_names`` are the extra environment variables (``--cache-env``) that
    are part of every case key. ``hits``/``misses`` count result look-ups,
    ``writes`` the files written (each once, however many times: a case counted by two
    workers stores its info under each one's manifest).
    """

    def __init__(self, directory: str | Path | None = None, env_names: tuple[str, ...] = ()) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.env_names = tuple(env_names)
        self.hits = 0
        self.misses = 0
        self._written: set[Path] = set()
        self._backend_keys: dict[str, Key] = {}
        self._holds: dict[str, bool] = {}

    # -- keys ---------------------------------------------------------------
    def case_key(self, case_id: str, *, input_shape: tuple[int, ...] | None = None,
                 inputs_factory: str | None = None, seed: int = 0, train: bool = False,
                 meta: bool = False, mode: str | None = None, device: str = "cpu",
                 dtype: str = "float32", pass_: Pass | None = None) -> Key:
        """The key of a named case (see the module docstring)."""
        step = pass_ or INFERENCE_PASS
        return _normal({
            "pass": [step.kind, step.loss, step.optimizer],
            "id": case_id,
            # Where the user code named lives: the same spec in another project is other code.
            "code": [origin(spec) for spec in (case_id, inputs_factory, step.loss, step.optimizer)
                     if isinstance(spec, str) and is_spec(spec)],
            "input_shape": list(input_shape) if input_shape else None,
            "inputs_factory": inputs_factory,
            "seed": seed,
            "train": train,
            "meta": meta,
            "mode": mode,
            "device": device,
            "dtype": dtype,
            "flopaudit_source": package_digest(),
            "python": sys.version.split()[0],
            "environment": environment_key(self.env_names),
            # A relative path the model's code opens is read from here: another directory, other files.
            "working_directory": os.getcwd(),
        })

    def backend_key(self, backend: str) -> Key:
        """Name, adapter path and source, version, torch version and options of a backend."""
        if backend not in self._backend_keys:
            from flopaudit.adapters import get_adapter, registration

            adapter = get_adapter(backend)
            described, module = registration(backend)
            self._backend_keys[backend] = _normal({
                "name": backend,
                "adapter": f"{module}:{described.adapter}",
                "adapter_source": module_source_digest(module),
                "version": adapter.version(),
                "torch": installed_version("torch"),
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

    def put_result(self, case_key: Key, backend: str, result: CountResult, manifest: Manifest) -> bool:
        """Store ``result`` if its status may be cached; return whether it was."""
        if result.status not in CACHEABLE:
            return False
        self._write("result", {"case": case_key, "backend": self.backend_key(backend)}, result.to_dict(), manifest)
        return True

    # -- case infos -----------------------------------------------------------
    def get_info(self, case_key: Key) -> CaseInfo | None:
        value = self._read("case", {"case": case_key})
        try:
            return CaseInfo.from_dict(value) if value is not None else None
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def put_info(self, case_key: Key, info: CaseInfo, manifest: Manifest) -> None:
        if info.error is None:
            self._write("case", {"case": case_key}, info.to_dict(), manifest)

    # -- files ----------------------------------------------------------------
    def _holds_now(self, manifest: Manifest) -> bool:
        digest = manifest.digest
        if digest not in self._holds:
            self._holds[digest] = still_holds(manifest)
        return self._holds[digest]

    def _entries(self, kind: str, key: Key) -> list[dict[str, Any]]:
        path = self.path_for(kind, key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        ok = (isinstance(data, dict) and data.get("schema") == CACHE_SCHEMA
              and data.get("schema_version") == CACHE_VERSION and data.get("kind") == kind
              and data.get("key") == key and isinstance(data.get("entries"), list))
        return [e for e in data["entries"] if isinstance(e, dict) and "manifest" in e and "value" in e] if ok else []

    def _read(self, kind: str, key: Key) -> Any:
        for entry in self._entries(kind, key):
            try:
                manifest = Manifest.from_dict(entry["manifest"])
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
            if self._holds_now(manifest):
                return entry["value"]
        return None

    def _write(self, kind: str, key: Key, value: Any, manifest: Manifest) -> None:
        from flopaudit.results_io import write_atomic

        fresh = {"manifest": manifest.to_dict(), "value": value}
        others = [e for e in self._entries(kind, key) if e.get("manifest") != fresh["manifest"]]
        doc = {"schema": CACHE_SCHEMA, "schema_version": CACHE_VERSION, "kind": kind, "key": key,
               "entries": [fresh, *others][:ENTRIES_PER_KEY]}
        try:
            write_atomic(self.path_for(kind, key), json.dumps(doc, indent=1, sort_keys=True) + "\n")
        except OSError:
            return  # a cache that cannot be written only costs time
        self._holds[manifest.digest] = True
        self._written.add(self.path_for(kind, key))

    @property
    def writes(self) -> int:
        return len(self._written)

    def summary(self) -> str:
        return f"cache: {self.hits} results reused, {self.misses} counted, {self.writes} files written ({self.directory})"


__all__ = ["ResultCache", "default_cache_dir", "package_digest", "CACHEABLE", "ENV_PREFIXES"]
