"""Reading and writing a run's results (``results.json``, ``results.csv``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from flopaudit.errors import UserError
from flopaudit.records import AuditRun


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``.

    The file gets the permissions any new file gets (``0o666`` less the
    umask), not the ``0o600`` of a temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def results_json(run: AuditRun) -> str:
    return json.dumps(run.to_dict(), indent=2, sort_keys=True) + "\n"


def results_csv(run: AuditRun) -> str:
    """``results.csv``: the rows of :func:`flopaudit.frame.result_rows` (no pandas needed)."""
    import csv
    import io

    from flopaudit.frame import result_columns, result_rows

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=result_columns(run), lineterminator="\n")
    writer.writeheader()
    for row in result_rows(run):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and make sure files can be written there: a user error otherwise."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"cannot write reports to --out {str(out_dir)!r}: {reason}") from None


def write_results(run: AuditRun, out_dir: Path) -> list[Path]:
    """Write ``results.json`` and ``results.csv`` into ``out_dir``."""
    json_path, csv_path = out_dir / "results.json", out_dir / "results.csv"
    write_atomic(json_path, results_json(run))
    write_atomic(csv_path, results_csv(run))
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
