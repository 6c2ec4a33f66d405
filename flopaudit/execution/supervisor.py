"""Supervised warm workers: user code runs there, every fault becomes a status.

The :class:`Supervisor` starts up to ``jobs`` worker processes
(:mod:`flopaudit.execution.worker`), hands each an
:class:`~flopaudit.execution.protocol.Order` at a time and watches it:

* each phase (building the model, running it, one backend's count) must
  end within ``timeout`` seconds; a worker that overruns is killed with
  its whole process group and the phase gets status ``timeout``;
* a worker that dies (a signal, ``os._exit``, the kernel's OOM killer) is
  blamed for the phase it was in: ``error`` naming the signal or exit code;
* an order's cost phase (:class:`~flopaudit.execution.protocol.CostRequest`)
  has the request's own deadline; a hang or death there, or a model that
  never built, gives a :class:`~flopaudit.execution.protocol.Measured`
  record with that status;
* either way the run goes on: a count that failed is not retried, the
  backends of the order that had not been counted yet go to a fresh
  worker, and a dead worker is replaced;
* a :class:`~flopaudit.execution.protocol.Rejected` order (the user's
  model or inputs factory raised) stops every worker and raises
  :class:`~flopaudit.errors.UserError`;
* Ctrl-C (``KeyboardInterrupt``) kills every worker's process group and
  the fork server before it propagates, so nothing is left running.

Workers are forked from a fork server that has imported torch and the
``preload`` modules once (``multiprocessing``'s ``forkserver``; ``spawn``
where there is none), so a replacement worker costs a fork, not an import.
A worker carries out the orders of one case only (a case split between
workers, the build-only probe before it): an idle worker that built another
case is replaced before it gets an order, since that case's code ran in it
(its imports, what it set or patched in torch), and every case is then
counted as it would be alone.
With ``fork=True`` (a Python caller's case that cannot be pickled) they
are forked from the calling process itself, inheriting the case, on one
torch thread. This module imports no torch and runs no user code.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait
from typing import Any

from flopaudit.errors import UserError
from flopaudit.execution.failures import exit_description, failed_result, last_words, stack_position
from flopaudit.execution.memory import death_note
from flopaudit.execution.protocol import (
    COST,
    COUNT,
    CaseBuilt,
    Counted,
    Measured,
    Order,
    OrderDone,
    PhaseStarted,
    Rejected,
)
from flopaudit.execution.worker import OUTPUT_LINES, WorkerSettings, serve
from flopaudit.measure.records import failed_cost
from flopaudit.records import CaseInfo, Status

Event = CaseBuilt | Counted | Measured | OrderDone
Handler = Callable[[Order, Event], None]

EXIT_GRACE_S = 2.0
"""How long :meth:`Supervisor.close` waits for idle workers to exit before killing them."""
MAX_ATTEMPTS = 3
"""An order whose workers died this many times outside any count fails its remaining backends."""
START_GRACE_S = 300.0
"""How long a new worker may take to start (the fork server imports torch first)."""
FORK_SERVER_ENV = "FLOPAUDIT_FORK_SERVER"
"""Set while a worker starts: the fork server's ``sys.path`` and imports, read by
:mod:`flopaudit.execution.server_setup` when a start launches the server."""


@dataclass
class _Worker:
    process: Any
    conn: Any
    order: Order | None = None
    phase: str | None = None
    backend_index: int | None = None
    deadline: float | None = None
    built: Any = None
    info_seen: bool = False
    counted: set[int] = field(default_factory=set)
    measured: bool = False
    output: str | None = None
    """The file the worker's standard output and error go to, read when it dies."""

    def assign(self, order: Order, now: float) -> None:
        self.order, self.phase, self.backend_index = order, None, None
        self.deadline, self.info_seen, self.counted, self.measured = now + START_GRACE_S, False, set(), False
        self.conn.send(order)


def _context(fork: bool) -> Any:
    if fork:
        return multiprocessing.get_context("fork")
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")  # pragma: no cover - no fork server on this platform


