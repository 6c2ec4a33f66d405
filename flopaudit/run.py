"""Run orchestration: (model case x backend) counts into one :class:`AuditRun`."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from flopaudit.adapters import BACKEND_NAMES, get_adapter
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import run_isolated
from flopaudit.records import CountResult, Status, Unit
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.select import check_runs

DEFAULT_TIMEOUT_S = 120.0
SCHEMA_VERSION = 1

ProgressFn = Callable[[str, str, CountResult | None], None]


@dataclass(frozen=True)
class CaseInfo:
    """What the report needs to know about a model case that was run."""

    id: str
    tags: tuple[str, ...] = ()
    inputs: str = ""
    batch_size: int | None = None
    expected_macs: int | None = None
    expected_params: int | None = None
    forward_s: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseInfo:
        d = dict(data)
        d["tags"] = tuple(d.get("tags", ()))
        return cls(**d)


@dataclass(frozen=True)
class AuditRun:
    """All results of one audit plus the environment they came from."""

    results: tuple[CountResult, ...]
    cases: tuple[CaseInfo, ...] = ()
    environment: tuple[tuple[str, str], ...] = field(default_factory=lambda: tuple(environment().items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "flopaudit.results",
            "schema_version": SCHEMA_VERSION,
            "environment": dict(self.environment),
            "cases": [c.to_dict() for c in self.cases],
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRun:
        if data.get("schema") != "flopaudit.results":
            raise ValueError("not a flopaudit results file (missing schema 'flopaudit.results')")
        if int(data.get("schema_version", -1)) > SCHEMA_VERSION:
            raise ValueError(f"results schema {data.get('schema_version')} is newer than this flopaudit supports")
        return cls(
            results=tuple(CountResult.from_dict(r) for r in data["results"]),
            cases=tuple(CaseInfo.from_dict(c) for c in data.get("cases", ())),
            environment=tuple(sorted(dict(data.get("environment", {})).items())),
        )

    def result(self, model: str, backend: str) -> CountResult | None:
        for r in self.results:
            if r.model == model and r.backend == backend:
                return r
        return None

    def case(self, model: str) -> CaseInfo | None:
        return next((c for c in self.cases if c.id == model), None)

    def to_frame(self) -> Any:
        from flopaudit.frame import results_frame

        return results_frame(self)


def environment() -> dict[str, str]:
    from flopaudit import __version__

    return {
        "flopaudit": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def failed_result(model: str, backend: str, status: Status, message: str, batch_size: int | None = None) -> CountResult:
    """A result for a count that produced nothing (crash, timeout, model failure)."""
    try:
        adapter = get_adapter(backend)
        version, unit = adapter.version(), adapter.unit
    except Exception:  # noqa: BLE001
        version, unit = "", Unit.MAC
    return CountResult(
        model=model,
        backend=backend,
        backend_version=version,
        torch_version=torch.__version__,
        unit=unit,
        status=status,
        batch_size=batch_size,
        error=message,
    )


def count_one(
    backend: str,
    model: nn.Module,
    inputs: Any,
    *,
    model_name: str = "",
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
) -> CountResult:
    """Count ``model`` with one backend; crashes and hangs become statuses.

    With ``isolate`` the count runs in a forked child process bounded by
    ``timeout`` seconds; without it, it runs in this process (no timeout).
    """
    adapter = get_adapter(backend)
    inputs = ModelInputs.coerce(inputs)
    if not isolate:
        return adapter.count(model, inputs, model_name=model_name)
    outcome = run_isolated(lambda: adapter.count(model, inputs, model_name=model_name), timeout)
    if outcome.status == "ok":
        return outcome.value
    status = Status.TIMEOUT if outcome.status == "timeout" else Status.ERROR
    return failed_result(model_name, backend, status, outcome.message, inputs.batch_size)


def _time_forward(model: nn.Module, inputs: ModelInputs) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(*inputs.args, **inputs.kwargs)
    return time.perf_counter() - start


def run_audit(
    cases: Sequence[ModelCase],
    backends: Sequence[str] | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
    strict_inputs: bool = False,
    progress: ProgressFn | None = None,
) -> AuditRun:
    """Count every case with every backend.

    A model that fails to build or run, and a backend that raises, hangs or
    crashes, become results with a status and message; the run goes on.
    With ``strict_inputs`` a model that rejects its inputs raises
    :class:`~flopaudit.errors.UserError` instead (used when the user chose
    the input shape).
    """
    names = list(backends or BACKEND_NAMES)
    for name in names:
        get_adapter(name)  # validate names before any work
    results: list[CountResult] = []
    infos: list[CaseInfo] = []
    for case in cases:
        try:
            model, inputs = case.instantiate()
            if strict_inputs:
                check_runs(case, model, inputs)
            forward_s = _time_forward(model, inputs)
        except Exception as exc:  # noqa: BLE001
            from flopaudit.errors import UserError

            if isinstance(exc, UserError):
                raise
            message = f"model failed to build or run: {type(exc).__name__}: {exc}"
            infos.append(CaseInfo(case.id, tuple(sorted(case.tags)), error=message))
            for name in names:
                r = failed_result(case.id, name, Status.ERROR, message)
                results.append(r)
                if progress:
                    progress(case.id, name, r)
            continue
        infos.append(
            CaseInfo(
                case.id,
                tuple(sorted(case.tags)),
                inputs.describe(),
                inputs.batch_size,
                case.expected_macs,
                case.expected_params,
                forward_s,
            )
        )
        for name in names:
            if progress:
                progress(case.id, name, None)
            r = count_one(name, model, inputs, model_name=case.id, timeout=timeout, isolate=isolate)
            results.append(r)
            if progress:
                progress(case.id, name, r)
    return AuditRun(tuple(results), tuple(infos))


def audit_model(
    model: nn.Module,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    backends: Iterable[str] | None = None,
    name: str = "model",
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
) -> AuditRun:
    """Count one in-memory model with several backends."""
    model_inputs = ModelInputs.coerce(inputs, kwargs)
    names = list(backends or BACKEND_NAMES)
    results = tuple(
        count_one(b, model, model_inputs, model_name=name, timeout=timeout, isolate=isolate) for b in names
    )
    info = CaseInfo(name, (), model_inputs.describe(), model_inputs.batch_size)
    return AuditRun(results, (info,))
