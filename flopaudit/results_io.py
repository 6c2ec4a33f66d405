"""Reading and writing a run's results (``results.json``, ``results.csv``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from flopaudit.errors import UserError
from flopaudit.run import AuditRun


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def results_json(run: AuditRun) -> str:
    return json.dumps(run.to_dict(), indent=2, sort_keys=True) + "\n"


def write_results(run: AuditRun, out_dir: Path) -> list[Path]:
    """Write ``results.json`` and ``results.csv`` into ``out_dir``."""
    json_path, csv_path = out_dir / "results.json", out_dir / "results.csv"
    write_atomic(json_path, results_json(run))
    write_atomic(csv_path, run.to_frame().to_csv(index=False))
    return [json_path, csv_path]


def load_results(path: str | Path) -> AuditRun:
    """Load a ``results.json``; a missing or foreign file is a user error."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"results file {str(p)!r} does not exist; create it with 'flopaudit run --out DIR'") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read results file {str(p)!r}: {exc}") from None
    try:
        return AuditRun.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{str(p)!r} is not a valid flopaudit results file: {exc}") from None
