"""One (case, backend) count as a picklable task, and the worker function that runs it.

A task names its case (a :class:`~flopaudit.execution.refs.CaseRef`, or a
picklable :class:`~flopaudit.zoo.case.ModelCase`) and its backend (with its
descriptor and adapter module, so a worker process finds backends that
were registered at run time). The worker rebuilds the case seeded, exactly
as a serial run would, keeps the last few built cases for the next tasks,
and counts in a forked child with the task's timeout and memory cap.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from flopaudit.adapters.descriptor import Backend
from flopaudit.execution.refs import CaseRef
from flopaudit.records import CountResult, Status
from flopaudit.run import CaseInfo, PreparedCase, count_prepared, failed_result, prepare_case
from flopaudit.zoo.case import ModelCase

KEEP_BUILT = 2
"""How many built cases a worker keeps for the tasks that follow."""


@dataclass(frozen=True)
class CountTask:
    """Count case ``case_index`` with backend ``backend_index`` (-1: only build it and report)."""

    case_index: int
    backend_index: int
    case: CaseRef | ModelCase
    backend: str | None
    registration: tuple[Backend, str] | None = None
    """The backend's descriptor and adapter module (:func:`flopaudit.adapters.registration`), so that a
    worker that does not know it (one registered at run time in the parent) can register it."""
    strict_inputs: bool = False
    meta: bool = False
    timeout: float | None = None
    isolate: bool = True
    max_memory_gb: float | None = None
    parent_pid: int = 0

    @property
    def case_id(self) -> str:
        return self.case.id


@dataclass(frozen=True)
class TaskOutcome:
    """What a worker sends back: the case info, the count, or a user error to raise."""

    case_index: int
    backend_index: int
    info: CaseInfo | None
    result: CountResult | None
    user_error: str | None = None


_built: OrderedDict[Any, PreparedCase] = OrderedDict()
_lock = threading.Lock()
_setup_done = False


def init_worker() -> None:
    """Process-pool initializer: one intra-op thread per worker (the workers share the cores)."""
    global _setup_done
    torch.set_num_threads(1)
    _setup_done = True


def _ensure_setup(parent_pid: int) -> None:
    # Dask workers get no initializer; a worker thread in the submitting
    # process itself (a Dask LocalCluster with processes=False) leaves its
    # thread count alone.
    if not _setup_done and os.getpid() != parent_pid:
        init_worker()


def _ensure_adapter(backend: str, registration: tuple[Backend, str] | None) -> None:
    from flopaudit import adapters

    if registration is not None and (backend not in adapters.backends()
                                     or adapters.registration(backend) != registration):
        adapters.register_backend(*registration)


def _prepared(task: CountTask) -> PreparedCase:
    key = (task.case, task.meta, task.strict_inputs)
    with _lock:
        if key in _built:
            _built.move_to_end(key)
            return _built[key]
        case = task.case.resolve() if isinstance(task.case, CaseRef) else task.case
        prepared = prepare_case(case, strict_inputs=task.strict_inputs, meta=task.meta)
        _built[key] = prepared
        while len(_built) > KEEP_BUILT:
            _built.popitem(last=False)
        return prepared


def clear_built() -> None:
    """Forget the built cases of this process (for executors that run in the caller's process)."""
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
    """Run one task in a worker; never raises for model or backend failures."""
    from flopaudit.errors import UserError

    _ensure_setup(task.parent_pid)
    if task.backend is not None:
        _ensure_adapter(task.backend, task.registration)
    try:
        prepared = _prepared(task)
    except UserError as exc:
        return TaskOutcome(task.case_index, task.backend_index, None, None, user_error=str(exc))
    if task.backend is None:
        return TaskOutcome(task.case_index, task.backend_index, prepared.info, None)
    with _children_allowed():
        result = count_prepared(prepared, task.backend, timeout=task.timeout, isolate=task.isolate,
                                max_memory_gb=task.max_memory_gb)
    return TaskOutcome(task.case_index, task.backend_index, prepared.info, result)


def failed_outcome(task: CountTask, message: str) -> TaskOutcome:
    """The outcome of a task whose worker died or raised before returning."""
    result = None
    if task.backend is not None:
        result = failed_result(task.case_id, task.backend, Status.ERROR, message)
    return TaskOutcome(task.case_index, task.backend_index, None, result)
