"""A supervised worker: forked with torch and the backends imported, it serves the orders of one case.

:func:`serve` runs in a process started by :mod:`flopaudit.execution.supervisor`
(forked from a fork server that has preloaded torch and the backends). It
puts itself in a process group of its own, so a Ctrl-C in the terminal
reaches only the supervisor, which then kills the whole group; it points its
standard output and error at a private file, so nothing the model or a
backend prints reaches the terminal (what building and running a model
printed is kept, cut short, in the case's :class:`~flopaudit.records.CaseInfo`).

For each :class:`~flopaudit.execution.protocol.Order` it builds the case
(or reuses the case it built for the previous order: the supervisor gives a
worker orders of one case only, so no case runs after another case's code in
the same process), runs it, counts it
with each backend, measures its cost when the order asks (last, so no
count's work is timed), and reports each step (:mod:`flopaudit.execution.protocol`).
Each phase may map at most ``--max-memory`` GiB more than the worker held
when it began; after a count that ran out of memory the worker asks to be
replaced. This module imports no torch at import time: the supervisor
names :func:`serve` without loading torch itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import os
import pickle
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from flopaudit.execution.protocol import (
    BUILD,
    COST,
    COUNT,
    FORWARD,
    CaseBuilt,
    Counted,
    Measured,
    Order,
    OrderDone,
    PhaseStarted,
    Rejected,
)

MTIME_MARGIN_NS = 10_000_000
"""How long before an order began a file's modification still counts as made while it ran."""
OUTPUT_LINES = 40
OUTPUT_BYTES = 8192


@dataclass(frozen=True)
class WorkerSettings:
    """What every order of one worker shares."""

    threads: int = 1
    max_memory_gb: float | None = None
    environment: tuple[tuple[str, str], ...] = ()
    """The supervisor's environment variables: a worker forked from a fork server started earlier
    would otherwise see the server's (``TIMM_FUSED_ATTN`` set since then, say)."""


class OutputCapture:
    """File descriptors 1 and 2 of this process point at a private file (``path``, which the
    supervisor reads if the process dies; else an anonymous one); :meth:`take` empties it.
    Python's fault handler writes there too, so a crash leaves its stack in the file, and so does
    ``SIGUSR1`` (sent before a worker that hung is stopped)."""

    def __init__(self, path: str | None = None) -> None:
        self.file = open(path, "w+b") if path else tempfile.TemporaryFile()  # noqa: SIM115 - held for the process
        for fd in (1, 2):
            os.dup2(self.file.fileno(), fd)
        # The fault handler gets a descriptor of its own: a backend that points 1 and 2 elsewhere while
        # it counts (to keep a counter quiet) leaves it alone.
        self.faults = os.fdopen(os.dup(self.file.fileno()), "wb")
        faulthandler.enable(self.faults)
        if hasattr(faulthandler, "register") and hasattr(signal, "SIGUSR1"):  # (POSIX: where a hung worker is)
            faulthandler.register(signal.SIGUSR1, self.faults, all_threads=False)

    def take(self) -> str:
        """What was written since the last call, cut to a bounded excerpt."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        fd = self.file.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        head = os.read(fd, OUTPUT_BYTES)
        lines = head.count(b"\n")
        while chunk := os.read(fd, 1 << 20):
            lines += chunk.count(b"\n")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        text = head.decode(errors="replace")
        kept = text.splitlines()[:OUTPUT_LINES]
        if not head.endswith(b"\n") and head:
            lines += 1
        more = lines - len(kept)
        return "\n".join(kept) + (f"\n[... {more} more line(s) not kept]" if more > 0 else "")


def serve(conn: Any, settings: WorkerSettings, output: str | None = None) -> None:
    """The worker's main loop: one order at a time until the pipe closes (``output``: the file its
    standard output and error go to)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.environment:
        os.environ.clear()
        os.environ.update(settings.environment)
    capture = OutputCapture(output)
    import torch

    torch.set_num_threads(max(1, settings.threads))
    kept: dict[Any, Any] = {}
    while True:
        try:
            order = conn.recv()
        except (EOFError, OSError):
            return
        if order is None:
            return
        from flopaudit.execution.manifest import reads_watched, take

        began = time.time_ns() - MTIME_MARGIN_NS  # (a file system's clock may lag this one's)
        with reads_watched():
            retire = _serve_order(conn, order, settings, kept, capture)

        conn.send(OrderDone(take(since_ns=began), retire))
        if retire:
            return


def _serve_order(conn: Any, order: Order, settings: WorkerSettings, kept: dict[Any, Any],
                 capture: OutputCapture) -> bool:
    """Carry out one order; return whether this worker should be replaced afterwards."""
    from flopaudit.errors import UserError
    from flopaudit.execution.memory import looks_out_of_memory, memory_cap
    from flopaudit.execution.work import count_prepared, measure_prepared, name_memory_error, prepare_case

    register_adapters(order.adapters)
    prepared = kept.get(order.case_key)
    if prepared is None:
        kept.clear()
        conn.send(PhaseStarted(BUILD))
        try:
            case = resolve_case(order.case)
            with memory_cap(settings.max_memory_gb):
                # A loss failing in a count (not a check: flopaudit.run) is that model's error.
                prepared = prepare_case(case, order.settings, on_phase=lambda: conn.send(PhaseStarted(FORWARD)),
                                        loss_stops=not order.backends)
        except UserError as exc:
            capture.take()
            conn.send(Rejected(str(exc)))
            return False
        output = capture.take()
        error = prepared.info.error
        if error and settings.max_memory_gb and looks_out_of_memory(error):
            from flopaudit.execution.memory import memory_message

            error = memory_message(settings.max_memory_gb, error)
        prepared.info = dataclasses.replace(prepared.info, output=output, error=error)
        kept[order.case_key] = prepared
    conn.send(CaseBuilt(prepared.info))
    retire = False
    for index, backend in order.backends:
        conn.send(PhaseStarted(COUNT, index))
        with memory_cap(settings.max_memory_gb):
            result = count_prepared(prepared, backend)
        result = name_memory_error(result, settings.max_memory_gb)
        if settings.max_memory_gb and result.error and "--max-memory" in result.error:
            retire = True
        capture.take()
        conn.send(Counted(index, result))
    if order.cost is not None:
        conn.send(PhaseStarted(COST))
        with memory_cap(settings.max_memory_gb):
            cost = measure_prepared(prepared, order.cost)
        capture.take()
        conn.send(Measured(cost))
    return retire


def resolve_case(case: Any) -> Any:
    """The :class:`~flopaudit.zoo.case.ModelCase` an order names: by ref, pickled, or left in memory."""
    from flopaudit.execution.protocol import LocalCase, local_case

    if isinstance(case, bytes):
        return pickle.loads(case)
    if isinstance(case, LocalCase):
        return local_case(case)
    return case.resolve()


def register_adapters(adapters: tuple[tuple[Any, str], ...]) -> None:
    """Make backends registered at run time in the supervisor's process known here."""
    if not adapters:
        return
    from flopaudit.adapters import register_backend

    for backend, module in adapters:
        register_backend(backend, module)
