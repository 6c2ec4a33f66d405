"""Row views of an :class:`~flopaudit.records.AuditRun`: plain dicts, and pandas frames of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from flopaudit.records import AuditRun

RESULT_COLUMNS = [
    "model", "backend", "status", "macs", "ratio_to_reference", "params", "raw_total", "unit",
    "batch_size", "backend_version", "torch_version", "elapsed_s", "n_unsupported", "error",
]


def result_rows(run: AuditRun, reference: str = "reference") -> list[dict[str, Any]]:
    """One dict per (model, backend) with the :data:`RESULT_COLUMNS`."""
    ref = {r.model: r.macs for r in run.results if r.backend == reference and r.ok}
    rows = []
    for r in run.results:
        base = ref.get(r.model)
        ratio = (r.macs / base) if (r.ok and r.macs is not None and base) else None
        rows.append(
            {
                "model": r.model,
                "backend": r.backend,
                "status": r.status.value,
                "macs": r.macs,
                "ratio_to_reference": ratio,
                "params": r.params,
                "raw_total": r.raw_total,
                "unit": r.unit.value,
                "batch_size": r.batch_size,
                "backend_version": r.backend_version,
                "torch_version": r.torch_version,
                "elapsed_s": r.elapsed_s,
                "n_unsupported": sum(n for _, n in r.unsupported),
                "error": r.error,
            }
        )
    return rows


def results_frame(run: AuditRun, reference: str = "reference") -> pd.DataFrame:
    """One row per (model, backend): integer MACs, ratio to the reference backend."""
    import pandas as pd

    frame = pd.DataFrame(result_rows(run, reference), columns=RESULT_COLUMNS)
    for col in ("macs", "params", "batch_size"):
        frame[col] = frame[col].astype("Int64")
    return frame