class Supervisor:
    """Up to ``jobs`` warm workers carrying out orders (see the module docstring)."""

    def __init__(self, jobs: int, *, timeout: float | None, max_memory_gb: float | None = None,
                 threads: int | None = None, preload: Sequence[str] = (), fork: bool = False) -> None:
        self.jobs = max(1, jobs)
        self.timeout = timeout
        self.max_memory_gb = max_memory_gb
        self.settings = WorkerSettings(threads=threads or 1, max_memory_gb=max_memory_gb,
                                       environment=tuple(os.environ.items()))
        self.ctx = _context(fork)
        self.server_environment: dict[str, str] = {}
        """What a start that launches the fork server puts in its environment (read by
        :mod:`flopaudit.execution.server_setup`, which takes it out again): the caller's
        ``sys.path`` and the imports, and ``PYTHONSAFEPATH`` so that the server's own
        start (``python -c``) does not look in the working directory first."""
        if self.ctx.get_start_method() == "forkserver":
            self.ctx.set_forkserver_preload(["flopaudit.execution.server_setup", "flopaudit.execution.server_ready"])
            safe_path = "PYTHONSAFEPATH" not in os.environ
            self.server_environment[FORK_SERVER_ENV] = json.dumps({
                "sys_path": [os.getcwd() if p == "" else p for p in sys.path],
                "imports": ["flopaudit.execution.worker", *preload],
                "unset": ["PYTHONSAFEPATH"] if safe_path else [],
            })
            if safe_path:
                self.server_environment["PYTHONSAFEPATH"] = "1"
        self.workers: list[_Worker] = []
        self._output_dir: str | None = None
        """Where each worker's output file lives (made at the first start, removed by :meth:`close`)."""
        self._started = 0

    # -- lifecycle ----------------------------------------------------------
    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupt()
        else:
            self.close()

    def close(self, *, graceful: bool = True) -> None:
        """Stop every worker (they hold nothing worth keeping between runs): an idle one is asked to
        exit first, so what its process made for itself is let go as a process exiting lets it go
        (the semaphores of a ``multiprocessing`` lock tqdm makes, which the resource tracker would
        otherwise find leaked), then killed with the rest of its process group."""
        if graceful:
            _ask_to_exit([w for w in self.workers if w.order is None])
        for w in self.workers:
            _kill(w)
        self.workers.clear()
        if self._output_dir is not None:
            shutil.rmtree(self._output_dir, ignore_errors=True)
            self._output_dir = None

    def interrupt(self) -> None:
        """Ctrl-C: ignore further interrupts while every worker and the fork server are stopped."""
        previous = signal.getsignal(signal.SIGINT)
        with contextlib.suppress(ValueError):  # not the main thread: nothing to mask
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            self.close(graceful=False)  # (now: a Ctrl-C waits for nobody)
            stop_fork_server()
        finally:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, previous)

    def _start(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        if self._output_dir is None:
            self._output_dir = tempfile.mkdtemp(prefix="flopaudit-workers-")
        self._started += 1
        output = os.path.join(self._output_dir, f"{self._started}.out")
        process = self.ctx.Process(target=serve, args=(child, self.settings, output), name="flopaudit-worker")
        try:
            with _environment(self.server_environment):  # (read only by a fork server this start launches)
                _start_resource_tracker()  # (its python -c start too must not look in the working directory)
                process.start()
        except (EOFError, OSError) as exc:  # the fork server died before it could fork a worker
            parent.close()
            child.close()
            stop_fork_server()
            raise UserError(f"the worker processes could not start: the fork server that forks them exited "
                            f"({type(exc).__name__}: {exc}); with --no-isolation (or isolate=False) flopaudit "
                            "counts in its own process, where the failure shows") from None
        child.close()
        worker = _Worker(process, parent, output=output)
        self.workers.append(worker)
        return worker

    def _retire(self, w: _Worker) -> None:
        if w.order is None:  # idle: asked to exit first (see close)
            _ask_to_exit([w])
        _kill(w)
        self.workers.remove(w)

    # -- the loop -----------------------------------------------------------
    def run(self, orders: Iterable[Order], handle: Handler) -> None:
        """Carry out every order; each event (real or standing in for a failure) goes to ``handle``."""
        pending: deque[Order] = deque(orders)
        while pending or any(w.order for w in self.workers):
            self._assign(pending)
            busy = [w for w in self.workers if w.order is not None]
            now = time.monotonic()
            wake = min((w.deadline for w in busy if w.deadline is not None), default=now + 0.5)
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], max(0.0, min(wake - now, 0.5)))
            for w in busy:
                self._poll(w, pending, handle)

    def _assign(self, pending: deque[Order]) -> None:
        now = time.monotonic()
        while pending:
            idle = [w for w in self.workers if w.order is None]
            if not idle and len(self.workers) < self.jobs:
                idle = [self._start()]
            if not idle:
                return
            order = pending.popleft()
            worker = next((w for w in idle if w.built == order.case_key), None) or next(
                (w for w in idle if w.built is None), idle[0])
            if worker.built is not None and worker.built != order.case_key:
                # A worker that built another case ran that case's code (its imports, what it set or
                # patched in torch): the next case goes to a fresh worker, as it would counted alone.
                self._retire(worker)
                worker = self._start()
            try:
                worker.assign(order, now)
            except (BrokenPipeError, OSError):
                pending.appendleft(order)
                self._retire(worker)

    def _poll(self, w: _Worker, pending: deque[Order], handle: Handler) -> None:
        assert w.order is not None
        try:
            while w.order is not None and w.conn.poll():
                self._receive(w, w.conn.recv(), handle)
        except (EOFError, OSError):
            pass
        if w.order is None:
            return
        if not w.process.is_alive():
            w.process.join(1)
            self._fail(w, pending, handle, died=exit_description(w.process.exitcode))
        elif w.deadline is not None and time.monotonic() > w.deadline:
            self._fail(w, pending, handle, died=None)

    def _receive(self, w: _Worker, event: Any, handle: Handler) -> None:
        order = w.order
        assert order is not None
        if isinstance(event, PhaseStarted):
            w.phase, w.backend_index = event.phase, event.backend_index
            limit = self._phase_limit(order, event.phase)
            w.deadline = time.monotonic() + limit if limit else None
        elif isinstance(event, Rejected):
            self.close()
            raise UserError(event.message)
        elif isinstance(event, CaseBuilt):
            w.info_seen, w.built = True, order.case_key
            handle(order, event)
        elif isinstance(event, (Counted, Measured)):
            if isinstance(event, Counted):
                w.counted.add(event.backend_index)
            else:
                w.measured = True
            w.phase, w.backend_index = None, None
            w.deadline = time.monotonic() + self.timeout if self.timeout else None
            handle(order, event)
        elif isinstance(event, OrderDone):
            w.order, w.phase, w.deadline = None, None, None
            handle(order, event)
            if event.retire:
                self._retire(w)

    def _fail(self, w: _Worker, pending: deque[Order], handle: Handler, *, died: str | None) -> None:
        """The worker hung (``died is None``) or died: blame its phase, requeue what is left, replace it."""
        order = w.order
        assert order is not None
        if died is None:
            _dump_stack(w)
        output = _output_of(w)
        self._retire(w)
        if died is None:
            where = stack_position(output)
            last = f" in {where}" if where else ""
        else:
            said = last_words(output)
            last = f"; its last output: {said}" if said else ""
        if w.measured:
            order = replace(order, cost=None)
        status = Status.ERROR if died else Status.TIMEOUT
        left = [(j, b) for j, b in order.backends if j not in w.counted]
        if not w.info_seen:
            # Building or running the model (or starting the worker) failed: every count of the order fails.
            message = self._model_failure(died) + last
            handle(order, CaseBuilt(CaseInfo(order.case_id, error=message, output=_excerpt(output)), status))
            for j, backend in left:
                handle(order, Counted(j, failed_result(order.case_id, backend, status, message)))
            if order.cost is not None:
                handle(order, Measured(failed_cost(order.case_id, status, message)))
            return
        if w.phase == COST:
            handle(order, Measured(failed_cost(order.case_id, status, self._cost_failure(order, died) + last)))
            return
        if w.phase == COUNT and w.backend_index is not None:
            backend = dict(order.backends)[w.backend_index]
            handle(order, Counted(w.backend_index, failed_result(order.case_id, backend, status,
                                                                 self._count_failure(died) + last)))
            left = [(j, b) for j, b in left if j != w.backend_index]
            attempt = order.attempt
        else:
            attempt = order.attempt + 1
        if not left and order.cost is None:
            return
        if attempt >= MAX_ATTEMPTS:
            message = f"the worker died {attempt} times on this model outside any count ({died or 'hung'}){last}"
            for j, backend in left:
                handle(order, Counted(j, failed_result(order.case_id, backend, Status.ERROR, message)))
            if order.cost is not None:
                handle(order, Measured(failed_cost(order.case_id, Status.ERROR, message)))
            return
        pending.appendleft(replace(order, backends=tuple(left), attempt=attempt))

    def _memory_note(self, died: str) -> str:
        return death_note(died, self.max_memory_gb)

    def _limit(self) -> str:
        return f"{self.timeout:g} s (--timeout)" if self.timeout else f"{START_GRACE_S:g} s"

    def _phase_limit(self, order: Order, phase: str) -> float | None:
        """Seconds a phase may take: the cost phase its request's, every other the run's ``timeout``."""
        if phase == COST and order.cost is not None and order.cost.timeout:
            return order.cost.timeout
        return self.timeout

    def _cost_failure(self, order: Order, died: str | None) -> str:
        if died is None:
            limit = self._phase_limit(order, COST)
            return f"measuring did not finish within {limit:g} s; the worker was stopped" if limit else \
                "measuring did not finish; the worker was stopped"
        return f"the worker died while measuring ({died}){self._memory_note(died)}"

    def _model_failure(self, died: str | None) -> str:
        if died is None:
            return f"building or running the model did not finish within {self._limit()}; the worker was stopped"
        return f"the worker died while building or running the model ({died}){self._memory_note(died)}"

    def _count_failure(self, died: str | None) -> str:
        if died is None:
            return f"no result after {self._limit()}; the count was stopped"
        return f"the counting process died with {died}{self._memory_note(died)}"


