"""Golden files on disk: names, stable JSON, atomic writes, reading back.

A golden file holds either one record (what ``flopaudit snapshot`` writes,
one file per (model, backend)) or a set of records under ``"goldens"``
(what the pytest plugin writes when one test counts with several backends).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flopaudit.goldens.record import SCHEMA, SCHEMA_VERSION, SET_SCHEMA, Golden, GoldenError

SEPARATOR = "--"
"""Between model and backend in a golden's file name: ``resnet18--fvcore.json``."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """``"pkg.mod:build" -> "pkg.mod_build"``: keep letters, digits and ``._+-``, squeeze the rest to ``_``.

    A double dash is squeezed too so that :data:`SEPARATOR` stays unambiguous.
    """
    name = _UNSAFE.sub("_", text).strip("._") or "unnamed"
    while SEPARATOR in name:
        name = name.replace(SEPARATOR, "-")
    return name


TRAIN_SUFFIX = ".train"
"""Before ``.json`` in the name of a training step's golden: ``gpt2--torch-flop-counter.train.json``."""
MODEL_PART_MAX = 160
"""The longest model part of a golden's file name: a longer one (a call spec with many arguments)
keeps its start and 12 hex digits of a hash of the whole model id, since file systems refuse
names over 255 bytes (the id itself is inside the file)."""


def golden_filename(model: str, backend: str, kind: str = "inference") -> str:
    """File name of the golden for (``model``, ``backend``) in a pass of ``kind``."""
    suffix = TRAIN_SUFFIX if kind == "train" else ""
    part = safe_name(model)
    if len(part) > MODEL_PART_MAX:  # (safe names are ASCII: one byte a character)
        part = part[: MODEL_PART_MAX - 13].rstrip("._+-") + "_" + hashlib.sha1(model.encode()).hexdigest()[:12]
    return f"{part}{SEPARATOR}{safe_name(backend)}{suffix}.json"


def names_from_filename(path: Path) -> tuple[str, str] | None:
    """``resnet18--fvcore.json -> ("resnet18", "fvcore")`` (``.train.json`` too); None when
    the name has no separator."""
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    stem = stem.removesuffix(TRAIN_SUFFIX)
    model, sep, backend = stem.rpartition(SEPARATOR)
    return (model, backend) if sep and model and backend else None


def dumps(data: object) -> str:
    """The one JSON layout of golden files: sorted keys, indent 2, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def goldens_to_json(goldens: Sequence[Golden]) -> str:
    """One record as a plain object; several as a set."""
    if len(goldens) == 1:
        return dumps(goldens[0].to_dict())
    ordered = sorted(goldens, key=lambda g: (g.model, g.backend))
    return dumps({"schema": SET_SCHEMA, "schema_version": SCHEMA_VERSION, "goldens": [g.to_dict() for g in ordered]})


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    A reader never sees a half-written golden, and an interrupted write
    leaves the old file in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600; a golden is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _file_mode(path: Path) -> int:
    """The existing file's permissions, or what a plain ``open()`` would give under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_goldens(path: Path, goldens: Sequence[Golden]) -> None:
    """Atomically write one golden file holding ``goldens``."""
    if not goldens:
        raise ValueError("nothing to write")
    write_atomic(path, goldens_to_json(goldens))


@dataclass(frozen=True)
class GoldenFile:
    """The records read from one file."""

    path: Path
    goldens: tuple[Golden, ...]


def read_golden_file(path: Path) -> GoldenFile:
    """Read and validate one golden file; :class:`GoldenError` names the problem (not the path)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldenError("file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldenError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if isinstance(data, dict) and data.get("schema") == SET_SCHEMA:
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise GoldenError(f"unsupported golden-set schema_version {version!r}")
        records = data.get("goldens")
        if not isinstance(records, list) or not records:
            raise GoldenError("golden set has no 'goldens' list")
        goldens = []
        for k, record in enumerate(records):
            try:
                goldens.append(Golden.from_dict(record))
            except GoldenError as exc:
                raise GoldenError(f"record {k}: {exc}") from None
        return GoldenFile(path, tuple(goldens))
    if isinstance(data, dict) and data.get("schema") not in (SCHEMA, SET_SCHEMA):
        raise GoldenError(
            f"not a flopaudit golden (schema is {data.get('schema')!r}, expected {SCHEMA!r} or {SET_SCHEMA!r})"
        )
    return GoldenFile(path, (Golden.from_dict(data),))


def list_golden_paths(directory: Path) -> list[Path]:
    """Every ``*.json`` file directly in ``directory``, sorted by name (hidden temp files skipped)."""
    return sorted(p for p in Path(directory).glob("*.json") if not p.name.startswith(".") and p.is_file())
