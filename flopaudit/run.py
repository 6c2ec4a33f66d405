"""Run orchestration: (model case x backend) counts into one :class:`~flopaudit.records.AuditRun`.

Where the work happens:

* by default in supervised warm workers (:mod:`flopaudit.execution.supervisor`):
  building each model, running it and every count happen there, never in
  this process, serial (``jobs=1``) or parallel; every hang, crash or memory
  overrun becomes a result's status;
* on any ``concurrent.futures`` executor (a Dask client's), each count
  forked from the executor's worker (:mod:`flopaudit.execution.dask`);
* in this process with ``isolate=False`` (debugging: no protection).

This module imports no torch: the command line runs it with
:class:`~flopaudit.execution.refs.CaseRef` names of the cases.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flopaudit.errors import UserError
from flopaudit.execution.failures import failed_result
from flopaudit.execution.protocol import (
    CaseBuilt,
    CaseSettings,
    CostRequest,
    Counted,
    LocalCase,
    Measured,
    Order,
    OrderDone,
    keep_local,
)
from flopaudit.execution.refs import CaseRef
from flopaudit.passes import Pass, pass_of
from flopaudit.records import AuditRun, CaseInfo, CountResult, Status, environment
from flopaudit.run_defaults import DEFAULT_COST_THREADS, DEFAULT_COST_TIMEOUT_S, DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from flopaudit.adapters import Backend
    from flopaudit.cache import Key, ResultCache
    from flopaudit.execution.manifest import Manifest
    from flopaudit.zoo.case import ModelCase

ProgressFn = Callable[[str, str, CountResult | None], None]
CostProgressFn = Callable[[Any], None]
"""Called with each :class:`~flopaudit.measure.records.ModelCost` as it comes in."""


@dataclass(frozen=True)
class PlannedCase:
    """A case as the orchestration sees it: its name, what travels to a worker, its cache identity.

    ``ref`` names the case (a zoo id or ``module:function`` spec with its
    input override); a case without a name travels pickled (``payload``) and
    is never cached.
    """

    id: str
    tags: tuple[str, ...]
    ref: CaseRef | None
    payload: CaseRef | bytes | None
    seed: int = 0
    train: bool = False
    case: Any = None
    """The :class:`~flopaudit.zoo.case.ModelCase` itself when the caller gave one (in-process runs)."""


def plan_case(case: ModelCase | CaseRef) -> PlannedCase:
    """A :class:`PlannedCase` for a zoo case, a ``module:function`` ref or a caller's :class:`ModelCase`."""
    from flopaudit.execution.refs import ref_for

    if isinstance(case, CaseRef):
        seed, train, tags = 0, False, ("user",) if case.is_spec else ()
        if not case.is_spec:
            from flopaudit.zoo.catalog import get_entry

            entry = get_entry(case.id)
            seed, train, tags = entry.seed, entry.train, entry.tags
        return PlannedCase(case.id, tuple(tags), case, case, seed, train)
    ref = ref_for(case)
    return PlannedCase(case.id, tuple(sorted(case.tags)), ref, ref, case.seed, case.train, case)


