"""The ptflops ``aten`` backend (``get_model_complexity_info(..., backend="aten")``).

How ptflops' aten engine counts (``ptflops/aten_engine.py``, ``aten_ops.py``,
verified by probes on ptflops 0.7.5): a ``TorchDispatchMode`` sees every aten
op of one forward and counts only six of them, for the whole batch:
``aten.mm``/``aten.matmul`` (``prod(a.shape) * b.shape[-1]``), ``aten.bmm``
(``n*c*t*d``), ``aten.addmm`` (``N*in*out``, plus ``N*out`` for the bias) and
``aten.convolution``/``aten._convolution`` (``N * prod(w.shape) *
prod(spatial)`` of the output, of the input when transposed, plus
``N*Cout*prod(out spatial)`` for a bias). Every other op counts zero.
Counts are kept for the root ("Global") and for each *direct* child of the
root, by the hooks the engine registers on those children (and never removes).
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._ptflops_common import ZERO_OP_ATEN, common_options
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import META_DISPATCH_NOTE, SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

BACKEND = Backend(
    name="ptflops-aten",
    adapter="PtflopsAtenAdapter",
    description="ptflops aten engine: TorchDispatchMode counting mm/bmm/addmm/convolution",
    unit=Unit.MAC,
    granularity=Granularity.ATEN_OPS,
    module="ptflops",
    distribution="ptflops",
    install="pip install ptflops",
    ruleset="flopaudit.reference.backend_rulesets.ptflops_aten",
    # Runs on meta but counts other kernels there: probed differences are vit_b_16, attention-sdpa,
    # mha-cross-kdim, transformer-encoder-eval, the LSTM cases (0 on CPU, the gate matmuls on meta),
    # gru-2layer-batch-first and rnn-relu-bidir-batch-first.
    meta=MetaSupport(True, META_DISPATCH_NOTE),
    order=30,
    known_divergences={
        "params-lazy": "ptflops fails: it counts parameters before the forward, when a lazy module's are still "
        "uninitialised (ValueError); a crash is not predicted",
        "lazy-linear": "ptflops fails: it counts the parameters before the forward pass, and an uninitialised lazy "
        "parameter has no size (ValueError)",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "ptflops fails: its per-module pre-hooks cannot be registered on a "
                        "ScriptModule"),
    },
)

_GLOBAL = "Global"
"""The engine's key for counts of the whole model."""


class PtflopsAtenAdapter(Adapter):
    """ptflops' aten engine, run with the engine's own ``FlopCounterMode``.

    The adapter makes the calls ``get_flops_aten`` makes
    (``get_model_parameters_number``, ``eval()``, ``FlopCounterMode(model,
    verbose, print_per_layer_stat, output_params, custom_hooks, ignored_ops)``,
    one forward inside it) but calls the model itself as
    ``model(*args, **kwargs)``, so several positional inputs and keyword
    inputs need no wrapper, and reads the engine's per-module table.

    * ``raw_total`` is the engine's ``complexity`` (its return value).
    * ``macs`` equals it: the aten engine counts whole-batch MACs (no batch
      division anywhere). NB: its ``addmm`` and ``convolution`` counts include
      one MAC per output element for the bias.
    * ``per_module``: ``""`` (the engine's ``Global``, equal to the total) and
      each direct child of the root by name, inclusive; deeper modules are
      not tracked by the engine.
    * ``per_op``: the engine's ``Global`` table by aten op, e.g.
      ``"aten.addmm"``.
    * ``unsupported``: aten ops the engine reported as "treated as a zero-op",
      with the number of calls. View ops (every output aliases an input and
      nothing is written, e.g. ``aten.view``, ``aten.t``) do no arithmetic and
      are left out.

    NB: like ptflops, the forward runs with autograd enabled (which keeps
    ``nn.MultiheadAttention`` off its fused inference path, whose op the
    engine would count as zero) and leaves the model in eval mode.
    """

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return common_options("aten")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from ptflops.aten_engine import FlopCounterMode, get_model_parameters_number

        ost = io.StringIO()
        params = get_model_parameters_number(model)
        model.eval()
        output_params: defaultdict[str, dict[str, Any]] = defaultdict(dict)
        output_params["serialize_params"] = {"units": None, "precision": 2}
        output_params["print_params"] = {"file": ost}
        counter = FlopCounterMode(model, True, False, output_params, {}, [])
        with counter:
            model(*inputs.args, **inputs.kwargs)
        total = counter.complexity

        tables = {key: {str(op): count for op, count in ops.items()} for key, ops in counter.flop_counts.items()}
        per_module = {"": sum(tables.get(_GLOBAL, {}).values())}
        for child_name, _child in model.named_children():
            per_module[child_name] = sum(tables.get(child_name, {}).values())
        messages = ost.getvalue().splitlines()
        zero_ops = Counter(m.group(1) for m in map(ZERO_OP_ATEN.search, messages) if m)
        unsupported = {op: n for op, n in zero_ops.items() if not _is_view_op(op)}
        return RawCount(
            raw_total=total,
            macs=int(total),
            params=int(params),
            per_module=per_module,
            per_op=tables.get(_GLOBAL, {}),
            unsupported=unsupported,
            warnings=[m.strip() for m in messages if (hit := ZERO_OP_ATEN.search(m)) and hit.group(1) in unsupported],
        )


_QUALIFIED = re.compile(r"^(\w+)\.(\w+)$")


def _is_view_op(qualified_name: str) -> bool:
    """``"aten.view"`` -> True: every return of its first overload aliases an input, read-only."""
    import torch

    match = _QUALIFIED.match(qualified_name)
    if not match:
        return False
    namespace, op_name = match.groups()
    try:
        packet = getattr(getattr(torch.ops, namespace), op_name)
        overloads = packet.overloads()
        schema = getattr(packet, overloads[0])._schema
    except (AttributeError, IndexError, RuntimeError):
        return False
    returns = schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


__all__ = ["PtflopsAtenAdapter"]
