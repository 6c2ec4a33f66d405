"""Counting for goldens: snapshot a selection, re-count what a golden holds."""

from __future__ import annotations

import fnmatch
import shlex
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flopaudit.errors import UserError
from flopaudit.execution.refs import CaseRef
from flopaudit.goldens.record import Golden, first_line
from flopaudit.passes import Pass
from flopaudit.records import AuditRun, Status, installed_version
from flopaudit.run import run_audit


def snapshot_command(
    model: str,
    backend: str | None,
    out_dir: str,
    *,
    input_shape: Sequence[int] | None = None,
    inputs_factory: str | None = None,
    pass_: Pass | None = None,
) -> str:
    """The exact ``flopaudit snapshot`` command line that (re)writes this golden."""
    argv = ["flopaudit", "snapshot", "--models", model]
    if backend:
        argv += ["--backends", backend]
    if input_shape:
        argv += ["--input-shape", ",".join(str(s) for s in input_shape)]
    if inputs_factory:
        argv += ["--inputs", inputs_factory]
    if pass_ is not None and pass_.train:
        argv += ["--pass", "train"]
        argv += ["--loss", pass_.loss] if pass_.loss else []
        argv += ["--optimizer", pass_.optimizer] if pass_.optimizer else []
    argv += ["--out", out_dir]
    return shlex.join(argv)


def golden_snapshot_command(golden: Golden, out_dir: str) -> str:
    return snapshot_command(
        golden.model, golden.backend, out_dir, input_shape=golden.input_shape, inputs_factory=golden.inputs_factory,
        pass_=golden.pass_,
    )


def case_for(model: str, input_shape: Sequence[int] | None = None, inputs_factory: str | None = None) -> CaseRef:
    """The zoo case (or ``module:function`` case) a golden was taken from; :class:`UserError` if unknown.

    Checked against the zoo's catalog: nothing is imported or built here.
    """
    from flopaudit.zoo.catalog import get_entry

    if ":" not in model:
        get_entry(model)
    return CaseRef(model, tuple(input_shape) if input_shape else None, inputs_factory)


def goldens_from_run(
    run: AuditRun, *, input_shape: Sequence[int] | None = None, inputs_factory: str | None = None
) -> list[Golden]:
    """One golden per result of ``run``, in the run's order."""
    out = []
    for result in run.results:
        info = run.case(result.model)
        out.append(
            Golden.from_result(
                result,
                inputs=info.inputs if info else "",
                input_shape=tuple(input_shape) if input_shape else None,
                inputs_factory=inputs_factory,
            )
        )
    return out


def loadable(backend: str) -> str | None:
    """None if the adapter imports; otherwise why not, in one line."""
    from flopaudit.adapters import get_adapter

    try:
        get_adapter(backend)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken adapter is reported, not raised
        return f"adapter cannot be loaded: {type(exc).__name__}: {first_line(str(exc)) or ''}".rstrip(": ")
    return None


def recount(
    goldens: Sequence[Golden],
    *,
    also: Sequence[str] = (),
    runs: list[AuditRun] | None = None,
    **options: Any,
) -> list[Golden]:
    """Count again what each golden holds (same model, inputs and backend), in the same order.

    Goldens of one model share one model build. A backend whose adapter no
    longer loads gives a golden with status ``error`` saying so. Backends in
    ``also`` are counted alongside (no golden is made of them: the reference,
    to classify cells); each model's :class:`AuditRun` is appended to ``runs``.
    ``options`` go to :func:`~flopaudit.run.run_audit` (timeout, isolate, jobs...).
    """
    groups: dict[tuple[str, tuple[int, ...] | None, str | None, Pass], list[int]] = {}
    for k, g in enumerate(goldens):
        groups.setdefault((g.model, g.input_shape, g.inputs_factory, g.pass_), []).append(k)
    out: list[Golden | None] = [None] * len(goldens)
    for (model, shape, factory, step), indices in groups.items():
        case = case_for(model, shape, factory)
        backends = list(dict.fromkeys(goldens[k].backend for k in indices))
        broken = {b: why for b in backends if (why := loadable(b))}
        working = [b for b in backends if b not in broken]
        fresh: dict[str, Golden] = {}
        if working:
            extra = [b for b in also if b not in working and not loadable(b)]
            run = run_audit([case], [*extra, *working], pass_=step, **options)
            if runs is not None:
                runs.append(run)
            for g in goldens_from_run(run, input_shape=shape, inputs_factory=factory):
                fresh[g.backend] = g
        for k in indices:
            g = goldens[k]
            if g.backend in broken:
                out[k] = replace(
                    g, status=Status.ERROR.value, error=broken[g.backend], backend_version="",
                    torch_version=installed_version("torch"), macs=None, raw_total=None, params=None,
                    per_op=(), per_module=(), unsupported=(), extra=(), phases=(),
                )
            else:
                out[k] = fresh[g.backend]
    return [g for g in out if g is not None]


def snapshot(
    cases: Sequence[Any],
    backends: Sequence[str],
    *,
    input_shape: Sequence[int] | None = None,
    inputs_factory: str | None = None,
    **options: Any,
) -> list[Golden]:
    """Count ``cases`` x ``backends`` and freeze each result as a golden (``options`` go to ``run_audit``)."""
    run = run_audit(cases, list(backends), **options)
    return goldens_from_run(run, input_shape=input_shape, inputs_factory=inputs_factory)


def matches(model: str, patterns: Sequence[str]) -> bool:
    """True if ``model`` matches any id or glob in ``patterns`` (or there are none)."""
    return not patterns or any(fnmatch.fnmatchcase(model, p) or model == p for p in patterns)


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")
