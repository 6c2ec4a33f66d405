"""The work itself: build a case, run it, count it with one backend.

These functions run where user code may run: in a supervised worker
(:mod:`flopaudit.execution.worker`), in a Dask worker, or in the caller's
process when isolation is turned off. The command-line process never
imports this module.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.eager import compiled_code_eager
from flopaudit.errors import UserError, batch_statistics_hint, first_line, placement_hint
from flopaudit.execution.failures import failed_result
from flopaudit.execution.protocol import CaseSettings, CostRequest
from flopaudit.inputs import ModelInputs, holds_meta
from flopaudit.isolation import run_isolated
from flopaudit.measure.records import ModelCost
from flopaudit.modes import FIXED_MODE_NOTE, set_mode
from flopaudit.passes import INFERENCE_PASS, Pass
from flopaudit.records import CaseInfo, CountResult, Status
from flopaudit.reference.meta_workarounds import MetaWorkarounds, run_on_meta
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.select import check_runs


def count_one(
    backend: str,
    model: nn.Module,
    inputs: Any,
    *,
    model_name: str = "",
    timeout: float | None = None,
    isolate: bool = True,
    max_memory_gb: float | None = None,
    pass_: Pass | None = None,
) -> CountResult:
    """Count ``model`` with one backend (``pass_``: one forward pass by default, or one
    training step); crashes and hangs become statuses.

    With ``isolate`` the count runs in a forked child process bounded by
    ``timeout`` seconds (the model stays in this process, the child sees a
    copy); without it, it runs in this process (no timeout).
    ``max_memory_gb`` (isolated counts only) caps what the child may map on
    top of what it inherits (:func:`~flopaudit.execution.memory.limit_memory`);
    a count that hits the cap becomes status ``error`` saying so.
    """
    adapter = get_adapter(backend)
    inputs = ModelInputs.coerce(inputs)
    if not isolate:
        return adapter.count(model, inputs, model_name=model_name, pass_=pass_)
    adapter.preload()  # imported here once, not in every forked child

    def work() -> CountResult:
        if max_memory_gb:
            from flopaudit.execution.memory import limit_memory

            limit_memory(max_memory_gb)
        return adapter.count(model, inputs, model_name=model_name, pass_=pass_)

    outcome = run_isolated(work, timeout)
    if outcome.status == "ok":
        return name_memory_error(outcome.value, max_memory_gb)
    status = Status.TIMEOUT if outcome.status == "timeout" else Status.ERROR
    message = outcome.message
    if outcome.status == "crash" and outcome.died:
        from flopaudit.execution.memory import death_note

        message += death_note(outcome.died, max_memory_gb)
    return name_memory_error(failed_result(model_name, backend, status, message, inputs.batch_size), max_memory_gb)


def name_memory_error(result: CountResult, max_memory_gb: float | None) -> CountResult:
    """A failed allocation under ``--max-memory`` says so."""
    from flopaudit.execution.memory import looks_out_of_memory, memory_message

    if max_memory_gb and result.status is Status.ERROR and looks_out_of_memory(result.error):
        return dataclasses.replace(result, error=memory_message(max_memory_gb, result.error or ""))
    return result


def _time_forward(model: nn.Module, inputs: ModelInputs, device: str = "cpu") -> tuple[float, Any, bool]:
    """Seconds one forward pass takes, its output, and whether it needed autograd (it
    differentiates: :mod:`flopaudit.grad_forward`; else it runs under ``no_grad``)."""
    from flopaudit.grad_forward import without_grad_if_it_runs

    def run(no_grad: bool) -> tuple[float, Any]:
        given = inputs.fresh()
        start = time.perf_counter()
        with torch.no_grad() if no_grad else torch.enable_grad():
            output = model(*given.args, **given.kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, output

    (seconds, output), grad = without_grad_if_it_runs(run)
    return seconds, output, grad


def place(model: nn.Module, inputs: ModelInputs, device: str, dtype: str) -> tuple[nn.Module, ModelInputs]:
    """Move the model and its inputs to ``device`` and cast what is floating to ``dtype``
    (integer inputs such as token ids keep theirs). The CPU in float32 leaves both as built.

    A device torch cannot use here is the user's mistake (:class:`~flopaudit.errors.UserError`).
    """
    if device == "cpu" and dtype == "float32":
        return model, inputs
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: torch {torch.__version__} sees no CUDA device here")
    target = getattr(torch, dtype)

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=target) if t.is_floating_point() else t.to(device)

    return model.to(device=device, dtype=target), inputs.map(move)


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
    placement: tuple[tuple[str, str], ...] = ()
    """``(("device", ...), ("dtype", ...))`` when the case was put elsewhere than the CPU in float32:
    recorded in each count's options."""
    pass_: Pass = INFERENCE_PASS
    meta_workarounds: MetaWorkarounds = MetaWorkarounds()
    """On meta, the ways round a failure there the trial forward needed (answering
    ``torch.jit.is_tracing()`` yes, bfloat16 stand-ins for float32 grouped products): every count
    runs with them (:mod:`flopaudit.reference.meta_workarounds`)."""