_KILLED_WORKERS_LOCKS = "ignore:resource_tracker:UserWarning"
"""The ``-W`` option that keeps the resource tracker's "leaked semaphore objects" warning (a
``UserWarning`` whose text starts with ``resource_tracker``) out of the run's output."""


def _start_resource_tracker() -> None:
    """Start ``multiprocessing``'s resource tracker, where none runs yet, told to ignore its warning
    about the semaphores it removes at the end.

    A worker that is killed (it hung, it ran out of time, a run stopped early with work under way)
    cannot let go of a ``multiprocessing`` lock its model made (tqdm makes one for its bars, torch.fx
    and peft show such bars): the tracker, which the workers share with this process, removes the
    lock's semaphore when this process ends, as it should, and then warns of a leak on this
    process's error output, about a model's library. The tracker takes its warning options from
    this process's ``-W`` options when it starts (``multiprocessing.util._args_from_interpreter_flags``),
    so the option is put there for its start only. # NB: a tracker that was running before the first
    worker started (one the caller started) keeps its own options."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker  # noqa: SLF001 - the public ensure_running takes no options
    if getattr(tracker, "_fd", None) is not None:
        return
    sys.warnoptions.append(_KILLED_WORKERS_LOCKS)
    try:
        tracker.ensure_running()
    finally:
        sys.warnoptions.remove(_KILLED_WORKERS_LOCKS)


def _ask_to_exit(workers: Sequence[_Worker]) -> None:
    """Tell idle workers to exit, and wait up to :data:`EXIT_GRACE_S` for them."""
    for w in workers:
        with contextlib.suppress(Exception):
            w.conn.send(None)
    deadline = time.monotonic() + EXIT_GRACE_S
    for w in workers:
        with contextlib.suppress(Exception):
            w.process.join(max(0.0, deadline - time.monotonic()))


def _output_of(w: _Worker) -> str:
    """What a worker wrote since its last finished step (its output file), ``""`` if unreadable."""
    if w.output is None:
        return ""
    try:
        return _tail(w.output).decode(errors="replace")
    except OSError:
        return ""


def _dump_stack(w: _Worker, wait_s: float = 1.0) -> None:
    """Ask a worker that hung to write its Python stack to its output file (the fault handler's
    ``SIGUSR1``), and wait up to ``wait_s`` for it."""
    if w.output is None or w.process.pid is None or not hasattr(signal, "SIGUSR1"):
        return
    with contextlib.suppress(OSError):
        before = os.path.getsize(w.output)
        os.kill(w.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if os.path.getsize(w.output) > before and b"(most recent call first)" in _tail(w.output):
                time.sleep(0.05)  # (the rest of the dump)
                return


def _tail(path: str) -> bytes:
    with open(path, "rb") as file:
        file.seek(max(0, os.path.getsize(path) - OUTPUT_TAIL_BYTES))
        return file.read()


OUTPUT_TAIL_BYTES = 16384
"""How much of the end of a dead worker's output is read."""


