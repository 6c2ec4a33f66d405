"""Executors for an audit's counts and the loop that collects their results.

Any ``concurrent.futures.Executor`` runs the tasks of
:mod:`flopaudit.execution.tasks`: by default a ``ProcessPoolExecutor``
whose workers start from a fresh interpreter (``forkserver``, or ``spawn``
where there is none; never ``fork`` from a parent that has run torch ops,
whose OpenMP pool does not survive it), or a Dask cluster's
``Client.get_executor()``. Results are put back in case x backend order,
so a parallel run gives the same :class:`~flopaudit.run.AuditRun` as a
serial one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from flopaudit.errors import UserError
from flopaudit.execution.tasks import CountTask, TaskOutcome, clear_built, execute_task, failed_outcome, init_worker
from flopaudit.run import CaseInfo

if TYPE_CHECKING:
    from flopaudit.run import ProgressFn, _Plan

PRELOAD = ["flopaudit.execution.tasks", "flopaudit.zoo"]
"""Imported once by the forkserver, so each worker starts with torch loaded."""

WORKER_DIED = (
    "the worker process died while building or counting this model "
    "(killed, or out of memory outside the counting child?)"
)
MAX_DEATHS_IN_A_ROW = 3
"""Retrying lost tasks alone stops after this many worker deaths in a row."""


def default_jobs() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def process_executor(jobs: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes started from a fresh interpreter, one torch thread each."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
    else:  # pragma: no cover - Windows, macOS without forkserver
        ctx = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=init_worker)


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


def build_tasks(plan: _Plan, *, strict_inputs: bool, timeout: float | None, isolate: bool,
                max_memory_gb: float | None) -> list[CountTask]:
    """One task per missing (case, backend) result; one info-only task per case that lacks only its info."""
    from flopaudit.adapters import registration

    tasks: list[CountTask] = []
    for i, case in enumerate(plan.resolved):
        missing = plan.missing(i)
        if not missing and i in plan.infos:
            continue
        sendable = plan.refs[i] or _picklable(case)
        common = dict(case=sendable, strict_inputs=strict_inputs, meta=plan.meta, timeout=timeout,
                      isolate=isolate, max_memory_gb=max_memory_gb, parent_pid=os.getpid())
        if not missing:
            tasks.append(CountTask(i, -1, backend=None, **common))
        for j in missing:
            name = plan.backends[j]
            tasks.append(CountTask(i, j, backend=name, registration=registration(name), **common))
    return tasks


def _picklable(case: Any) -> Any:
    try:
        pickle.dumps(case)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(
            f"model case {case.id!r} cannot be sent to a worker process ({type(exc).__name__}: {exc}); "
            "name it with flopaudit.execution.CaseRef, build it from module-level functions, or use jobs=1"
        ) from None
    return case


def run_parallel(
    plan: _Plan,
    *,
    strict_inputs: bool,
    progress: ProgressFn | None,
    jobs: int,
    executor: concurrent.futures.Executor | None,
    timeout: float | None,
    isolate: bool,
    max_memory_gb: float | None,
) -> None:
    """Fill ``plan`` with the missing results, counted on ``executor`` or ``jobs`` worker processes."""
    tasks = build_tasks(plan, strict_inputs=strict_inputs, timeout=timeout, isolate=isolate,
                        max_memory_gb=max_memory_gb)
    infos: dict[int, tuple[int, CaseInfo]] = {}

    def handle(outcome: TaskOutcome) -> None:
        if outcome.user_error is not None:
            raise UserError(outcome.user_error)
        i, j = outcome.case_index, outcome.backend_index
        if outcome.info is not None and (i not in infos or j < infos[i][0]):
            infos[i] = (j, outcome.info)  # the lowest backend's info: the same whatever finishes first
        if outcome.result is not None:
            plan.add(i, j, outcome.result)
            if progress:
                progress(plan.resolved[i].id, plan.backends[j], outcome.result)

    if executor is not None:
        try:
            for task in _drain(executor, tasks, handle, own=False):
                handle(failed_outcome(task, WORKER_DIED))
        finally:
            clear_built()  # an executor in this process (Dask, processes=False) leaves no models behind
    else:
        _run_own_pools(tasks, jobs, handle)
    for i, case in enumerate(plan.resolved):
        if i in infos:
            plan.add_info(i, infos[i][1])
        elif i not in plan.infos:
            plan.add_info(i, CaseInfo(case.id, tuple(sorted(case.tags)), error=WORKER_DIED))


def _run_own_pools(tasks: Sequence[CountTask], jobs: int, handle: Callable[[TaskOutcome], None]) -> None:
    """Count on a fresh pool; tasks lost to a dying worker are retried, then one by one."""
    broken = list(tasks)
    for _attempt in range(2):
        if not broken:
            return
        broken = _drain(process_executor(max(1, min(jobs, len(broken)))), broken, handle, own=True)
    # A dying worker breaks the whole pool: run the rest alone, so the blame is exact;
    # workers that die whatever they run (e.g. no main guard) end it early.
    deaths = 0
    for task in broken:
        lost = _drain(process_executor(1), [task], handle, own=True) if deaths < MAX_DEATHS_IN_A_ROW else [task]
        deaths = deaths + 1 if lost else 0
        for t in lost:
            handle(failed_outcome(t, WORKER_DIED))


def _drain(executor: concurrent.futures.Executor, tasks: Sequence[CountTask],
           handle: Callable[[TaskOutcome], None], *, own: bool) -> list[CountTask]:
    """Submit ``tasks``, hand each outcome to ``handle`` as it completes; return the tasks of a broken pool."""
    futures: dict[concurrent.futures.Future[TaskOutcome], CountTask] = {}
    broken: list[CountTask] = []
    try:
        for task in tasks:
            futures[executor.submit(execute_task, task)] = task
        for fut in concurrent.futures.as_completed(futures):
            task = futures[fut]
            try:
                outcome = fut.result()
            except BrokenProcessPool:
                broken.append(task)
                continue
            except Exception as exc:  # noqa: BLE001 - a failed worker is data
                outcome = failed_outcome(task, f"the worker failed: {type(exc).__name__}: {exc}")
            handle(outcome)
    finally:
        for fut in futures:
            fut.cancel()
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    return sorted(broken, key=lambda t: (t.case_index, t.backend_index))
