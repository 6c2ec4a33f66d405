"""Row views of an :class:`~flopaudit.records.AuditRun`: plain dicts, and pandas frames of them.

:func:`result_rows` / :func:`results_frame` have one row per (model,
backend) with the counts, the cell's classification, its causes and its
verdict; :func:`layers_frame` one row per (model, backend, layer). pandas
is imported only to build a frame (``results.csv`` is written from the rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from flopaudit.records import AuditRun
    from flopaudit.reports.model import Report

RESULT_COLUMNS = [
    "model", "backend", "status", "macs", "ratio_to_reference", "classification", "causes", "verdict",
    "params", "raw_total", "unit", "batch_size", "backend_version", "torch_version", "elapsed_s",
    "n_unsupported", "error",
]

def result_columns(run: AuditRun) -> list[str]:
    """:data:`RESULT_COLUMNS`, and for a training step one ``<phase>_macs`` column per phase
    any result split its count into (``forward_macs``, ``backward_macs``...), in phase order."""
    from flopaudit.passes import PHASES

    present = {p.phase for r in run.results for p in r.phases}
    return RESULT_COLUMNS + [f"{phase}_macs" for phase in PHASES if phase in present]


LAYER_COLUMNS = [
    "model", "backend", "layer", "leaf", "reference_macs", "macs", "predicted_macs", "difference", "cause",
    "cause_macs",
]


COST_COLUMNS = [
    "model", "scope", "layer", "module_type", "kind", "calls", "time_s", "time_share", "flops", "macs",
    "bytes_read", "bytes_written", "bytes", "intensity", "achieved_flops", "bound", "params", "peak_memory",
    "latency_p25_s", "latency_p75_s", "samples", "threads", "device", "dtype", "peak_flops", "bandwidth",
    "status", "error",
]


def cost_rows(costs: Any) -> list[dict[str, Any]]:
    """One dict per row of :func:`cost_frame` (see there)."""
    rows = []
    for c in costs:
        ceil = c.ceilings
        model_row = {k: None for k in COST_COLUMNS}
        model_row.update(model=c.model, scope="model", layer="", status=c.status.value, error=c.error)
        if c.ok:
            median = c.latency_ns
            model_row.update(
                time_s=median / 1e9 if median else None, time_share=1.0, flops=c.flops, macs=c.macs,
                bytes_read=c.bytes_read, bytes_written=c.bytes_written, bytes=c.bytes, intensity=c.intensity,
                achieved_flops=c.achieved_flops, params=c.params, peak_memory=c.peak_memory,
                latency_p25_s=(c.quantile_ns(0.25) or 0) / 1e9, latency_p75_s=(c.quantile_ns(0.75) or 0) / 1e9,
                samples=len(c.samples_ns), threads=c.threads, device=c.device, dtype=c.dtype,
                peak_flops=ceil.peak_flops if ceil else None, bandwidth=ceil.bandwidth if ceil else None,
                bound=c.bound(ceil),
            )
        rows.append(model_row)
        if not c.ok:
            continue
        latency = c.latency_ns or 0
        for lc in sorted(c.layers, key=lambda lc: -lc.time_ns):
            rows.append({**{k: None for k in COST_COLUMNS},
                         "model": c.model, "scope": "layer", "layer": lc.path, "module_type": lc.module_type,
                         "kind": lc.kind, "calls": lc.calls, "time_s": lc.time_ns / 1e9,
                         "time_share": lc.time_ns / latency if latency else None, "flops": lc.flops, "macs": lc.macs,
                         "bytes_read": lc.bytes_read, "bytes_written": lc.bytes_written, "bytes": lc.bytes,
                         "intensity": lc.intensity, "achieved_flops": lc.achieved_flops, "bound": lc.bound(ceil),
                         "device": c.device, "dtype": c.dtype, "threads": c.threads, "status": c.status.value})
        if c.overhead_ns is not None:
            rows.append({**{k: None for k in COST_COLUMNS},
                         "model": c.model, "scope": "overhead", "layer": "", "time_s": c.overhead_ns / 1e9,
                         "time_share": c.overhead_ns / latency if latency else None, "device": c.device,
                         "dtype": c.dtype, "threads": c.threads, "status": c.status.value})
    return rows


def cost_frame(costs: Any) -> pd.DataFrame:
    """Measured costs as a DataFrame (``costs``: :class:`~flopaudit.measure.records.ModelCost` records,
    or an :class:`~flopaudit.records.AuditRun` that measured them).

    Per model, in this order: a row with ``scope == "model"`` (``layer ""``): the median latency as
    ``time_s`` with its quartiles, canonical ``flops`` and ``macs``, ``params``, ``bytes`` read and
    written, ``intensity`` (FLOPs per byte), ``achieved_flops`` (FLOP/s), ``peak_memory``, the torch
    ``threads``, ``device`` and ``dtype``, and the ceilings measured there (``peak_flops`` from a matmul,
    ``bandwidth`` in bytes/s from a copy); then one ``scope == "layer"`` row per module path with
    operators of its own (``layer`` as the reference counter names it, ``""`` being the model's own
    ``forward``), most time first: its own ``time_s``, ``time_share`` of the latency, work and traffic,
    and ``bound`` (``memory`` below the ridge point); last a ``scope == "overhead"`` row: the latency
    less the layers' times. Integer columns are ``Int64``.
    """
    import pandas as pd

    costs = getattr(costs, "costs", costs)
    frame = pd.DataFrame(cost_rows(costs), columns=COST_COLUMNS)
    for col in ("calls", "flops", "macs", "bytes_read", "bytes_written", "bytes", "params", "peak_memory", "samples",
                "threads", "peak_flops", "bandwidth"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _report(run: AuditRun) -> Report:
    from flopaudit.reports import build_report

    return build_report(run)


def result_rows(run: AuditRun, reference: str = "reference") -> list[dict[str, Any]]:
    """One dict per (model, backend) with the :data:`RESULT_COLUMNS`: integer MACs, ratio to the
    reference backend, and the report's judgement of the cell.

    ``classification`` is the cell's class (``agrees``, ``unit``, ``rule``,
    ``unsupported``, ..., see :data:`flopaudit.reports.CLASSIFICATIONS`;
    ``reference`` on the reference's own row); ``causes`` lists every cause
    with its signed share of the canonical count; ``verdict`` says in a few
    words whether the counter gives the canonical count (exactly or within
    1%) or what it misses or adds. On the reference's row ``verdict`` is the
    model's verdict: which counters to use.
    """
    from flopaudit.reports.verdict import causes_text, cell_verdict

    report = _report(run)
    ref = {r.model: r.macs for r in run.results if r.backend == reference and r.ok}
    rows = []
    for r in run.results:
        base = ref.get(r.model)
        ratio = (r.macs / base) if (r.ok and r.macs is not None and base) else None
        cell = report.cell(r.model, r.backend)
        if r.backend == reference:
            verdict = report.verdict(r.model)
            judged = ("reference", "", verdict.headline if verdict else "")
        elif cell is not None:
            judged = (cell.classification, causes_text(cell), cell_verdict(cell, report.verdict_tolerance, r))
        else:
            judged = (r.status.value, "", "")
        rows.append(
            {
                "model": r.model,
                "backend": r.backend,
                "status": r.status.value,
                "macs": r.macs,
                "ratio_to_reference": ratio,
                "classification": judged[0],
                "causes": judged[1],
                "verdict": judged[2],
                "params": r.params,
                "raw_total": r.raw_total,
                "unit": r.unit.value,
                "batch_size": r.batch_size,
                "backend_version": r.backend_version,
                "torch_version": r.torch_version,
                "elapsed_s": r.elapsed_s,
                "n_unsupported": sum(n for _, n in r.unsupported),
                "error": r.error,
                **{f"{p.phase}_macs": p.macs for p in r.phases},
            }
        )
    return rows


def results_frame(run: AuditRun, reference: str = "reference") -> pd.DataFrame:
    """:func:`result_rows` as a DataFrame (integer columns as ``Int64``)."""
    import pandas as pd

    columns = result_columns(run)
    frame = pd.DataFrame(result_rows(run, reference), columns=columns)
    for col in ("macs", "params", "batch_size", *columns[len(RESULT_COLUMNS):]):
        frame[col] = frame[col].astype("Int64")
    return frame


def layers_frame(run: AuditRun, reference: str = "reference") -> pd.DataFrame:
    """One row per (model, backend, layer): how each counter counts each module.

    ``layer`` is the dotted module path (``""`` = the whole model); ``leaf``
    says no other layer of the model lies under it; ``reference_macs`` is the
    canonical count of the layer and everything under it; ``macs`` is the
    backend's own count of that layer as it reports it (``<NA>`` where it
    reports none: ptflops-aten names only the top-level children, a failed
    count nothing); ``predicted_macs`` is what the backend's ruleset
    predicts for the layer; ``difference`` is ``macs - reference_macs``
    (else ``predicted_macs - reference_macs``). ``cause`` is the largest
    cause booked to this layer, ``"kind: rule"``, with ``cause_macs``; a
    cause names at most its 8 largest layers, so smaller layers of a cause
    spread over many are left blank. Layers are those of the reference and
    the backend; the reference's own rows carry its counts.
    """
    import pandas as pd

    from flopaudit.module_paths import leaf_paths

    report = _report(run)
    rows = []
    for model in report.models:
        ref = run.result(model, reference)
        ref_layers = ref.module_macs() if ref is not None and ref.ok else {}
        for backend in report.backends:
            result = run.result(model, backend)
            if result is None:
                continue
            mine = result.module_macs() if result.ok else {}
            prediction = ref.prediction(backend) if ref is not None and ref.ok else None
            predicted = dict(prediction.per_module) if prediction is not None else {}
            cell = report.cell(model, backend)
            causes: dict[str, tuple[str, int]] = {}
            for cause in cell.causes if cell is not None else ():
                for path, macs in cause.layers:
                    if path not in causes or abs(macs) > abs(causes[path][1]):
                        causes[path] = (f"{cause.kind}: {cause.rule}", macs)
            paths = set(ref_layers) | set(mine)
            leaves = set(leaf_paths(p for p in paths if p)) or {""}  # the root is a leaf only when alone
            for path in sorted(paths):
                have = mine.get(path) if result.ok else None
                pred = predicted.get(path) if backend != reference else ref_layers.get(path)
                base = ref_layers.get(path)
                known = have if have is not None else pred
                cause = causes.get(path)
                rows.append({
                    "model": model, "backend": backend, "layer": path, "leaf": path in leaves,
                    "reference_macs": base, "macs": have, "predicted_macs": pred,
                    "difference": None if known is None or base is None else known - base,
                    "cause": cause[0] if cause else "", "cause_macs": cause[1] if cause else None,
                })
    frame = pd.DataFrame(rows, columns=LAYER_COLUMNS)
    for col in ("reference_macs", "macs", "predicted_macs", "difference", "cause_macs"):
        frame[col] = frame[col].astype("Int64")
    return frame
