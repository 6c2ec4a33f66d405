"""PyTorch's own ``torch.utils.flop_counter.FlopCounterMode``.

What it counts (torch 2.14, verified by probes on CPU): a
``TorchDispatchMode`` sees every aten op and adds the op's registered
formula, in FLOPs = 2 x MACs; ops without a formula first try to decompose
into ops that have one, otherwise they count 0 and are not listed anywhere.

* mm / addmm / bmm / baddbmm: ``2 * m * k * n`` (bias of addmm not
  counted); ``nn.Linear`` on any input rank reaches addmm/mm with all
  leading dims flattened; ``torch.matmul``, ``@`` and ``einsum`` decompose
  to mm/bmm.
* convolution: ``2 * N * Cout * (Cin/g) * K * prod(y.shape[2:])``, no bias;
  transposed: the same with the *input* spatial size.
* ``matrix @ vector`` reaches ``aten.mv``, which has no formula: 0.
* the fused SDPA kernels of CUDA (flash, efficient, cuDNN) have a formula,
  ``2 * 2 * B*H*Lq*Lk*D`` (read from the source; not probed here), but the
  CPU kernel ``_scaled_dot_product_flash_attention_for_cpu`` has none: 0.
  The CPU LSTM kernel ``mkldnn_rnn_layer`` has no formula either: 0 (GRU
  decomposes to mm/addmm and is counted). ``nn.MultiheadAttention`` in eval
  mode with autograd off takes the fused ``_native_multi_head_attention``
  path: 0 in all; with autograd on its projections are counted (its
  attention product only when ``need_weights=True``, via bmm).
* norms, activations, pools, softmax, interpolation, embedding and
  elementwise ops: 0.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from flopaudit.adapters.base import Adapter, RawCount, count_params
from flopaudit.adapters.descriptor import META_DISPATCH_NOTE, Backend, MetaSupport
from flopaudit.module_paths import first_names, relative_path
from flopaudit.records import Granularity, PhaseCount, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import Pass

BACKEND = Backend(
    name="torch-flop-counter",
    adapter="TorchFlopCounterAdapter",
    description="torch.utils.flop_counter.FlopCounterMode: aten dispatch, FLOPs = 2 x MACs for mm/bmm/conv/sdpa only",
    unit=Unit.FLOP,
    granularity=Granularity.ATEN_OPS,
    module="torch.utils.flop_counter",
    distribution="torch",
    install="pip install 'torch>=2.1'",
    ruleset="flopaudit.reference.backend_rulesets.torch_flop_counter",
    # Runs on meta but counts other kernels there: probed differences are vit_b_16, attention-sdpa,
    # mha-cross-kdim, transformer-encoder-eval and the LSTM cases (0 on CPU, the gate matmuls on meta).
    meta=MetaSupport(True, META_DISPATCH_NOTE),
    unit_note="reports FLOPs (2 per multiply-add); normalised to MACs by halving",
    known_divergences={
        "forces-from-an-energy": "torch-flop-counter fails: torch's module tracker hooks the gradient of each "
        "module input, and that hook does not support a leaf reached inside the forward's autograd.grad",
        "batched-grad-jacobian-trace": "torch-flop-counter fails: torch's module tracker hooks the gradient of "
        "each module input, and that hook does not support a leaf reached inside the forward's autograd.grad",
        "jagged-token-mlp": "torch-flop-counter fails: FlopCounterMode and a jagged nested tensor's own "
        "__torch_dispatch__ each leave aten::sym_is_contiguous to the other (TypeError: Multiple dispatch failed)",
    },
    order=60,
    passes=("inference", "train"),
)

class PhaseTotals:
    """:class:`~flopaudit.training.StepHooks` reading a ``FlopCounterMode``'s total at each phase boundary."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.marks: list[tuple[str, int]] = []

    def phase(self, name: str) -> None:
        self.marks.append((name, int(self.counter.get_total_flops())))

    def optimizer_tensors(self, owners: Any) -> None:
        pass

    def phases(self) -> tuple[PhaseCount, ...]:
        """FLOPs between consecutive marks, halved to MACs, per phase (phases with nothing in them kept)."""
        out = []
        for (name, start), (_, end) in zip(self.marks, self.marks[1:]):
            if name:
                out.append(PhaseCount(name, (end - start) // 2))
        return tuple(out)


GLOBAL = "Global"
"""``get_flop_counts()`` key for everything counted inside the context."""


def tracker_paths(model: nn.Module, known: Any) -> dict[str, str]:
    """Map ``ModuleTracker`` names (``"Net.blocks.0"``) to dotted paths (``"blocks.0"``).

    ``known`` is the tracker's ``module -> name`` map; each module is looked
    up by identity in ``model.named_modules()``, so a shared module maps to
    its first name. Tracker names of modules outside ``model`` are left out.
    """
    paths = first_names(model)
    out: dict[str, str] = {}
    for module, tracker_name in list(known.items()):
        path = paths.get(id(module))
        if path is not None:
            out[str(tracker_name)] = path
    return out


class TorchFlopCounterAdapter(Adapter):
    """``FlopCounterMode(depth=None, display=False)`` around one forward call.

    ``raw_total`` is ``get_total_flops()`` (FLOPs, whole batch); ``macs`` is
    ``raw_total // 2``: every formula it has for a forward op is
    ``2 * multiply-accumulates``, so the total is even (an odd total is kept
    as floor and reported in ``warnings``). ``per_op`` is the ``"Global"`` row
    of ``get_flop_counts()`` by op name (``aten.mm``, ``aten.convolution``...)
    and ``per_module`` the module rows (each including its descendants and
    charged to the modules running at the time), both halved to MACs. Module
    rows are keyed by ``ModuleTracker`` names (root class name, then child
    names); they are mapped back to dotted paths with ``""`` for the root.

    ``params``: FlopCounterMode counts no parameters, so this adapter counts
    the unique parameters itself (``sum(p.numel() for p in
    model.parameters())``, tied weights once). ``unsupported`` stays empty:
    the backend drops ops without a formula silently.

    The model is called as ``model(*args, **kwargs)`` in its own train/eval
    mode with autograd enabled (the way torch's documentation uses the
    counter; with ``grad_enabled=False``, inference fast paths such as
    ``nn.MultiheadAttention``'s fused kernel run instead and count 0).

    A training step (:meth:`_count_train`) is :func:`flopaudit.training.train_step`
    inside the mode (forward, loss, backward, optimizer step on a copy of the
    model), as torch's documentation counts a training step; ``phases`` holds
    the counter's total between phase boundaries, halved.
    """

    backend = BACKEND

    def __init__(self, grad_enabled: bool = True) -> None:
        self.grad_enabled = grad_enabled

    def options(self) -> dict[str, Any]:
        return {"depth": None, "display": False, "grad_enabled": self.grad_enabled}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        opts = self.options()
        counter = FlopCounterMode(depth=opts["depth"], display=opts["display"])
        grad = contextlib.nullcontext() if self.grad_enabled else torch.no_grad()
        with grad, counter:
            model(*inputs.args, **inputs.kwargs)
        return self._raw(counter, model)

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        from torch.utils.flop_counter import FlopCounterMode

        from flopaudit.training import train_step

        opts = self.options()
        counter = FlopCounterMode(depth=opts["depth"], display=opts["display"])
        marks = PhaseTotals(counter)
        with counter:
            notes = train_step(model, inputs, step, hooks=marks).notes
        raw = self._raw(counter, model)
        raw.warnings.extend(notes)
        raw.phases = marks.phases()
        return raw

    def _raw(self, counter: Any, model: nn.Module) -> RawCount:
        """What the adapter reports of a counter's counts."""
        counts = counter.get_flop_counts()
        raw_total = int(counter.get_total_flops())
        messages: list[str] = []
        if raw_total % 2:
            messages.append(f"FlopCounterMode total {raw_total} is odd; macs is its floor half")

        per_op = {str(op): int(v) // 2 for op, v in counts.get(GLOBAL, {}).items()}
        # NB: ModuleTracker's module -> name map is private; where it is
        # missing, names are mapped by stripping the root's class name, which
        # misplaces a shared module that the tracker renamed after a later parent.
        known = getattr(getattr(counter, "mod_tracker", None), "_known_modules", None)
        by_identity = tracker_paths(model, known) if known is not None else None
        root_name = type(model).__name__
        per_module: dict[str, int] = {}
        for tracker_name, ops in counts.items():
            if tracker_name == GLOBAL:
                continue
            if by_identity is not None:
                path = by_identity.get(tracker_name)
            else:
                path = relative_path(tracker_name, root_name)  # "Net.a.b" -> "a.b"
            if path is None:
                continue
            per_module[path] = per_module.get(path, 0) + sum(int(v) for v in ops.values()) // 2
        return RawCount(
            raw_total=raw_total,
            macs=raw_total // 2,
            params=count_params(model),
            per_module=per_module,
            per_op=per_op,
            warnings=messages,
        )
