"""fvcore's ``FlopCountAnalysis``: a JIT trace with per-op formulas.

What fvcore 0.1.5 counts (verified by probes on torch 2.14; N batch, K kernel
elements, g groups, numel(x)/numel(y) an op's input/output elements). fvcore
counts "one fused multiply-add as one flop", so its number is MACs for the
whole batch:

* conv: ``N * prod(w.shape) * prod(y.shape[2:])``, i.e.
  ``numel(y) * (Cin/g) * K``; bias not counted. Transposed conv uses the
  *input* spatial size: ``numel(x) * (Cout/g) * K``.
* linear / addmm: ``prod(x.shape) * out_features`` (all leading dims), no bias.
* matmul / ``@`` / mm: ``prod(a.shape) * b.shape[-1]`` (so a batch carried
  only by the second operand is missed, and ``matrix @ vector`` raises
  IndexError); bmm ``n*c*t*d``; baddbmm is unsupported; einsum: numpy's
  optimal-path flop estimate / 2, floored (returned as a float).
* batch_norm eval: ``numel(x) * (2 if affine else 1)``; train:
  ``numel(x) * (5 if affine else 4)`` (and the ``num_batches_tracked``
  ``add_`` is listed as unsupported). layer_norm / group_norm:
  ``numel(x) * (5 if affine else 4)``; instance_norm likewise.
* adaptive_avg_pool2d: ``numel(x)``; upsample nearest2d ``numel(y)``,
  bilinear2d ``4 * numel(y)``; grid_sampler ``4 * numel(y)``.
* relu, dropout, views, cat... are ignored (count 0, not listed).
* everything else that reaches the trace (gelu, softmax, max_pool2d, add,
  mul, embedding, lstm, gru, scaled_dot_product_attention...) counts 0 and
  is listed in :attr:`~flopaudit.records.CountResult.unsupported` with the
  number of times it ran.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._failures import meta_trace_refusal, named_failure, traced_branch_failure
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.errors import NotApplicable
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

BACKEND = Backend(
    name="fvcore",
    adapter="FvcoreAdapter",
    description="fvcore FlopCountAnalysis: torch.jit trace, per-op MAC formulas; unhandled ops listed as unsupported",
    unit=Unit.MAC,
    granularity=Granularity.JIT_TRACE,
    module="fvcore",
    distribution="fvcore",
    install="pip install fvcore",
    ruleset="flopaudit.reference.backend_rulesets.fvcore",
    # Same MACs and params on meta as on CPU wherever its trace runs there (probed on the hard cases,
    # the transformers configs and the light torchvision and timm models) but attention-frozen-fast-path;
    # a trace through a convolution's meta kernel fails, and that count is not applicable
    # (meta_trace_refusal).
    meta=MetaSupport(True, "counted on the meta device, where nn.MultiheadAttention does not take its fused "
                     "inference fast path: attention work this backend misses on CPU is counted on meta"),
    order=40,
    known_divergences={
        "skipped-rows-mask": "fvcore fails: torch.jit.trace records mask.masked_fill(skip, True), a Python bool as "
        "the value, by a schema that torch's alias analysis has none for (RuntimeError: We don't have an op for "
        "aten::masked_fill but it isn't a special case)",
        "query-vector-pooling": "fvcore fails: its matmul handle reads the second operand's next-to-last dimension, "
        "which a 1-D query vector lacks (IndexError: list index out of range)",
        "forces-from-an-energy": "fvcore fails: torch.jit.trace through torch.autograd.grad inside the forward "
        "meets the gradient, a tensor that requires grad and is neither an input nor a parameter, which a trace "
        "must hold as a constant (RuntimeError: Cannot insert a Tensor that requires grad as a constant)",
        "batched-grad-jacobian-trace": "fvcore fails: torch.jit.trace through torch.autograd.grad given "
        "grad_outputs, whose size check a trace cannot run (AssertionError: unexpected sym_eq between Tensor Tensor)",
        "vmap-ensemble": "fvcore fails: torch.jit.trace under torch.func.functional_call (run by vmap here), which "
        "refuses to run while a trace records (RuntimeError: The stateless API can't be used with Jitted modules)",
        "jagged-token-mlp": "fvcore fails: torch.jit.trace of a jagged nested tensor calls aten::size on it, which "
        "it refuses (RuntimeError: NestedTensor does not support directly calling torch.ops.aten.size)",
        "compiled-submodules": "fvcore fails: torch.jit.trace refuses a module wrapped by torch.compile, even one "
        "running eagerly (RuntimeError: Detected that you are using FX to torch.jit.trace a dynamo-optimized "
        "function)",
        "lstm-dynamic-quantized": "fvcore fails: torch.jit.trace cannot trace aten::quantized_lstm, whose packed weights are TorchScript objects (__torch__.torch.classes.rnn.CellParamsBase), not tensors (RuntimeError: Only tensors ... can be inputs to traced functions)",
        "repacks-weight-on-first-call": "fvcore fails: its JIT trace takes the weight as a graph input with "
        "the shape it had before the forward repacked it, and its matmul handle asserts that the shapes chain "
        "(AssertionError: [[4, 16], [8, 16]])",
        "csr-adjacency": "fvcore fails: its matmul handle reads the shapes the trace records, and a trace "
        "records none for a sparse CSR tensor (TypeError: 'NoneType' object is not subscriptable)",
        "gcn-sparse-adjacency": "fvcore fails: its matmul handle reads the shapes the trace records, and a "
        "trace records none for a sparse tensor (TypeError: 'NoneType' object is not subscriptable)",
        "static-quantized-residual": "fvcore fails: torch.jit.trace takes every state_dict entry as a graph "
        "input, and the quantized Linear keeps its weights' dtype there (fc._packed_params.dtype, a torch.dtype, "
        "not a tensor: RuntimeError: Only tensors ... can be inputs to traced functions. Got int)",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "fvcore fails: its trace registers scope hooks on every module, "
                        "which a ScriptModule refuses"),
    },
)


def _number(value: Any) -> int | float:
    """A plain Python number (fvcore may hand back numpy scalars)."""
    return value.item() if hasattr(value, "item") else value


@contextlib.contextmanager
def called_modules(model: nn.Module) -> Iterator[set[int]]:
    """Record ``id()`` of every module of ``model`` called (via ``__call__``) inside the block."""
    import torch

    called: set[int] = set()
    handles = [m.register_forward_pre_hook(lambda mod, args: called.add(id(mod))) for m in model.modules()
               if not isinstance(m, torch.jit.ScriptModule)]  # ScriptModules refuse hooks
    try:
        yield called
    finally:
        for h in handles:
            h.remove()


class FvcoreAdapter(Adapter):
    """``fvcore.nn.FlopCountAnalysis`` on the model, traced with ``torch.jit``.

    ``raw_total`` is ``FlopCountAnalysis.total()`` as returned (an int, or a
    float once an einsum is involved); ``macs`` is the same number rounded to
    an int: fvcore already counts MACs for the whole batch. Its total
    includes fvcore's norm, pooling and upsampling formulas (module
    docstring), which are not MACs in this project's vocabulary.

    ``per_module`` is ``by_module()`` (each module includes its descendants;
    an op run by a shared module is charged to its first name, fvcore's
    ``"owner"`` ancestor mode), ``per_op`` is ``by_operator()`` with fvcore's
    op names (``conv``, ``linear``, ``matmul``, ``batch_norm``...), and
    ``unsupported`` is ``unsupported_ops()``: ``aten::`` op name -> number
    of calls that fvcore saw and counted as 0. ``params`` is
    ``fvcore.nn.parameter_count(model)[""]``.

    Inputs and outputs: the model is traced through :class:`BoundCall`, which
    takes the input tensors (positional, then keyword) as the traced inputs,
    fixes every other input as a constant, and returns the output's tensors
    flattened; module paths are reported without the wrapper's prefix. A trace
    drops ops whose results never reach the output, so a model that returns
    no tensor counts 0 (said in ``warnings``).

    The model runs in the train/eval mode it is in; in train mode its BN
    running statistics are updated (on the adapter's copy).
    """

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return {
            "unsupported_ops_warnings": False,
            "uncalled_modules_warnings": False,
            "tracer_warnings": "none",
            "ancestor_mode": "owner",
            "op_handles": "fvcore defaults",
            "inputs": "top-level tensors traced; other inputs fixed as constants",
            "outputs": "tensors only, flattened",
        }

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        with warnings.catch_warnings():
            # fvcore's import uses torch.jit.script, which warns on torch 2.x:
            # noise about the import, not about this model's count.
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis, parameter_count
        from torch import nn

        from flopaudit.adapters._binding import BoundCall, user_path

        opts = self.options()
        bound = BoundCall(model, inputs)
        analysis = (
            FlopCountAnalysis(bound, bound.traced_inputs())
            .unsupported_ops_warnings(opts["unsupported_ops_warnings"])
            .uncalled_modules_warnings(opts["uncalled_modules_warnings"])
            .tracer_warnings(opts["tracer_warnings"])
            .ancestor_mode(opts["ancestor_mode"])
        )
        with called_modules(model) as called:
            try:
                raw_total = _number(analysis.total())  # the trace runs here
            except Exception as exc:  # noqa: BLE001 - re-raised, with the node a handle failed on
                refused = meta_trace_refusal(exc)
                if refused is not None:
                    raise NotApplicable(refused) from exc
                cause = _node_priced(exc) or traced_branch_failure(exc, model, inputs)
                if cause is None:
                    raise
                raise named_failure(exc, cause) from exc  # (a failed assert says its check: norm_flop_jit's)
        per_module: dict[str, int] = {}
        for wrapped_name, value in analysis.by_module().items():
            path = user_path(wrapped_name)
            if path is not None:
                per_module[path] = int(round(_number(value)))
        per_op = {str(op): int(round(_number(v))) for op, v in analysis.by_operator().items()}
        unsupported = {str(op): int(n) for op, n in analysis.unsupported_ops().items()}
        messages: list[str] = []
        # fvcore calls a module "uncalled" when no traced op ran in its scope,
        # which includes modules that were called but did nothing (Identity,
        # StochasticDepth in eval) and containers that cannot be called
        # (ModuleList); only callable modules that were never called are noted.
        modules = dict(bound.named_modules())
        uncalled = sorted(
            path
            for name in analysis.uncalled_modules()
            if (path := user_path(name))
            and name in modules
            and id(modules[name]) not in called
            and type(modules[name]).forward is not nn.Module.forward  # containers without forward
        )
        if bound.output_count == 0:
            messages.append(
                "fvcore: the model returned no tensor; the trace drops every op whose result is not returned"
            )
        if uncalled:
            shown = ", ".join(uncalled[:10]) + (f" (+{len(uncalled) - 10} more)" if len(uncalled) > 10 else "")
            messages.append(f"fvcore: submodules never called as modules during the trace (counted 0): {shown}")
        return RawCount(
            raw_total=raw_total,
            macs=int(round(raw_total)),
            params=int(parameter_count(model)[""]),
            per_module=per_module,
            per_op=per_op,
            unsupported=unsupported,
            warnings=messages,
        )


def _node_priced(exc: BaseException) -> str | None:
    """The traced-graph node an fvcore handle failed on: its operator, its inputs' shapes as the
    graph gives them ("no shape" where it has none: a sparse tensor's) and its module scope; None
    where no handle was running."""
    from flopaudit.adapters._binding import user_path
    from flopaudit.adapters._failures import frame_locals
    from flopaudit.inputs import shape_text

    if frame_locals(exc, "fvcore.nn.jit_handles") is None:
        return None
    analysis = frame_locals(exc, "fvcore.nn.jit_analysis", holding="node")
    if analysis is None:
        return None
    node = analysis["node"]
    shapes = []
    for v in node.inputs():
        if v.isCompleteTensor():
            shapes.append(shape_text(v.type().sizes()))
        elif v.type().kind() == "TensorType":
            shapes.append("no shape")
    path = user_path(node.scopeName().split("/")[-1].removeprefix("__module").removeprefix("."))
    where = f" in module '{path}'" if path else " in the model's own forward" if path == "" else ""
    return (f"pricing {analysis.get('kind', node.kind())} on inputs of shape {', '.join(shapes) or '-'}{where} "
            "(shapes as the traced graph has them)")
