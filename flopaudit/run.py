"""Run orchestration: (model case x backend) counts into one :class:`AuditRun`."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from flopaudit.adapters import backend_names, get_adapter, get_backend
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import run_isolated
from flopaudit.records import CountResult, Status, Unit
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.select import check_runs

if TYPE_CHECKING:
    from flopaudit.cache import ResultCache
    from flopaudit.execution.refs import CaseRef

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
    max_memory_gb: float | None = None,
) -> CountResult:
    """Count ``model`` with one backend; crashes and hangs become statuses.

    With ``isolate`` the count runs in a forked child process bounded by
    ``timeout`` seconds; without it, it runs in this process (no timeout).
    ``max_memory_gb`` (isolated counts only) caps what the child may map on
    top of what it inherits (:func:`~flopaudit.execution.memory.limit_memory`);
    a count that hits the cap becomes status ``error`` saying so.
    """
    adapter = get_adapter(backend)
    inputs = ModelInputs.coerce(inputs)
    if not isolate:
        return adapter.count(model, inputs, model_name=model_name)
    adapter.preload()  # imported here once, not in every forked child

    def work() -> CountResult:
        if max_memory_gb:
            from flopaudit.execution.memory import limit_memory

            limit_memory(max_memory_gb)
        return adapter.count(model, inputs, model_name=model_name)

    outcome = run_isolated(work, timeout)
    if outcome.status == "ok":
        result: CountResult = outcome.value
        return _name_memory_error(result, max_memory_gb)
    status = Status.TIMEOUT if outcome.status == "timeout" else Status.ERROR
    message = outcome.message
    if max_memory_gb and outcome.status == "crash":
        message += f" (a count over the --max-memory limit of {max_memory_gb:g} GiB can end this way)"
    return _name_memory_error(failed_result(model_name, backend, status, message, inputs.batch_size), max_memory_gb)


def _name_memory_error(result: CountResult, max_memory_gb: float | None) -> CountResult:
    from flopaudit.execution.memory import looks_out_of_memory, memory_message

    if max_memory_gb and result.status is Status.ERROR and looks_out_of_memory(result.error):
        return dataclasses.replace(result, error=memory_message(max_memory_gb, result.error or ""))
    return result


def _time_forward(model: nn.Module, inputs: ModelInputs) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(*inputs.args, **inputs.kwargs)
    return time.perf_counter() - start


@dataclass
class PreparedCase:
    """A built case ready to count: the model, its inputs and what the report records.

    ``model`` is ``None`` when building or running it failed (``info.error``
    says why). ``meta`` cases live on the meta device; ``notes`` are added to
    each of their results' warnings.
    """

    case_id: str
    info: CaseInfo
    model: nn.Module | None = None
    inputs: ModelInputs | None = None
    meta: bool = False
    notes: tuple[str, ...] = ()


def prepare_case(case: ModelCase, *, strict_inputs: bool = False, meta: bool = False) -> PreparedCase:
    """Build ``case`` (seeded), check it runs and time one forward pass.

    A model that fails to build or run gives a :class:`PreparedCase` without
    a model; with ``strict_inputs`` a model that rejects its inputs raises
    :class:`~flopaudit.errors.UserError` instead. With ``meta`` the model and
    inputs are built on the meta device and ``forward_s`` is left empty (a
    forward pass there computes nothing).
    """
    from flopaudit.errors import UserError

    tags = tuple(sorted(case.tags))
    notes: tuple[str, ...] = ()
    try:
        if meta:
            from flopaudit.execution.meta import instantiate_on_meta

            model, inputs, notes = instantiate_on_meta(case)
        else:
            model, inputs = case.instantiate()
        if strict_inputs:
            check_runs(case, model, inputs)
        forward_s = _time_forward(model, inputs)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001
        where = " on the meta device (run it without --meta)" if meta else ""
        message = f"model failed to build or run{where}: {type(exc).__name__}: {exc}"
        return PreparedCase(case.id, CaseInfo(case.id, tags, error=message), meta=meta)
    info = CaseInfo(
        case.id, tags, inputs.describe(), inputs.batch_size, case.expected_macs, case.expected_params,
        None if meta else forward_s,
    )
    return PreparedCase(case.id, info, model, inputs, meta, notes)


def count_prepared(
    prepared: PreparedCase,
    backend: str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
    max_memory_gb: float | None = None,
) -> CountResult:
    """Count a prepared case with one backend (a failed build gives its error).

    On the meta device a backend that cannot count there gets status
    ``not applicable`` with the reason; the others carry a ``device='meta'``
    option and the notes of :mod:`flopaudit.execution.meta`.
    """
    if prepared.model is None or prepared.inputs is None:
        return failed_result(prepared.case_id, backend, Status.ERROR, prepared.info.error or "model not built")
    if not prepared.meta:
        return count_one(backend, prepared.model, prepared.inputs, model_name=prepared.case_id, timeout=timeout,
                         isolate=isolate, max_memory_gb=max_memory_gb)
    from flopaudit.execution.meta import meta_support

    support = meta_support(backend)
    if not support.allowed:
        return failed_result(prepared.case_id, backend, Status.NOT_APPLICABLE,
                             f"cannot count on the meta device: {support.note}", prepared.inputs.batch_size)
    r = count_one(backend, prepared.model, prepared.inputs, model_name=prepared.case_id, timeout=timeout,
                  isolate=isolate, max_memory_gb=max_memory_gb)
    notes = prepared.notes + ((support.note,) if support.note and r.ok else ())
    return dataclasses.replace(
        r, options=tuple(sorted(r.options + (("device", repr("meta")),))), warnings=r.warnings + notes
    )


def run_audit(
    cases: Sequence[ModelCase | CaseRef],
    backends: Sequence[str] | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
    strict_inputs: bool = False,
    progress: ProgressFn | None = None,
    jobs: int = 1,
    executor: concurrent.futures.Executor | None = None,
    cache: ResultCache | None = None,
    max_memory_gb: float | None = None,
    meta: bool = False,
) -> AuditRun:
    """Count every case with every backend.

    A model that fails to build or run, and a backend that raises, hangs or
    crashes, become results with a status and message; the run goes on.
    With ``strict_inputs`` a model that rejects its inputs raises
    :class:`~flopaudit.errors.UserError` instead (used when the user chose
    the input shape).

    ``jobs > 1`` counts in that many worker processes, ``executor`` on any
    ``concurrent.futures`` executor (e.g. a Dask client's); each count still
    runs in its own forked child with ``timeout``. Cases then travel as
    :class:`~flopaudit.execution.refs.CaseRef` (a zoo case as it is
    registered, or a ref): results are the same as a serial run's, in the
    same order. ``cache`` reuses and stores ok / not-applicable results and
    case infos (:mod:`flopaudit.cache`); ``max_memory_gb`` caps each count's
    memory; ``meta`` builds and counts on the meta device.

    NB: worker processes start from a fresh interpreter that imports the
    main module, so a script calling this with ``jobs > 1`` needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    from flopaudit.execution.refs import CaseRef

    names = list(backends or backend_names())
    for name in names:
        get_backend(name)  # validate names before any work
    resolved = [c.resolve() if isinstance(c, CaseRef) else c for c in cases]
    plan = _Plan(list(cases), resolved, names, cache, meta)
    settings = dict(timeout=timeout, isolate=isolate, max_memory_gb=max_memory_gb)
    if executor is None and (jobs <= 1 or plan.n_missing() <= 1):
        _run_serial(plan, strict_inputs, progress, settings)
    else:
        from flopaudit.execution.pool import run_parallel

        run_parallel(plan, strict_inputs=strict_inputs, progress=progress, jobs=jobs, executor=executor, **settings)
    env = environment()
    if meta:
        env["device"] = "meta"
    return AuditRun(plan.ordered_results(), plan.ordered_infos(), tuple(env.items()))


class _Plan:
    """Which (case, backend) results a run still needs, and the ones it has.

    Cached results and infos are filled in at construction; :meth:`add`
    records new ones (and stores them in the cache).
    """

    def __init__(self, cases: list[Any], resolved: list[ModelCase], backends: list[str],
                 cache: ResultCache | None, meta: bool) -> None:
        from flopaudit.execution.refs import ref_for

        self.cases, self.resolved, self.backends, self.cache, self.meta = cases, resolved, backends, cache, meta
        self.refs = [ref_for(c) for c in cases]
        self.results: dict[tuple[int, int], CountResult] = {}
        self.infos: dict[int, CaseInfo] = {}
        self.case_keys: list[Any] = [None] * len(cases)
        if cache is None:
            return
        for i, (case, ref) in enumerate(zip(resolved, self.refs)):
            key = cache.case_key(case, ref, meta=meta)
            self.case_keys[i] = key
            if key is None:
                continue
            info = cache.get_info(key)
            if info is not None:
                self.infos[i] = info
            for j, name in enumerate(backends):
                r = cache.get_result(key, name)
                if r is not None:
                    self.results[(i, j)] = r

    def missing(self, i: int) -> list[int]:
        return [j for j in range(len(self.backends)) if (i, j) not in self.results]

    def n_missing(self) -> int:
        return sum(len(self.missing(i)) or int(i not in self.infos) for i in range(len(self.cases)))

    def add_info(self, i: int, info: CaseInfo) -> None:
        if i in self.infos:
            return  # a cached info stays: the run reports what the cache holds
        self.infos[i] = info
        key = self.case_keys[i]
        if self.cache is not None and key is not None and info.error is None:
            self.cache.put_info(key, info)

    def add(self, i: int, j: int, result: CountResult) -> None:
        self.results[(i, j)] = result
        key = self.case_keys[i]
        if self.cache is not None and key is not None:
            self.cache.put_result(key, self.backends[j], result)

    def ordered_results(self) -> tuple[CountResult, ...]:
        return tuple(self.results[k] for k in sorted(self.results))

    def ordered_infos(self) -> tuple[CaseInfo, ...]:
        return tuple(self.infos[i] for i in sorted(self.infos))


def _run_serial(plan: _Plan, strict_inputs: bool, progress: ProgressFn | None, settings: dict[str, Any]) -> None:
    for i, case in enumerate(plan.resolved):
        missing = plan.missing(i)
        for j in range(len(plan.backends)):
            if j not in missing and progress:
                progress(case.id, plan.backends[j], plan.results[(i, j)])
        if not missing and i in plan.infos:
            continue  # everything cached: the model is not even built
        prepared = prepare_case(case, strict_inputs=strict_inputs, meta=plan.meta)
        plan.add_info(i, prepared.info)
        for j in missing:
            name = plan.backends[j]
            if progress and prepared.model is not None:
                progress(case.id, name, None)
            r = count_prepared(prepared, name, **settings)
            plan.add(i, j, r)
            if progress:
                progress(case.id, name, r)


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
    names = list(backends or backend_names())
    results = tuple(
        count_one(b, model, model_inputs, model_name=name, timeout=timeout, isolate=isolate) for b in names
    )
    info = CaseInfo(name, (), model_inputs.describe(), model_inputs.batch_size)
    return AuditRun(results, (info,))