def _payload(p: PlannedCase, *, may_stay: bool) -> CaseRef | bytes | LocalCase:
    """What travels to a worker: the case's name, the pickled case, or (``may_stay``) a token for a
    case left in this process's memory for workers forked from it."""
    if p.payload is not None:
        return p.payload
    try:
        return pickle.dumps(p.case)
    except Exception as exc:  # noqa: BLE001
        if may_stay:
            return keep_local(p.case)
        raise ValueError(
            f"model case {p.id!r} cannot be sent to a worker process ({type(exc).__name__}: {exc}); "
            "name it with flopaudit.execution.CaseRef, build it from module-level functions, or use isolate=False"
        ) from None


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
    mode: str | None = None,
    threads: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    cost: CostRequest | None = None,
    cost_threads: int | None = None,
    cost_progress: CostProgressFn | None = None,
    pass_: str | Pass = "inference",
    loss: str | None = None,
    optimizer: str | Callable[[Any], Any] | None = None,
) -> AuditRun:
    """Count every case with every backend.

    A model that fails to build or run, and a backend that raises, hangs or
    crashes, become results with a status and message; the run goes on.
    With ``strict_inputs`` (the user chose the model or its inputs) a
    factory that raises or a model that rejects its inputs raises
    :class:`~flopaudit.errors.UserError` before any count starts when it is
    the only model; among several it is that model's error (every cell says
    why) and the others are counted. Among several (supervised), the models
    are built and run before any count starts until one has run (``jobs``
    at a time, in order): a loss that fails there, or a device torch cannot
    use, stops the run before anything is counted; a loss failing on a
    later model's output is that model's error. No model is built twice
    for this.

    ``jobs`` warm worker processes count at once (``timeout`` bounds each
    phase: building and running a model, each count; ``max_memory_gb``
    caps what each phase may map); ``executor`` counts on any
    ``concurrent.futures`` executor instead (e.g. a Dask client's);
    ``isolate=False`` counts in this process. Results are in case x backend
    order whatever the route. ``cache`` reuses and stores ok and
    not-applicable results and case infos (:mod:`flopaudit.cache`);
    ``meta`` builds and counts on the meta device; ``mode`` (``"eval"`` or
    ``"train"``) overrides each case's own mode (the model's ``train()``/``eval()``
    state); ``device`` and ``dtype`` say where each case is put, and in which
    floating dtype, once built. ``pass_="train"`` counts one training step
    instead of a forward pass (``loss``, ``optimizer``: see
    :mod:`flopaudit.passes`; the model in train mode unless ``mode`` says
    otherwise); without ``backends``, the backends that count that pass.

    ``cost`` measures every case's cost after the counts
    (:mod:`flopaudit.measure`): one worker at a time on ``cost_threads``
    torch threads (default :data:`DEFAULT_COST_THREADS`), so that no other
    work of the run shares the machine with a timing; ``cost_progress`` is called with
    each :class:`~flopaudit.measure.records.ModelCost`. ``backends`` may be
    empty then (only the costs). Costs are measured afresh every run (never
    cached); ``isolate=False`` measures in this process.

    NB: worker processes start from a fresh interpreter that imports the
    main module, so a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    step = pass_of(pass_, loss, optimizer)
    if step.in_process:
        raise UserError("zoo cases are counted in worker processes, which cannot be given a function: "
                        "name the loss and the optimizer as 'module:function'")
    if cost is not None and step.train:
        raise UserError("measuring costs times forward passes: it cannot be combined with a training step")
    names = chosen_backends(
        default_backends(step.kind) if backends is None or (not backends and cost is None) else backends)
    planned = [plan_case(c) for c in cases]
    settings = CaseSettings(strict_inputs=strict_inputs, meta=meta, failure_stops=len(cases) <= 1, mode=mode,
                            device=device, dtype=dtype, pass_=step)
    plan = _Plan(planned, names, cache, settings, cost, cost_progress)
    if isolate and executor is None:
        plan.run_supervised(progress, jobs=jobs, timeout=timeout, max_memory_gb=max_memory_gb, threads=threads,
                            cost_threads=cost_threads)
    elif executor is not None:
        if cost is not None:
            raise UserError("measuring costs on a Dask cluster is not supported: run it without --dask-scheduler")
        from flopaudit.execution.dask import run_on_executor

        run_on_executor(plan, executor, progress=progress, timeout=timeout, max_memory_gb=max_memory_gb)
    else:
        plan.run_here(progress)
    env = environment()
    if meta:
        env["device"] = "meta"
    elif (device, dtype) != ("cpu", "float32"):
        env["device"], env["dtype"] = device, dtype
    if step.train:
        env["pass"] = step.describe()
    return AuditRun(plan.ordered_results(), plan.ordered_infos(), tuple(env.items()), plan.ordered_costs())


def default_backends(kind: str = "inference") -> list[str]:
    """Every backend that counts passes of ``kind``, in column order."""
    from flopaudit.adapters import backends

    return [name for name, backend in backends().items() if backend.counts(kind)]


def chosen_backends(names: Iterable[str]) -> list[str]:
    """``names`` checked before any work (an unknown one is a user error listing the valid
    names), each once in the order first named (a backend named twice is one column)."""
    from flopaudit.adapters import get_backend

    chosen = list(dict.fromkeys(names))
    for name in chosen:
        get_backend(name)
    return chosen


class _Plan:
    """Which (case, backend) results a run still needs, the ones it has, and the cache behind them."""

    def __init__(self, cases: list[PlannedCase], backends: list[str], cache: ResultCache | None,
                 settings: CaseSettings, cost: CostRequest | None = None,
                 cost_progress: CostProgressFn | None = None) -> None:
        self.cases, self.backends, self.cache, self.settings = cases, backends, cache, settings
        self.cost, self.cost_progress = cost, cost_progress
        self.costs: dict[int, Any] = {}
        self.results: dict[tuple[int, int], CountResult] = {}
        self.infos: dict[int, CaseInfo] = {}
        self.case_keys: list[Key | None] = [None] * len(cases)
        self._produced: dict[int, list[tuple[int, int, CountResult]]] = {}
        self._built: dict[int, tuple[int, CaseInfo]] = {}
        self._failure_status: dict[int, Status] = {}
        """Case index -> the status of its cells, for a case that could not be built or run."""
        if cache is None:
            return
        for i, case in enumerate(cases):
            if case.ref is None:
                continue
            key = cache.case_key(case.ref.id, input_shape=case.ref.input_shape,
                                 inputs_factory=case.ref.inputs_factory, seed=case.seed, train=case.train,
                                 meta=settings.meta, mode=settings.mode, device=settings.device,
                                 dtype=settings.dtype, pass_=settings.pass_)
            self.case_keys[i] = key
            info = cache.get_info(key)
            if info is not None:
                self.infos[i] = info
            for j, name in enumerate(backends):
                r = cache.get_result(key, name)
                if r is not None:
                    self.results[(i, j)] = r

    def missing(self, i: int) -> list[int]:
        return [j for j in range(len(self.backends)) if (i, j) not in self.results]

    def report_cached(self, progress: ProgressFn | None) -> None:
        if progress:
            for (i, j), r in sorted(self.results.items()):
                progress(self.cases[i].id, self.backends[j], r)

    # -- recording what comes back ------------------------------------------
    def add_info(self, i: int, info: CaseInfo) -> None:
        self.infos.setdefault(i, info)  # a cached info stays: the run reports what the cache holds

    def add(self, i: int, j: int, result: CountResult) -> None:
        self.results[(i, j)] = result

    def handle(self, order: Order, event: Any, progress: ProgressFn | None) -> None:
        """Take one event of a supervised order (see :mod:`flopaudit.execution.protocol`)."""
        i = order.case_index
        if isinstance(event, CaseBuilt):
            if event.info.error is not None:
                self._failure_status[i] = event.status
            first = min((j for j, _ in order.backends), default=-1)
            if i not in self._built or first < self._built[i][0]:
                self._built[i] = (first, event.info)  # the lowest backend's info: the same whatever finishes first
        elif isinstance(event, Counted):
            self.add(i, event.backend_index, event.result)
            self._produced.setdefault(id(order), []).append((i, event.backend_index, event.result))
            if progress:
                progress(self.cases[i].id, self.backends[event.backend_index], event.result)
        elif isinstance(event, Measured):
            self.costs[i] = event.cost
            if self.cost_progress:
                self.cost_progress(event.cost)
        elif isinstance(event, OrderDone):
            produced = self._produced.pop(id(order), [])
            if event.manifest is not None:
                self.store(i, produced, event.manifest)

    def store(self, i: int, produced: list[tuple[int, int, CountResult]], manifest: Manifest) -> None:
        """Put what one worker produced for case ``i`` into the cache, under that worker's manifest."""
        key = self.case_keys[i]
        if self.cache is None or key is None:
            return
        if i in self._built:
            self.cache.put_info(key, self._built[i][1], manifest)
        for _, j, result in produced:
            self.cache.put_result(key, self.backends[j], result, manifest)

    def finish_infos(self) -> None:
        for i, (_, info) in self._built.items():
            self.add_info(i, info)

    def ordered_results(self) -> tuple[CountResult, ...]:
        return tuple(self.results[k] for k in sorted(self.results))

    def ordered_infos(self) -> tuple[CaseInfo, ...]:
        return tuple(self.infos[i] for i in sorted(self.infos))

    def ordered_costs(self) -> tuple[Any, ...]:
        return tuple(self.costs[i] for i in sorted(self.costs))

    # -- routes ---------------------------------------------------------------
    def orders(self, *, may_stay: bool = False) -> list[Order]:
        """One order per case that lacks a result (or its info), with the backends it lacks."""
        adapters = _runtime_adapters(self.backends)
        out = []
        for i, case in enumerate(self.cases):
            missing = self.missing(i)
            if not missing and i in self.infos:
                continue
            out.append(Order(i, case.id, _payload(case, may_stay=may_stay), tuple((j, self.backends[j]) for j in missing),
                             self.settings, adapters))
        return out

    def run_supervised(self, progress: ProgressFn | None, *, jobs: int, timeout: float | None,
                       max_memory_gb: float | None, threads: int | None, cost_threads: int | None = None) -> None:
        from flopaudit.execution.protocol import can_fork
        from flopaudit.execution.supervisor import Supervisor

        self.report_cached(progress)
        orders = self.orders(may_stay=can_fork()) if self.backends else []
        costs = self.cost_orders(may_stay=can_fork())
        preload = preload_modules(self.backends, self.cases, cost=bool(costs))
        if orders:
            jobs = max(1, min(jobs, len(orders) * len(self.backends)))
            fork = any(isinstance(o.case, LocalCase) for o in orders)
            if threads is None or fork:
                threads = 1 if fork else max(1, (os.cpu_count() or 1) // jobs)
            with Supervisor(jobs, timeout=timeout, max_memory_gb=max_memory_gb, threads=threads, fork=fork,
                            preload=preload) as supervisor:
                if (self.settings.strict_inputs or self.settings.pass_.loss is not None) and len(orders) > 1:
                    orders = self.check_first(supervisor, orders, jobs, progress)
                if orders:
                    supervisor.run(split_orders(orders, jobs), lambda o, e: self.handle(o, e, progress))
        if costs:
            # One worker, alone: a timing shares the machine with nothing else of this run. A worker forked
            # from this process runs on one thread (an OpenMP pool does not survive fork).
            fork = any(isinstance(o.case, LocalCase) for o in costs)
            threads = 1 if fork else cost_threads or DEFAULT_COST_THREADS
            with Supervisor(1, timeout=timeout, max_memory_gb=max_memory_gb, threads=threads, fork=fork,
                            preload=preload) as supervisor:
                supervisor.run(costs, lambda o, e: self.handle(o, e, progress))
        self.finish_infos()

    def check_first(self, supervisor: Any, orders: list[Order], jobs: int, progress: ProgressFn | None) -> list[Order]:
        """Before any count starts, build and run the models ``jobs`` at a time, in run order, until one
        of a round has built and run: what every model shares (the loss, the device) is checked on a real
        model first, and a mistake there stops the run before anything is counted. A model that failed
        here is not built again: its cells say why (``timeout`` for one that hung). The orders left to
        count are returned; a model checked here is counted by the worker that built it.
        """
        checked = 0
        while checked < len(orders):
            round_ = orders[checked:checked + jobs]
            checked += len(round_)
            supervisor.run([Order(o.case_index, o.case_id, o.case, (), o.settings, o.adapters) for o in round_],
                           lambda o, e: self.handle(o, e, progress))
            if any(o.case_index in self._built and self._built[o.case_index][1].error is None for o in round_):
                break
        left = []
        for order in orders:
            built = self._built.get(order.case_index)
            if built is None or built[1].error is None:
                left.append(order)
                continue
            status = self._failure_status.get(order.case_index, Status.ERROR)
            for j, backend in order.backends:
                self.handle(order, Counted(j, failed_result(order.case_id, backend, status, built[1].error)), progress)
        return left

    def cost_orders(self, *, may_stay: bool = False) -> list[Order]:
        """One order per case that only builds it and measures its cost (when the run measures costs)."""
        if self.cost is None:
            return []
        adapters = _runtime_adapters(self.backends)
        return [Order(i, case.id, _payload(case, may_stay=may_stay), (), self.settings, adapters, cost=self.cost)
                for i, case in enumerate(self.cases)]

    def run_here(self, progress: ProgressFn | None) -> None:
        """Everything in this process: no timeout, no protection (debugging)."""
        from flopaudit.execution.manifest import reads_watched, take
        from flopaudit.execution.torch_state import settings_now
        from flopaudit.execution.work import count_prepared, measure_prepared, prepare_case
        from flopaudit.execution.worker import resolve_case

        self.report_cached(progress)
        orders = self.orders(may_stay=True) if self.backends else []
        at_start = settings_now()  # put back before each case and at the end (flopaudit.execution.torch_state)
        try:
            for order in self.cost_orders(may_stay=True):
                at_start.restore()
                case = self.cases[order.case_index].case or resolve_case(order.case)
                prepared = prepare_case(case, self.settings)
                self.handle(order, CaseBuilt(prepared.info), progress)
                assert order.cost is not None
                self.handle(order, Measured(measure_prepared(prepared, order.cost)), progress)
            for order in orders:
                at_start.restore()
                with reads_watched():  # (what the cache writes when the order is done is not the model's)
                    case = self.cases[order.case_index].case or resolve_case(order.case)
                    prepared = prepare_case(case, self.settings)
                    self.handle(order, CaseBuilt(prepared.info), progress)
                    for j, name in order.backends:
                        if progress and prepared.model is not None:
                            progress(order.case_id, name, None)
                        self.handle(order, Counted(j, count_prepared(prepared, name)), progress)
                self.handle(order, OrderDone(take()), progress)
        finally:
            at_start.restore()
        self.finish_infos()


def split_orders(orders: list[Order], jobs: int) -> list[Order]:
    """With fewer cases than workers, split each case's backends so every worker has work.

    Each part builds the model again; that pays when counts cost more than a
    build, which is when there are few cases.
    """
    if len(orders) >= jobs:
        return orders
    parts = -(-jobs // len(orders))
    out: list[Order] = []
    for order in orders:
        n = max(1, min(parts, len(order.backends)))
        chunks = [order.backends[k::n] for k in range(n)]
        out += [Order(order.case_index, order.case_id, order.case, chunk, order.settings, order.adapters)
                for chunk in chunks if chunk or not order.backends]
    return out


def _runtime_adapters(backends: Sequence[str]) -> tuple[tuple[Backend, str], ...]:
    """Backends registered at run time (outside flopaudit's adapters), for the workers to register too."""
    from flopaudit.adapters import registration

    return tuple(r for r in (registration(b) for b in backends) if not r[1].startswith("flopaudit.adapters."))


DISPATCH_MODE_IMPORT = "torch._dynamo"
"""NB: torch imports it (seconds) on the first call under a ``TorchDispatchMode``; the fork server does it once."""


def preload_modules(backends: Sequence[str], cases: Sequence[PlannedCase], *, cost: bool = False) -> list[str]:
    """What the fork server imports once for every worker: torch, the counting code, each backend's adapter,
    package and ruleset (the reference adapter prices every ruleset), torchvision when a case needs it, and
    with ``cost`` the measuring code (the reference counter among it)."""
    from flopaudit.adapters import backends as described
    from flopaudit.adapters import registration
    from flopaudit.records import Granularity

    modules = ["torch", "flopaudit.execution.work"]
    for name in backends:
        backend, module = registration(name)
        modules += [module, backend.module]
        if backend.granularity is Granularity.ATEN_OPS:
            modules.append(DISPATCH_MODE_IMPORT)
    modules += [b.ruleset for b in described().values() if b.ruleset]
    if cost:
        modules += ["flopaudit.measure.cost", "flopaudit.measure.ceilings", "flopaudit.measure.memory",
                    "flopaudit.reference", DISPATCH_MODE_IMPORT]
    if any("torchvision" in c.tags for c in cases):
        modules.append("torchvision")
    return list(dict.fromkeys(modules))


def audit_model(
    model: Any,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    backends: Iterable[str] | None = None,
    name: str = "model",
    timeout: float | None = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
    pass_: str | Pass = "inference",
    loss: str | Callable[[Any], Any] | None = None,
    optimizer: str | Callable[[Any], Any] | None = None,
) -> AuditRun:
    """Count one in-memory model with several backends (each count forked from this
    process), in the mode it is in; ``pass_="train"``: one training step (see :func:`run_audit`)."""
    from flopaudit.execution.work import count_on_meta, count_one
    from flopaudit.inputs import ModelInputs, holds_meta

    step = pass_of(pass_, loss, optimizer)
    model_inputs = ModelInputs.coerce(inputs, kwargs)
    names = chosen_backends(backends or default_backends(step.kind))
    if holds_meta(model, model_inputs):  # a model built on meta: as --meta counts it, its inputs moved there
        model_inputs = model_inputs.to("meta")
        from flopaudit.execution.meta import meta_workarounds

        ways = meta_workarounds(model, model_inputs)
        with ways.applied(model):
            results = tuple(
                count_on_meta(b, model, model_inputs, model_name=name, timeout=timeout, isolate=isolate,
                              pass_=step, notes=ways.notes())
                for b in names
            )
    else:
        results = tuple(
            count_one(b, model, model_inputs, model_name=name, timeout=timeout, isolate=isolate, pass_=step)
            for b in names
        )
    info = CaseInfo(name, (), model_inputs.describe(), model_inputs.batch_size)
    env = environment()
    if step.train:
        env["pass"] = step.describe()
    return AuditRun(results, (info,), tuple(env.items()))


def cost_model(
    model: Any,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    name: str = "model",
    request: CostRequest | None = None,
    timeout: float | None = DEFAULT_COST_TIMEOUT_S,
    isolate: bool = True,
) -> Any:
    """Measure one in-memory model's cost (:func:`flopaudit.measure.cost.measure_cost`) where it is: with
    ``isolate``, in a child forked from this process (on one torch thread), bounded by ``timeout`` seconds,
    a hang or crash becoming the record's status; without, here on this process's torch threads.
    Returns a :class:`~flopaudit.measure.records.ModelCost`."""
    from flopaudit.inputs import ModelInputs
    from flopaudit.isolation import run_isolated
    from flopaudit.measure.cost import measure_cost
    from flopaudit.measure.records import failed_cost
    from flopaudit.records import Status

    model_inputs = ModelInputs.coerce(inputs, kwargs)

    def work() -> Any:
        return measure_cost(model, model_inputs, request, name=name)

    if not isolate:
        return work()
    outcome = run_isolated(work, timeout)
    if outcome.status == "ok":
        return outcome.value
    status = Status.TIMEOUT if outcome.status == "timeout" else Status.ERROR
    message = outcome.message.replace("the count was stopped", "the measurement was stopped")
    return failed_cost(name, status, message)


__all__ = ["AuditRun", "CaseInfo", "DEFAULT_TIMEOUT_S", "audit_model", "cost_model", "default_backends", "run_audit",
           "UserError"]
