"""JSON report with a documented, versioned schema (``flopaudit.report`` v1).

Top-level keys:

* ``schema`` = ``"flopaudit.report"``, ``schema_version`` = 1;
* ``environment``: versions and creation time of the run;
* ``tolerance``: relative tolerance used to classify cells;
* ``cells``: one object per (model, backend) with ``classification`` (one of
  :data:`flopaudit.reports.model.CLASSIFICATIONS`), integer ``backend_macs``,
  ``reference_macs``, ``predicted_macs``, ``difference``, ``ratio``,
  ``causes`` (``kind``, ``rule``, signed integer ``macs``, ``layers`` as
  ``[path, macs]`` pairs), ``residual`` and ``notes``; for every cell
  ``difference == sum(causes.macs) + residual`` when ``predicted_macs`` is set;
* ``scores``: one object per backend (see :class:`~flopaudit.reports.model.BackendScore`);
* ``results``: the run's raw results, as in ``results.json``.
"""

from __future__ import annotations

import json

from flopaudit.reports.model import Report

REPORT_SCHEMA = "flopaudit.report"
REPORT_SCHEMA_VERSION = 1


def render_json(report: Report) -> str:
    data = {
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "environment": dict(report.run.environment),
        "tolerance": report.tolerance,
        "cells": [c.to_dict() for c in report.cells],
        "scores": [s.to_dict() for s in report.scores],
        "results": [r.to_dict() for r in report.run.results],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
