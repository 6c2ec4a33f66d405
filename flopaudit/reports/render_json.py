"""JSON report with a documented, versioned schema (``flopaudit.report`` v2).

Top-level keys:

* ``schema`` = ``"flopaudit.report"``, ``schema_version`` = 2;
* ``environment``: versions and creation time of the run;
* ``tolerance``: relative tolerance used to classify cells;
* ``verdict_tolerance``: relative distance from the canonical count a counter
  may be and still be recommended;
* ``verdicts``: one object per model (see
  :class:`~flopaudit.reports.model.ModelVerdict`): ``family``,
  ``reference_macs``, ``use`` (counters to use, exact ones first), ``exact``,
  ``close`` (``backend``, ``ratio``), ``findings`` (``backends``, ``kind``,
  ``text``, signed ``share`` of the canonical count), ``conversions``,
  ``error``, ``headline`` and the whole ``text``;
* ``families``: per model family, ``models``, ``best`` and the ``ranking``
  of every counter with its evidence (``exact``, ``close``, ``usable``,
  ``failed``, ``unexplained``, ``median_abs_deviation``, ``worst``);
* ``cells``: one object per (model, backend) with ``classification`` (one of
  :data:`flopaudit.reports.model.CLASSIFICATIONS`), integer ``backend_macs``,
  ``reference_macs``, ``predicted_macs``, ``difference``, ``ratio``,
  ``causes`` (``kind``, ``rule``, signed integer ``macs``, ``layers`` as
  ``[path, macs]`` pairs), ``residual`` and ``notes``; for every cell
  ``difference == sum(causes.macs) + residual`` when ``predicted_macs`` is set;
* ``scores``: one object per backend (see :class:`~flopaudit.reports.model.BackendScore`);
* ``results``: the run's raw results, as in ``results.json``;
* ``costs`` (when the run measured them): one object per model as in
  ``results.json`` (:class:`~flopaudit.measure.records.ModelCost`: integer
  ``samples_ns``, ``flops``, ``bytes_read``... and its ``layers`` and
  ``ceilings``) plus its derived ``latency_ns``, ``spread``, ``intensity``,
  ``achieved_flops``, ``peak_fraction``, ``overhead_ns``, ``score`` and
  ``rank`` in the decision matrix (weighted by ``cost_weights``).

v2 added ``verdict_tolerance``, ``verdicts``, ``families``, each cause's
``more_layers`` and removed the scores' ``median_seconds`` and
``median_forward_ratio`` (a count's time against a forward pass timed in
another process; ``benchmarks/bench_audit.py`` measures both in one).
"""

from __future__ import annotations

import json

from flopaudit.reports.model import Report

REPORT_SCHEMA = "flopaudit.report"
REPORT_SCHEMA_VERSION = 2


def _costs(report: Report) -> tuple[list[dict[str, object]], dict[str, float]]:
    from flopaudit.measure.matrix import decision_matrix
    from flopaudit.reports.cost import weights_of

    weights = weights_of(report.run.cost_weights)
    out = []
    for row in decision_matrix(report.run.costs, weights):
        c = row.cost
        derived = {"latency_ns": c.latency_ns, "spread": c.spread, "intensity": c.intensity,
                   "achieved_flops": c.achieved_flops, "peak_fraction": c.peak_fraction, "overhead_ns": c.overhead_ns,
                   "score": row.score, "rank": row.rank}
        out.append({**c.to_dict(), **derived})
    return out, dict(weights)


def render_json(report: Report) -> str:
    data = {
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "environment": dict(report.run.environment),
        "tolerance": report.tolerance,
        "verdict_tolerance": report.verdict_tolerance,
        "verdicts": [v.to_dict() for v in report.verdicts],
        "families": [f.to_dict() for f in report.families],
        "cells": [c.to_dict() for c in report.cells],
        "scores": [s.to_dict() for s in report.scores],
        "results": [r.to_dict() for r in report.run.results],
    }
    if report.run.costs:
        data["costs"], data["cost_weights"] = _costs(report)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
