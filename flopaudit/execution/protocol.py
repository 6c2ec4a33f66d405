"""What the supervisor asks a worker to do, and what the worker answers.

Plain, picklable records (no torch): the supervisor in the command-line
process sends an :class:`Order` over a pipe; the worker answers with one
event per step, so the supervisor always knows which phase is running and
whom to blame when the worker hangs or dies:

* :class:`PhaseStarted` before building the model (``build``), before the
  trial and timing forward passes (``forward``) and before each backend's
  count (``count``): the phase's deadline starts then;
* :class:`CaseBuilt` once the model ran (or failed to build or run: the
  info carries the error);
* :class:`Counted` after each backend's count;
* :class:`PhaseStarted` (``cost``) and :class:`Measured`, when the order
  carries a :class:`CostRequest`: after the counts, the model's forward
  latency, per-layer times, traffic and the machine's ceilings
  (:mod:`flopaudit.measure.cost`), bounded by the request's own deadline;
* :class:`Rejected` when the model or its inputs are the user's mistake
  (a ``module:function`` factory that raises, inputs the model rejects):
  the run stops with that one line;
* :class:`OrderDone` at the end, with the :class:`~flopaudit.execution.manifest.Manifest`
  of what the worker has imported (the result cache's proof that nothing
  changed) and whether the worker should be replaced (after a memory error).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flopaudit.measure.records import ModelCost
from flopaudit.passes import INFERENCE_PASS, Pass
from flopaudit.records import CaseInfo, CountResult, Status

if TYPE_CHECKING:
    from flopaudit.adapters.descriptor import Backend
    from flopaudit.execution.manifest import Manifest
    from flopaudit.execution.refs import CaseRef

BUILD, FORWARD, COUNT, COST = "build", "forward", "count", "cost"
"""The phases of an order, each bounded by the run's per-phase timeout (``cost`` by its request's)."""


@dataclass(frozen=True)
class LocalCase:
    """A case that cannot be pickled, left in the caller's memory for workers forked from it.

    :func:`keep_local` files the case under a token before any worker is
    forked; a forked worker finds it in the memory it inherited
    (:func:`local_case`). Only workers started with ``fork`` can use it.
    """

    token: str


_LOCAL_CASES: dict[str, object] = {}


def can_fork() -> bool:
    """Whether this process can fork workers that inherit its memory (Linux)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def keep_local(case: object) -> LocalCase:
    token = f"{os.getpid()}-{id(case)}"
    _LOCAL_CASES[token] = case
    return LocalCase(token)


def local_case(ref: LocalCase) -> object:
    return _LOCAL_CASES[ref.token]


@dataclass(frozen=True)
class CaseSettings:
    """How a case is built and what is counted: user-chosen (strict) inputs, meta device,
    forced train/eval mode, and the pass (one forward pass or one training step)."""

    strict_inputs: bool = False
    meta: bool = False
    failure_stops: bool = True
    """With ``strict_inputs``: a model or inputs factory that raises, and a forward that fails (inputs the
    model rejects, a value read on meta), stop the run (one user model: nothing else to count); ``False``
    (several): it is that model's error, every cell saying why, and the others are counted."""
    mode: str | None = None
    """``"eval"`` or ``"train"`` to override the case's own mode; ``None`` keeps it
    (a training step: train mode)."""
    device: str = "cpu"
    """Where the model and its inputs are put after building (``cpu``, ``cuda``, ``cuda:1``)."""
    dtype: str = "float32"
    """The floating dtype the model's parameters, buffers and floating inputs are cast to."""
    pass_: Pass = INFERENCE_PASS  # noqa: RUF009 - frozen, so one shared default is safe
    """What each backend counts: one forward pass, or one training step (:mod:`flopaudit.passes`)."""

    @property
    def effective_mode(self) -> str | None:
        """The mode the model is put in: ``mode``, else train mode for a training step."""
        return self.mode or ("train" if self.pass_.train else None)


@dataclass(frozen=True)
class CostRequest:
    """Measure the model's cost after its counts (:func:`flopaudit.measure.cost.measure_cost`):
    ``warmup`` untimed and ``reps`` timed forward passes, ``layer_passes`` passes timed module by
    module (0: none), the machine's ceilings when ``ceilings``; the phase must end within
    ``timeout`` seconds (``None``: the run's per-phase timeout)."""

    warmup: int = 1
    reps: int = 10
    layer_passes: int = 3
    ceilings: bool = True
    timeout: float | None = None


@dataclass(frozen=True)
class Order:
    """Build case ``case_index`` and count it with ``backends`` (``(plan index, name)`` pairs).

    ``case`` is a :class:`CaseRef` or, for cases that have no name, the
    pickled :class:`~flopaudit.zoo.case.ModelCase`. An order without
    backends only builds and runs the model (the check that a user's model
    accepts its inputs before any count starts). ``adapters`` are the
    backends registered at run time (descriptor, adapter module). A
    :class:`LocalCase` is a case that stayed in the caller's memory (for
    workers forked from it).
    """

    case_index: int
    case_id: str
    case: CaseRef | bytes | LocalCase
    backends: tuple[tuple[int, str], ...]
    settings: CaseSettings = CaseSettings()  # noqa: RUF009 - frozen, so one shared default is safe
    adapters: tuple[tuple[Backend, str], ...] = ()
    attempt: int = 0
    """How many workers died on this case before (see the supervisor's retry bound)."""
    cost: CostRequest | None = None
    """Measure the model's cost after the counts (a :class:`Measured` event)."""

    @property
    def case_key(self) -> tuple[object, CaseSettings]:
        """What identifies the built case: a worker that built it keeps it for the next order."""
        return self.case, self.settings


@dataclass(frozen=True)
class PhaseStarted:
    phase: str
    backend_index: int | None = None


@dataclass(frozen=True)
class CaseBuilt:
    info: CaseInfo
    status: Status = Status.ERROR
    """The status of every count of the case when ``info.error`` says it could not be built or run
    (``timeout``: building or running it did not finish)."""


@dataclass(frozen=True)
class Counted:
    backend_index: int
    result: CountResult


@dataclass(frozen=True)
class Measured:
    cost: ModelCost


@dataclass(frozen=True)
class Rejected:
    message: str


@dataclass(frozen=True)
class OrderDone:
    manifest: Manifest | None
    retire: bool = False
