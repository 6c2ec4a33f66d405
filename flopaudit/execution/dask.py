"""Counting on any ``concurrent.futures`` executor, such as a Dask cluster's.

Each (case, backend) count is a picklable :class:`CountTask`; the executor's
worker runs :func:`execute_task`, which rebuilds the case seeded (exactly as
a supervised worker would), keeps the last few built cases for the tasks
that follow, and counts in a forked child with the task's timeout and
memory cap, so a hang or crash costs only its own count. Results are put
back in case x backend order, so the run equals a supervised one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import multiprocessing
import os
import platform
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flopaudit.errors import UserError
from flopaudit.execution.failures import failed_result
from flopaudit.execution.protocol import CaseBuilt, CaseSettings, Counted, Order, OrderDone
from flopaudit.execution.refs import CaseRef
from flopaudit.records import CaseInfo, CountResult, Status

if TYPE_CHECKING:
    from flopaudit.execution.manifest import Manifest
    from flopaudit.run import ProgressFn, _Plan

KEEP_BUILT = 2
"""How many built cases an executor worker keeps for the tasks that follow."""
WORKER_DIED = "the executor's worker failed or was lost while building or counting this model"


@dataclass(frozen=True)
class CountTask:
    """Count case ``case_index`` with backend ``backend_index`` (``backend`` None: only build it)."""

    case_index: int
    backend_index: int
    case_id: str
    case: CaseRef | bytes
    backend: str | None
    settings: CaseSettings
    adapters: tuple[tuple[Any, str], ...] = ()
    timeout: float | None = None
    max_memory_gb: float | None = None
    parent_pid: int = 0


@dataclass(frozen=True)
class TaskOutcome:
    """What an executor's worker sends back: the case info, the count, or a user error to raise."""

    case_index: int
    backend_index: int
    info: CaseInfo | None
    result: CountResult | None
    user_error: str | None = None
    manifest: Manifest | None = None


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (closed afterwards)."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--dask-scheduler needs dask.distributed: pip install 'flopaudit[parallel]'") from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"cannot connect to the Dask scheduler {address!r}: {type(exc).__name__}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


def tasks_of(orders: list[Order], *, timeout: float | None, max_memory_gb: float | None) -> list[CountTask]:
    """One task per (case, backend) of ``orders``; one build-only task for an order without backends."""
    tasks = []
    for o in orders:
        common = dict(case_id=o.case_id, case=o.case, settings=o.settings, adapters=o.adapters, timeout=timeout,
                      max_memory_gb=max_memory_gb, parent_pid=os.getpid())
        if not o.backends:
            tasks.append(CountTask(o.case_index, -1, backend=None, **common))
        tasks += [CountTask(o.case_index, j, backend=b, **common) for j, b in o.backends]
    return tasks


def run_on_executor(plan: _Plan, executor: concurrent.futures.Executor, *, progress: ProgressFn | None,
                    timeout: float | None, max_memory_gb: float | None) -> None:
    """Fill ``plan`` with the missing results, counted on ``executor``."""
    plan.report_cached(progress)
    tasks = tasks_of(plan.orders(), timeout=timeout, max_memory_gb=max_memory_gb)
    futures = {executor.submit(execute_task, t): t for t in tasks}
    try:
        for fut in concurrent.futures.as_completed(futures):
            task = futures[fut]
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - a failed worker is data
                outcome = failed_outcome(task, f"{WORKER_DIED}: {type(exc).__name__}: {exc}")
            if outcome.user_error is not None:
                raise UserError(outcome.user_error)
            order = Order(task.case_index, task.case_id, task.case,
                          ((task.backend_index, task.backend),) if task.backend else (), task.settings)
            if outcome.info is not None:
                plan.handle(order, CaseBuilt(outcome.info), progress)
            if outcome.result is not None:
                plan.handle(order, Counted(task.backend_index, outcome.result), progress)
            plan.handle(order, OrderDone(outcome.manifest), progress)
    finally:
        for fut in futures:
            fut.cancel()
        clear_built()  # an executor in this process (Dask, processes=False) leaves no models behind
    plan.finish_infos()
    for i, case in enumerate(plan.cases):
        if i not in plan.infos:
            plan.add_info(i, CaseInfo(case.id, case.tags, error=WORKER_DIED))


# -- in the executor's worker ------------------------------------------------------

_built: OrderedDict[Any, Any] = OrderedDict()
_lock = threading.Lock()


def _prepared(task: CountTask) -> Any:
    import pickle

    from flopaudit.execution.work import prepare_case

    key = (task.case, task.settings)
    with _lock:
        if key in _built:
            _built.move_to_end(key)
            return _built[key]
        # Before the case's module is imported (its import may set torch's settings for it).
        _settings_at_start().restore()  # (flopaudit.execution.torch_state: no case builds with another's settings)
        try:
            case = task.case.resolve() if isinstance(task.case, CaseRef) else pickle.loads(task.case)
        except UserError as exc:
            raise UserError(f"on worker {platform.node()} (pid {os.getpid()}): {exc}; the model's module must be "
                            "importable on every worker of the cluster, not only here") from None
        prepared = prepare_case(case, task.settings)
        _built[key] = prepared
        while len(_built) > KEEP_BUILT:
            _built.popitem(last=False)
        return prepared


@functools.cache
def _settings_at_start() -> Any:
    """Torch's settings when this process first built a case (:mod:`flopaudit.execution.torch_state`)."""
    from flopaudit.execution.torch_state import settings_now

    return settings_now()


def clear_built() -> None:
    """Forget the built cases of this process."""
    with _lock:
        _built.clear()


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic worker (a Dask worker process) fork the counting child.

    multiprocessing refuses children of a daemonic process so that none is
    orphaned when it exits; :func:`~flopaudit.isolation.run_isolated` kills
    and joins its child before returning, so the rule is lifted for the count.
    """
    config = multiprocessing.current_process()._config  # noqa: SLF001 - see docstring
    daemon = config.get("daemon")
    if daemon:
        config["daemon"] = False
    try:
        yield
    finally:
        if daemon:
            config["daemon"] = daemon


def execute_task(task: CountTask) -> TaskOutcome:
    """Run one task in an executor's worker; never raises for model or backend failures."""
    import torch

    from flopaudit.execution.manifest import reads_watched, take

    if os.getpid() != task.parent_pid:
        torch.set_num_threads(1)  # the workers share the cores
    from flopaudit.execution.worker import register_adapters

    register_adapters(task.adapters)
    with reads_watched():
        outcome = _carry_out(task)
    return outcome if outcome.user_error else dataclasses.replace(outcome, manifest=take())


def _carry_out(task: CountTask) -> TaskOutcome:
    from flopaudit.execution.work import count_prepared

    try:
        prepared = _prepared(task)
    except UserError as exc:
        return TaskOutcome(task.case_index, task.backend_index, None, None, user_error=str(exc))
    if task.backend is None:
        return TaskOutcome(task.case_index, task.backend_index, prepared.info, None)
    with _children_allowed():
        result = count_prepared(prepared, task.backend, timeout=task.timeout, isolate=True,
                                max_memory_gb=task.max_memory_gb)
    return TaskOutcome(task.case_index, task.backend_index, prepared.info, result)


def failed_outcome(task: CountTask, message: str) -> TaskOutcome:
    """The outcome of a task whose worker died or raised before returning."""
    result = None
    if task.backend is not None:
        result = failed_result(task.case_id, task.backend, Status.ERROR, message)
    return TaskOutcome(task.case_index, task.backend_index, None, result)