def _first_line(exc: BaseException) -> str:
    text = first_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def prepare_case(case: ModelCase, settings: CaseSettings | None = None, *,
                 on_phase: Callable[[], None] | None = None, loss_stops: bool = True) -> PreparedCase:
    """Build ``case`` (seeded), check it runs and time one forward pass.

    A model that fails to build or run gives a :class:`PreparedCase` without
    a model. With ``settings.strict_inputs`` (the user chose the model or its
    inputs) a factory that raises and a model that rejects its inputs are
    the user's mistakes: :class:`~flopaudit.errors.UserError` where
    ``settings.failure_stops`` (the only model), else that model's error
    saying the same. With
    ``settings.meta`` the model and inputs are built on the meta device and
    ``forward_s`` is left empty (a forward pass there computes nothing);
    ``settings.mode`` forces train or eval mode (a training step: train mode
    unless the mode is given). A training step's user loss is loaded and
    applied to the trial output: one that cannot be read, raises or returns
    no scalar tensor is a :class:`~flopaudit.errors.UserError`, unless
    ``loss_stops`` is false and ``settings.failure_stops`` too (one model of
    several, the loss having run on another's output): then that model's
    error. ``on_phase`` is called between building the model and running it.
    """
    settings = settings or CaseSettings()
    tags = tuple(sorted(case.tags))
    notes: tuple[str, ...] = ()

    def failed(message: str) -> PreparedCase:
        """The case without a model: every cell of it says ``message``."""
        return PreparedCase(case.id, CaseInfo(case.id, tags, error=message), meta=settings.meta)

    built_under_device = False  # built under torch.device("meta"): built again another way if it fails to run
    try:
        if settings.meta:
            from flopaudit.execution.meta import instantiate_on_meta, rebuilt_with_empty_weights

            model, inputs, notes = instantiate_on_meta(case)
            built_under_device = not notes
        else:
            model, inputs = case.instantiate()
    except UserError as exc:  # (a factory returning no module)
        if settings.failure_stops:
            raise
        return failed(str(exc))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - (a factory calling sys.exit() raised too)
        from flopaudit.execution.meta import MetaBuildFailure

        if isinstance(exc, MetaBuildFailure):
            message = f"failed to build on the meta device: {exc}: count it without --meta"
            if settings.strict_inputs and settings.failure_stops:
                raise UserError(f"model {case.id!r} {message}") from None
            return failed(f"model {message}")
        if settings.strict_inputs and settings.failure_stops:
            raise UserError(f"model {case.id!r} or its inputs factory raised while building: {_first_line(exc)}") from None
        where = " on the meta device (run it without --meta)" if settings.meta else ""
        message = f"model failed to build{where}: {type(exc).__name__}: {exc}"
        return failed(message)
    if not settings.meta and holds_meta(model, inputs):  # built on meta by its own code: counted as --meta counts
        settings = dataclasses.replace(settings, meta=True)  # it, its inputs moved there as --meta moves them
        inputs = inputs.to("meta")
    mode = settings.effective_mode
    if mode is not None and not set_mode(model, mode == "train"):
        notes += (FIXED_MODE_NOTE,)
    if not settings.meta:
        model, inputs = place(model, inputs, settings.device, settings.dtype)
    if on_phase is not None:
        on_phase()

    def trial(ways: MetaWorkarounds) -> tuple[float, Any, dict[str, int]]:
        with compiled_code_eager(), ways.applied(model) as asked:
            if settings.strict_inputs:
                check_runs(case, model, inputs.fresh(), meta=settings.meta,
                           placed=("cpu", "float32") if settings.meta else (settings.device, settings.dtype))
            forward_s, output, _ = _time_forward(model, inputs, settings.device)  # (the reference says if it needs autograd)
        return forward_s, output, asked

    def trial_with_workarounds() -> tuple[float, Any, MetaWorkarounds]:
        """The trial; on meta, with the ways round a failure there that it needs."""
        none = MetaWorkarounds()
        try:
            forward_s, output, _ = trial(none)
            return forward_s, output, none
        except Exception as exc:
            if not settings.meta:
                raise
            (forward_s, output, _), ways = run_on_meta(trial, exc, lambda tried: tried[2])
            return forward_s, output, ways

    try:
        try:
            forward_s, output, ways = trial_with_workarounds()
        except Exception as exc:
            rebuilt = rebuilt_with_empty_weights(case, exc) if built_under_device else None
            if rebuilt is None:
                raise
            model, inputs, note = rebuilt  # (what the trial runs from here on)
            if mode is not None:
                set_mode(model, mode == "train")
            try:
                forward_s, output, ways = trial_with_workarounds()
            except Exception:  # noqa: BLE001 - the first failure is the one to report, as it was raised
                raise exc from exc.__cause__
            notes += (note,)
        notes += ways.notes()
    except UserError as exc:
        if settings.failure_stops:
            raise
        return failed(str(exc))
    except Exception as exc:  # noqa: BLE001
        if settings.meta:
            from flopaudit.execution.meta import meta_failure

            message = f"model{meta_failure(exc, inputs.describe())}"
        else:
            said = exc if str(exc).strip() else first_line(exc)  # (a bare assert: the statement and where)
            message = (f"model failed to run: {type(exc).__name__}: {said}{batch_statistics_hint(exc)}"
                       f"{placement_hint(settings.device, settings.dtype)}")
        return failed(message)
    if settings.pass_.loss is not None or settings.pass_.optimizer is not None:
        from flopaudit.training import check_loss, check_optimizer

        try:
            with torch.no_grad():
                check_loss(settings.pass_.loss, output)
            check_optimizer(settings.pass_.optimizer)
        except UserError as exc:
            if loss_stops or settings.failure_stops:
                raise
            return failed(str(exc))
    del output
    info = CaseInfo(
        case.id, tags, inputs.describe(), inputs.batch_size, case.expected_macs, case.expected_params,
        None if settings.meta else forward_s,
    )
    placed = (settings.device, settings.dtype) != ("cpu", "float32") and not settings.meta
    placement = (("device", settings.device), ("dtype", settings.dtype)) if placed else ()
    return PreparedCase(case.id, info, model, inputs, settings.meta, notes, placement, settings.pass_, ways)


