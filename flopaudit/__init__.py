"""flopaudit: audit PyTorch FLOP/MAC/parameter counters against each other.

Python API::

    import flopaudit
    frame = flopaudit.audit(model, torch.randn(1, 3, 224, 224))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__version__ = "0.1.0"


def audit(
    model: Any,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    backends: Iterable[str] | None = None,
    timeout: float | None = 120.0,
    isolate: bool = True,
    pass_: str = "inference",
    loss: str | Callable[[Any], Any] | None = None,
    optimizer: str | Callable[[Any], Any] | None = None,
) -> Any:
    """Count ``model(*inputs, **kwargs)`` with each backend; return a DataFrame.

    ``inputs``: a tensor, a tuple or list of positional arguments (a model taking
    one list of images is given ``([image],)``), or a mapping of keyword
    arguments (``model(**batch)``; a tokenizer's output too).

    ``pass_="train"`` counts one training step instead (forward, the loss
    ``loss``: a function of the model's output returning a scalar tensor
    (``lambda out: out.loss``), ``"module:function"`` naming one, or by
    default the sum of the floating outputs; its
    backward, and with ``optimizer`` one optimizer step: a ``torch.optim`` name
    such as ``"adamw"`` (:data:`flopaudit.passes.OPTIMIZERS`), or your own, a
    function of the list of parameters returning an optimizer, or
    ``"module:function"`` naming one), with the backends that count training steps unless
    ``backends`` says otherwise (see :mod:`flopaudit.passes`).

    One row per backend with integer ``macs`` (normalised to multiply-
    accumulates for the whole batch), ``params``, ``ratio_to_reference``,
    ``status`` and ``error``, and the report's judgement: ``classification``
    (``agrees``, ``unit``, ``rule``, ``unsupported``, ...), ``causes`` (each
    cause with its share of the canonical count) and ``verdict`` (on the
    reference's row: which counters to use). :func:`layers` gives the same
    counts layer by layer. The model is never modified. Each count runs in a
    child process bounded by ``timeout`` seconds unless ``isolate`` is False.
    """
    from flopaudit.run import audit_model

    return audit_model(model, inputs, kwargs, backends=backends, timeout=timeout, isolate=isolate, pass_=pass_,
                       loss=loss, optimizer=optimizer).to_frame()


def layers(model: Any, inputs: Any, kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """Count like :func:`audit` (same ``backends``, ``timeout``, ``isolate``
    options) and return the per-layer table: one row per (backend, layer)
    with the layer's canonical ``reference_macs``, the backend's own ``macs``
    for it, its ruleset's ``predicted_macs``, the ``difference`` and the
    largest ``cause`` booked to it (see :func:`flopaudit.frame.layers_frame`).
    It counts again: for both tables from one count,
    ``run = flopaudit.run.audit_model(...)`` then
    ``flopaudit.frame.results_frame(run)`` and ``layers_frame(run)``.
    """
    from flopaudit.frame import layers_frame
    from flopaudit.run import audit_model

    return layers_frame(audit_model(model, inputs, kwargs, **options))


def audit_zoo(
    models: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    *,
    backends: Iterable[str] | None = None,
    full: bool = False,
    timeout: float | None = 120.0,
    pass_: str = "inference",
    loss: str | None = None,
    optimizer: str | None = None,
) -> Any:
    """Audit zoo cases chosen by id, glob (``"resnet*"``) or tag; return a DataFrame.

    With neither ``models`` nor ``tags`` the default zoo is used (``full=True``:
    every case). Rows as in :func:`audit`, one per (model, backend);
    ``pass_``, ``loss``, ``optimizer`` as in :func:`audit`.
    """
    from flopaudit.execution.refs import CaseRef
    from flopaudit.run import run_audit
    from flopaudit.zoo import select_cases

    cases = [CaseRef(c.id) for c in select_cases(list(models or ()), list(tags or ()), full=full)]
    return run_audit(cases, list(backends) if backends else None, timeout=timeout, pass_=pass_, loss=loss,
                     optimizer=optimizer).to_frame()


def cost(
    model: Any,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    name: str = "model",
    warmup: int = 1,
    reps: int = 10,
    layer_passes: int = 3,
    ceilings: bool = True,
    timeout: float | None = 600.0,
    isolate: bool = True,
) -> Any:
    """Measure ``model(*inputs, **kwargs)``: latency, FLOPs, traffic, per-layer time; return a DataFrame.

    Measured where the model is (its device and dtype): ``warmup``
    untimed passes, then ``reps`` timed ones and, among them,
    ``layer_passes`` passes timed module by module; a reference count for
    the FLOPs, MACs, parameters and the bytes each operator reads and
    writes; the peak memory of a pass; and, with ``ceilings``, the
    machine's peak FLOP/s (a large matmul) and bandwidth (a large copy) on
    the same device and dtype. The rows are described in
    :func:`flopaudit.frame.cost_frame`: the model first (``scope ==
    "model"``), then its layers, most time first, then the overhead. The
    model is not modified. With ``isolate`` (default) everything runs in a
    child forked from this process, bounded by ``timeout`` seconds, on one
    torch thread (an OpenMP thread pool does not survive ``fork``); with
    ``isolate=False`` in this process, on its torch threads. The
    ``threads`` column says which.
    """
    from flopaudit.execution.protocol import CostRequest
    from flopaudit.frame import cost_frame
    from flopaudit.run import cost_model

    request = CostRequest(warmup=warmup, reps=reps, layer_passes=layer_passes, ceilings=ceilings)
    return cost_frame([cost_model(model, inputs, kwargs, name=name, request=request, timeout=timeout,
                                  isolate=isolate)])


__all__ = ["audit", "audit_zoo", "cost", "layers", "__version__"]
