"""The one interface every counting backend is wrapped behind."""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin

from flopaudit.errors import NotApplicable
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint, fingerprint_diff, quiet
from flopaudit.records import Breakdown, CountResult, Granularity, RulesetPrediction, Status, Unit, breakdown


@dataclass
class RawCount:
    """What an adapter's ``_count`` extracts from its backend.

    ``raw_total`` is exactly what the backend reported. ``macs``,
    ``per_module`` and ``per_op`` must already be normalised to MACs for the
    whole batch (the adapter knows its backend's convention).
    """

    raw_total: int | float | None
    macs: int | None
    params: int | None = None
    per_module: Mapping[str, int] = field(default_factory=dict)
    per_op: Mapping[str, int] = field(default_factory=dict)
    unsupported: Mapping[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra: Mapping[str, int] = field(default_factory=dict)
    predictions: tuple[RulesetPrediction, ...] = ()


class Adapter(ABC):
    """A counting backend behind one interface.

    Subclasses set the class attributes and implement :meth:`_count`. The
    public :meth:`count` runs it on a deep copy of the model (see
    :attr:`copies_model`), silences the
    backend, records what it printed and warned, notes any change it made to
    the copy (``side_effects``) and turns an exception into a result with
    status ``error`` (or ``not applicable`` for :class:`NotApplicable`).
    """

    name: ClassVar[str]
    """Backend id used on the command line, e.g. ``"fvcore"``."""
    distribution: ClassVar[str]
    """The pip distribution whose version is recorded, e.g. ``"fvcore"``."""
    module: ClassVar[str]
    """The import name that must be importable for the backend to be available."""
    unit: ClassVar[Unit]
    """What the backend's raw number counts, whatever the backend calls it."""
    granularity: ClassVar[Granularity]
    description: ClassVar[str] = ""
    copies_model: ClassVar[bool] = True
    """Count a deep copy (the backend may change the model it is given). Only
    a backend whose :meth:`_count` leaves the model exactly as it was (the
    reference counter: global hooks removed, buffers put back) sets this to
    False and is counted on the model itself; the before/after fingerprint
    is taken all the same and any change is reported."""

    def options(self) -> dict[str, Any]:
        """Every result-changing option this adapter passes to its backend."""
        return {}

    def version(self) -> str:
        """Installed version of the backend's distribution ("" if missing)."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return ""

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    @abstractmethod
    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        """Count ``model(*inputs.args, **inputs.kwargs)``; may change ``model``."""

    def count(
        self,
        model: nn.Module,
        inputs: Any,
        kwargs: Mapping[str, Any] | None = None,
        *,
        model_name: str = "",
    ) -> CountResult:
        """Count one model on one set of inputs; never raises for backend failures.

        The backend works on a deep copy (unless it declares it leaves the
        model alone, see :attr:`copies_model`), so ``model`` is left as it was.
        """
        inputs = ModelInputs.coerce(inputs, kwargs)
        base = dict(
            model=model_name,
            backend=self.name,
            backend_version=self.version(),
            torch_version=torch.__version__,
            unit=self.unit,
            batch_size=inputs.batch_size,
            options=tuple(sorted((k, repr(v)) for k, v in self.options().items())),
        )
        if not self.available():
            return CountResult(status=Status.NOT_APPLICABLE, error=f"{self.distribution} is not installed", **base)
        start = time.perf_counter()
        side_effects: list[str] = []
        caught: list[warnings.WarningMessage] = []
        try:
            work = copy_model(model) if self.copies_model or has_lazy_parameters(model) else model
            before = fingerprint(work, exact=False)
            with quiet() as printed, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                raw = self._count(work, inputs)
            side_effects = fingerprint_diff(before, fingerprint(work, exact=False))
        except NotApplicable as exc:
            return CountResult(
                status=Status.NOT_APPLICABLE, error=str(exc), elapsed_s=time.perf_counter() - start, **base
            )
        except Exception as exc:  # noqa: BLE001 - a failing backend is data
            return CountResult(
                status=Status.ERROR,
                error=f"{type(exc).__name__}: {exc}".strip() + raised_in(exc),
                elapsed_s=time.perf_counter() - start,
                **base,
            )
        elapsed = time.perf_counter() - start
        messages = list(raw.warnings)
        messages += [f"{w.category.__name__}: {w.message}" for w in caught]
        messages += [line.strip() for line in printed.getvalue().splitlines() if line.strip()]
        return CountResult(
            status=Status.OK,
            raw_total=raw.raw_total,
            macs=None if raw.macs is None else int(raw.macs),
            params=raw.params,
            per_module=breakdown(raw.per_module),
            per_op=breakdown(raw.per_op),
            unsupported=breakdown(raw.unsupported),
            warnings=_dedupe(messages),
            side_effects=tuple(side_effects),
            elapsed_s=elapsed,
            extra=breakdown(raw.extra),
            predictions=raw.predictions,
            **base,
        )


def raised_in(exc: BaseException) -> str:
    """`` (raised in <module>, line <n>)``: the innermost frame of ``exc``'s
    traceback that is code of the backend, of flopaudit or of the model, so
    that their failures read apart; '' if there is none. Python's own frames
    and torch's machinery are skipped; torch's layers (``torch.nn.modules.*``
    but the ``Module`` base class, ``torch.nn.functional``) are model code; a
    mode's ``__torch_dispatch__``/``__torch_function__`` passes an operator
    through for whoever called it, so a failing operator is not the mode's."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        top = name.split(".")[0]
        layer = name.startswith(("torch.nn.modules.", "torch.nn.functional")) and name != "torch.nn.modules.module"
        through = tb.tb_frame.f_code.co_name in ("__torch_dispatch__", "__torch_function__")
        if top and top not in sys.stdlib_module_names and (top != "torch" or layer) and not through:
            found = f" (raised in {name}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return found


def has_lazy_parameters(model: nn.Module) -> bool:
    """Whether a lazy module of ``model`` has parameters or buffers not
    materialised yet (a forward pass would materialise them, changing the model)."""
    return any(isinstance(t, UninitializedTensorMixin) for t in (*model.parameters(), *model.buffers()))


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, also for modules holding non-leaf tensors as
    plain attributes (``torch.nn.utils.prune`` and ``weight_norm`` recompute
    ``weight`` from ``weight_orig``/``weight_g`` in a forward pre-hook, and
    tensors that autograd produced refuse ``deepcopy``), or a buffer written
    with autograd on (``self.cache.copy_(y)``): such a tensor is copied
    detached; the hook recomputes the attribute on the next forward. A
    ``torch.jit.script`` function held as an attribute is shared, not copied."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in (*vars(module).values(), *module._buffers.values()):
            if isinstance(value, torch.Tensor) and not value.is_leaf and not isinstance(value, nn.Parameter):
                memo[id(value)] = value.detach().clone()
            elif isinstance(value, torch.jit.ScriptFunction):
                memo[id(value)] = value  # compiled and immutable (and it refuses to be pickled): shared
    return copy.deepcopy(model, memo)


def _dedupe(messages: list[str], limit: int = 50) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for m in messages:
        seen.setdefault(m[:500], None)
    out = list(seen)
    if len(out) > limit:
        out = out[:limit] + [f"... {len(out) - limit} more messages"]
    return tuple(out)


def count_params(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


__all__ = ["Adapter", "RawCount", "Breakdown", "count_params"]