def count_prepared(
    prepared: PreparedCase,
    backend: str,
    *,
    timeout: float | None = None,
    isolate: bool = False,
    max_memory_gb: float | None = None,
) -> CountResult:
    """Count a prepared case with one backend (a failed build gives its error).

    On the meta device a backend that cannot count there gets status
    ``not applicable`` with the reason; the others carry a ``device='meta'``
    option and the notes of :mod:`flopaudit.execution.meta`. ``isolate``
    forks a child per count (Dask workers); supervised workers count in
    their own process (the supervisor guards them).
    """
    if prepared.model is None or prepared.inputs is None:
        return failed_result(prepared.case_id, backend, Status.ERROR, prepared.info.error or "model not built")
    if not prepared.meta:
        r = count_one(backend, prepared.model, prepared.inputs, model_name=prepared.case_id, timeout=timeout,
                      isolate=isolate, max_memory_gb=max_memory_gb, pass_=prepared.pass_)
        if prepared.notes:
            r = dataclasses.replace(r, warnings=r.warnings + prepared.notes, notes=r.notes + prepared.notes)
        if not prepared.placement:
            return r
        return dataclasses.replace(r, options=tuple(sorted(r.options + tuple((k, repr(v)) for k, v in prepared.placement))))
    with prepared.meta_workarounds.applied(prepared.model):
        return count_on_meta(backend, prepared.model, prepared.inputs, model_name=prepared.case_id, timeout=timeout,
                             isolate=isolate, max_memory_gb=max_memory_gb, pass_=prepared.pass_, notes=prepared.notes)


def count_on_meta(
    backend: str,
    model: nn.Module,
    inputs: ModelInputs,
    *,
    model_name: str = "",
    timeout: float | None = None,
    isolate: bool = True,
    max_memory_gb: float | None = None,
    pass_: Pass | None = None,
    notes: tuple[str, ...] = (),
) -> CountResult:
    """:func:`count_one` for a model on the meta device: a backend that cannot count there gets
    status ``not applicable`` with the reason; the others carry a ``device='meta'`` option and the
    backend's meta note, after ``notes``."""
    from flopaudit.adapters import get_backend
    from flopaudit.execution.meta import meta_support

    support = meta_support(backend)
    described = get_backend(backend)
    if not described.available():  # (not installed: said as on the CPU, before anything about meta)
        return failed_result(model_name, backend, Status.NOT_APPLICABLE, described.missing_reason(), inputs.batch_size)
    if not support.allowed:
        return failed_result(model_name, backend, Status.NOT_APPLICABLE,
                             f"cannot count on the meta device: {support.note}", inputs.batch_size)
    r = count_one(backend, model, inputs, model_name=model_name, timeout=timeout, isolate=isolate,
                  max_memory_gb=max_memory_gb, pass_=pass_)
    notes = notes + ((support.note,) if support.note and r.ok else ())
    return dataclasses.replace(
        r, options=tuple(sorted(r.options + (("device", repr("meta")),))), warnings=r.warnings + notes,
        notes=r.notes + notes,
    )


def measure_prepared(prepared: PreparedCase, request: CostRequest) -> ModelCost:
    """Measure a prepared case's cost (:func:`flopaudit.measure.cost.measure_cost`); a case that did
    not build, or lives on the meta device, gives a record saying so."""
    from flopaudit.measure.cost import measure_cost
    from flopaudit.measure.records import failed_cost

    if prepared.model is None or prepared.inputs is None:
        return failed_cost(prepared.case_id, Status.ERROR, prepared.info.error or "model not built")
    if prepared.meta:
        return failed_cost(prepared.case_id, Status.NOT_APPLICABLE,
                           "a model on the meta device computes nothing to time (run it without --meta)")
    try:
        return measure_cost(prepared.model, prepared.inputs, request, name=prepared.case_id)
    except Exception as exc:  # noqa: BLE001 - a failed measurement is a status
        return failed_cost(prepared.case_id, Status.ERROR, f"measuring failed: {_first_line(exc)}")
