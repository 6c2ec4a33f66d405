"""A training step's counts by phase, as the reports show them.

A run of ``--pass train`` records, for each backend that can tell the phases
apart (the reference, ``torch-flop-counter``), the MACs of each phase of the
step (:data:`flopaudit.passes.PHASES`); backends that count a step as a
whole (``calflops``, the rules of thumb) have its total only. Inference runs
have no phases, and no table.
"""

from __future__ import annotations

from dataclasses import dataclass

from flopaudit.passes import PHASES
from flopaudit.reports.model import Report


@dataclass(frozen=True)
class PhaseTable:
    """One row per (model, backend) whose count is ``ok``: its MACs per phase (None where
    the backend did not split its count) and in all."""

    phases: tuple[str, ...]
    """The phases some row has, in the order a step runs them."""
    rows: tuple[tuple[str, str, tuple[int | None, ...], int], ...]
    """``(model, backend, MACs of each phase, total MACs)``."""


def phase_table(report: Report) -> PhaseTable | None:
    """The report's :class:`PhaseTable`, or None when no count was split by phase."""
    results = [report.run.result(m, b) for m in report.models for b in report.backends]
    counted = [r for r in results if r is not None and r.ok and r.macs is not None]
    seen = {p.phase for r in counted for p in r.phases}
    if not seen:
        return None
    phases = tuple(p for p in PHASES if p in seen) + tuple(sorted(seen - set(PHASES)))
    rows = []
    for r in counted:
        by_phase = {p.phase: p.macs for p in r.phases}
        rows.append((r.model, r.backend, tuple(by_phase.get(p, 0) if r.phases else None for p in phases), r.macs))
    return PhaseTable(phases, tuple(rows))


__all__ = ["PhaseTable", "phase_table"]