def _excerpt(output: str) -> str:
    """The last lines a dead worker wrote, as many as a case keeps of a live one's (its first ones)."""
    return "\n".join(output.splitlines()[-OUTPUT_LINES:])


def _kill(w: _Worker) -> None:
    """Kill a worker and everything in its process group, reap it and remove its output file."""
    pid = w.process.pid
    if pid is not None:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                kill()
    with contextlib.suppress(Exception):
        w.conn.close()
    with contextlib.suppress(Exception):
        w.process.join(2)
    if w.output is not None:
        with contextlib.suppress(OSError):
            os.unlink(w.output)


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` set in this process's environment while the block runs (those already set kept)."""
    added = [name for name in variables if name not in os.environ]
    for name in added:
        os.environ[name] = variables[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def stop_fork_server() -> None:
    """Kill ``multiprocessing``'s fork server of this process, if one runs; the next worker starts a new one.

    Killed rather than asked to stop: a server that has imported torch takes
    seconds to finalise its interpreter, and it holds nothing worth saving.
    """
    from multiprocessing import forkserver

    server = forkserver._forkserver  # noqa: SLF001 - the public API has no way to stop it
    with server._lock:  # noqa: SLF001
        pid = server._forkserver_pid  # noqa: SLF001
        if pid is None:
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        with contextlib.suppress(OSError, TypeError):
            os.close(server._forkserver_alive_fd)  # noqa: SLF001
        address = server._forkserver_address  # noqa: SLF001
        if isinstance(address, str) and not address.startswith("\0"):
            with contextlib.suppress(OSError):
                os.unlink(address)
        server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None  # noqa: SLF001
