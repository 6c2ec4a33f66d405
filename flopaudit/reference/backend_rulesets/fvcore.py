"""fvcore's ``FlopCountAnalysis`` (fvcore 0.1.5) as a ruleset.

fvcore traces the model with ``torch.jit`` and prices each traced op with the
handles in ``fvcore/nn/flop_count.py`` ``_DEFAULT_SUPPORTED_OPS``
(``fvcore/nn/jit_handles.py``); every other op counts 0. It counts "one fused
multiply-add as one flop", so its total is MACs for the whole batch, like the
adapter's ``macs``. The trace runs with autograd on (fvcore does not wrap it
in ``no_grad``), so the ruleset reads a recording made with autograd on.

The trace records ops *above* autograd (``aten::linear``, ``aten::matmul``,
``aten::einsum``, ``aten::batch_norm``, ``aten::adaptive_avg_pool2d``); the
reference records what they reach the dispatcher as (``addmm``/``mm``/``bmm``,
``native_batch_norm``, ``mean.dim``...). Where the two views price the same,
dispatcher events are priced directly; where they do not, the recording is
made with the Python entry points wrapped (``patched_functions``) and the
``py:`` call event is priced by fvcore's handle, the ops inside it counting 0:

* contractions reaching ``mm``, ``addmm``, ``bmm`` (``linear``, ``mm``,
  ``bmm``) and ``convolution``: the canonical MACs, bias excluded
  (``addmm_flop_jit``, ``linear_flop_jit``, ``matmul_flop_jit``,
  ``bmm_flop_jit``, ``conv_flop_jit``: transposed convolutions by input
  size, as the reference).
* ``torch.matmul`` / ``Tensor.matmul`` / ``@``: ``prod(a.shape) *
  b.shape[-1]`` (``matmul_flop_jit``): a batch that only the second operand
  carries is missed.
* ``torch.einsum``: numpy's optimal-path flop estimate / 2, floored
  (``einsum_flop_jit``), except two equations fvcore prices by hand; about
  the MACs for two-operand contractions that sum an index, not for outer
  products or longer chains (numpy's path is not torch's), and rounded to 4
  significant digits (fvcore parses numpy's printed ``%.3e`` report).
* ``F.conv1d/2d/3d`` (or ``torch.conv1d/2d/3d``) with a string ``padding``
  (``"same"``, ``"valid"``) is traced as ``aten::_convolution_mode``, which
  has no handle: 0.
* ``baddbmm``, ``mv``, ``dot``, ``addbmm``... have no handle: 0, listed as
  unsupported. So has ``F.scaled_dot_product_attention``, which the trace
  records as one ``aten::scaled_dot_product_attention`` node whatever kernel
  runs: the call is wrapped and everything inside it counts 0 (with autograd
  on and a float mask that requires grad, T5's learned position bias, torch
  runs it as its math decomposition, ``bmm`` and ``softmax``, which fvcore
  would price if it saw them).
* ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` are one ``aten::lstm``/``gru``/
  ``rnn_*`` op in the trace, without a handle: 0 (whatever the reference saw
  inside them). The cells (``LSTMCell``...) are traced as their matmuls.
* batch norm: ``numel(x) * (2 if affine else 1)`` in eval,
  ``numel(x) * (5 if affine else 4)`` with batch statistics
  (``batchnorm_flop_jit``); layer norm, group norm and ``F.instance_norm``
  ``numel(x) * (5 if affine else 4)`` (``norm_flop_counter``), the last
  whatever statistics it uses.
* ``upsample_nearest2d``: ``numel(y)``; ``upsample_bilinear2d``:
  ``4 * numel(y)``; ``grid_sampler``: ``4 * numel(y)``
  (``elementwise_flop_counter``).
* ``F.adaptive_avg_pool2d``: ``numel(x)`` whatever the output size (torch
  computes a ``1 x 1`` output as a ``mean``; an explicit ``mean`` counts 0);
  ``adaptive_avg_pool1d``/``3d``: 0.
* everything else (activations, softmax, max/avg pools, elementwise,
  embedding): 0.
* a ``torch.library`` custom op is one opaque node in the trace, and so is a
  custom ``torch.autograd.Function`` (``prim::PythonOp``) and a call of a
  ``torch.jit.script`` function (``prim::CallFunction``; the recording wraps
  ``ScriptFunction.__call__``): the ops they dispatch (recorded by the
  reference) count 0. A scripted *module* makes fvcore fail (its trace hooks
  every submodule, and ScriptModules refuse hooks). Code that takes another
  branch under a trace into a ``torch.jit._script_if_tracing`` function is
  opaque the same way: torchvision's ``paste_masks_in_image`` (Mask R-CNN's
  bilinear mask pasting, one resize per detection) is wrapped where the
  detection transform calls it and counts 0, and so do the two steps of
  ``torchvision.ops.batched_nms``; its other tracing branches (box coding,
  ROI level merging) run no op fvcore prices.
* the trace keeps only work whose result reaches the output (or is written
  to a parameter, buffer or input): ``drops_dead_code``, see
  :mod:`flopaudit.reference.liveness`.

# NB: the Python entry points are caught where the model calls them through
# the attributes patched here (``torch.matmul``, ``torch.Tensor.matmul``,
# ``@``, ``torch.einsum``, ``torch.convNd``, ``torch.instance_norm``, their
# ``torch.nn.functional`` names and the ``torch.ops.aten`` operators an exported
# graph calls, ``aten.einsum`` aside); a name bound before the recording (``from
# torch import einsum``) or ``torch._C._nn.adaptive_avg_pool2d`` is priced
# from its dispatcher ops (a ``1 x 1`` adaptive pool then counts 0).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from flopaudit.records import CauseKind
from flopaudit.reference.engine import PATCHED_CALL_PREFIX, OpEvent, TensorArg
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import (
    EventRule,
    Ruleset,
    affine_norm,
    aten_calls,
    call_arg,
    elementwise,
    event_counter,
    patched_call_rules,
    register_ruleset,
    string_padding,
    traced_call_sites,
)
from flopaudit.reference.rulesets import numel as _numel

MATMUL_CALLS = traced_call_sites("torch.matmul", "torch.Tensor.matmul", "torch.Tensor.__matmul__",
                                 *aten_calls("matmul"))
EINSUM_CALLS = traced_call_sites("torch.einsum")
CONV_CALLS = traced_call_sites("torch.nn.functional.conv1d", "torch.nn.functional.conv2d",
                               "torch.nn.functional.conv3d", "torch.conv1d", "torch.conv2d", "torch.conv3d",
                               *aten_calls("conv1d", "conv2d", "conv3d"))
POOL_CALLS = traced_call_sites("torch.nn.functional.adaptive_avg_pool2d", *aten_calls("adaptive_avg_pool2d"))
ZERO_CALLS = traced_call_sites("torch.nn.functional.adaptive_avg_pool1d", *aten_calls("adaptive_avg_pool1d"))
INSTANCE_NORM_CALLS = traced_call_sites("torch.nn.functional.instance_norm", "torch.instance_norm",
                                        *aten_calls("instance_norm"))
SCRIPT_CALLS = ("torch._C.ScriptFunction.__call__",)
SDPA_CALLS = traced_call_sites("torch.nn.functional.scaled_dot_product_attention",
                               *aten_calls("scaled_dot_product_attention"))
#: torchvision code that runs as a ``torch.jit._script_if_tracing`` function
#: under a trace (one opaque ``prim::CallFunction`` node): the functions whose
#: work that function does in a plain pass, patched where they are called from
#: (Mask R-CNN's per-mask pasting, Keypoint R-CNN's heatmap decoding, the box
#: regression targets every detector's training loss encodes), and the
#: two steps of ``torchvision.ops.batched_nms``, scripted themselves (a plain
#: pass on the CPU takes the coordinate trick, one multiply per box, up to
#: 4,000 coordinates, and the per-class loop above; a trace always scripts the trick).
TRACED_SCRIPT_CALLS = ("torchvision.models.detection.roi_heads.paste_mask_in_image",
                       "torchvision.models.detection.roi_heads.heatmaps_to_keypoints",
                       "torchvision.models.detection._utils.encode_boxes",
                       "torchvision.ops.boxes._batched_nms_coordinate_trick",
                       "torchvision.ops.boxes._batched_nms_vanilla")
#: Python entry points of operators a JIT trace records as one node (the
#: operator the call names, before autograd decomposes it), which neither
#: fvcore nor torchprofile has a handler for, where a dispatch mode sees what
#: they decompose into: multiplies and means (RMS norm, cosine similarity,
#: losses built from distances, the mean absolute error, trapezoid, the CTC loss's mean over
#: target lengths, quantiles' interpolation, the normal CDF, vecdot), products (tensordot, inner,
#: outer, kron, multi_dot, matrix_power, the covariance and correlation matrices), short-time
#: Fourier transforms (stft, istft: the window multiply and the overlap-add around the FFT).
UNHANDLED_COMPOSITE_CALLS = traced_call_sites(
    "torch.rms_norm", "torch.nn.functional.rms_norm",
    "torch.cosine_similarity", "torch.nn.functional.cosine_similarity",
    "torch.kl_div", "torch.nn.functional.kl_div", "torch.nn.functional.l1_loss",
    "torch.hinge_embedding_loss", "torch.margin_ranking_loss", "torch.triplet_margin_loss",
    "torch.cosine_embedding_loss", "torch.poisson_nll_loss",
    "torch.trapezoid", "torch.trapz",
    "torch.tensordot", "torch.inner", "torch.Tensor.inner", "torch.outer", "torch.Tensor.outer", "torch.ger",
    "torch.Tensor.ger", "torch.kron", "torch.Tensor.kron", "torch.linalg.multi_dot", "torch.chain_matmul",
    "torch.linalg.matrix_power", "torch.matrix_power", "torch.Tensor.matrix_power",
    "torch.stft", "torch.Tensor.stft", "torch.istft", "torch.Tensor.istft",
    "torch.cov", "torch.Tensor.cov", "torch.corrcoef", "torch.Tensor.corrcoef", "torch.linalg.vecdot",
    "torch.quantile", "torch.Tensor.quantile", "torch.nanquantile", "torch.Tensor.nanquantile",
    "torch.special.ndtr", "torch.ctc_loss", "torch.nn.functional.ctc_loss",
    *aten_calls("rms_norm", "cosine_similarity", "tensordot", "inner", "outer", "kron", "matrix_power", "l1_loss",
                "stft", "istft", "cov", "corrcoef", "linalg_vecdot", "quantile", "nanquantile", "special_ndtr",
                "ctc_loss"),
)
R_UNHANDLED_COMPOSITE = ("one node in the trace without a handler (rms_norm, cosine_similarity, tensordot, inner, "
                         "outer, kron, multi_dot, matrix_power, cov, quantile, distance losses, stft...): what it "
                         "decomposes into counts 0")
#: Their tensor inputs computed in Python (the pasted boxes): a plain pass reads
#: them with ``int()``, the scripted loop takes them as tensors, so the trace keeps them.
TRACE_CONSUMED_CALLS = ("torchvision.models.detection.roi_heads.expand_boxes",)

_R_MATMUL = "matmul priced as prod(a.shape) x b.shape[-1] (a batch only on b is missed)"
_R_EINSUM = "einsum priced by numpy's optimal-path estimate / 2"
_R_CONV = "conv with string padding ('same'/'valid'): aten::_convolution_mode has no fvcore handle"
_R_POOL = "adaptive average pool = 1 per input element"
_R_POOL1D = "adaptive_avg_pool1d has no fvcore handle"
_R_BN = "BatchNorm = 2 per element in eval, 5 with batch statistics (4 without affine)"
_R_NORM = "LayerNorm/GroupNorm/InstanceNorm = 5 per element (affine), 4 without"
_R_RNN = "LSTM/GRU/RNN: aten::lstm/gru/rnn has no fvcore handle"
R_TRACED_SCRIPT = ("Mask R-CNN's mask pasting, Keypoint R-CNN's heatmap decoding and batched NMS: under a trace "
                   "torchvision runs them as TorchScript functions (torch.jit._script_if_tracing), one opaque "
                   "prim::CallFunction node in the trace")
_R_SDPA = "fused attention (scaled_dot_product_attention) has no fvcore handle"
_R_SCRIPT = "TorchScript function (torch.jit.script): one opaque prim::CallFunction node in fvcore's trace"


def has_tensor_arg(e: OpEvent, name: str) -> bool:
    """True if the optional tensor argument ``name`` of an aten op was given
    (the engine records an absent optional tensor as the scalar ``None``)."""
    return name not in dict(e.op_args)


@event_counter("fvcore.batch_norm")
def batch_norm(e: OpEvent) -> int:
    """fvcore ``batchnorm_flop_jit``: ``numel(x) * (2 if affine else 1)`` with
    running statistics, ``numel(x) * (5 if affine else 4)`` with batch
    statistics (``training=True``). Nothing is counted as MACs."""
    affine = has_tensor_arg(e, "weight")
    training = e.arg("training", "with_update" in e.op)
    per_element = (5 if affine else 4) if training else (2 if affine else 1)
    return _numel(e.input_shapes[0]) * per_element


def _instance_norm_weighted(e: OpEvent) -> bool:
    """Whether a ``py:`` call of ``F.instance_norm`` (weight 4th) or ``torch.instance_norm`` (weight 2nd)
    passed a weight."""
    position = 1 if e.op == PATCHED_CALL_PREFIX + "torch.instance_norm" else 3
    return isinstance(call_arg(e, position, "weight"), TensorArg)


#: fvcore ``norm_flop_counter`` (layer/group norm): ``numel(x) * (5 if affine else 4)``, "5 is just a
#: rough estimate" in fvcore's words; on ``aten::instance_norm`` (from a ``py:`` call) the same,
#: running statistics or not.
event_counter("fvcore.norm")(affine_norm(4, 5, lambda e: has_tensor_arg(e, "weight")))
event_counter("fvcore.instance_norm")(affine_norm(4, 5, _instance_norm_weighted))
#: fvcore ``elementwise_flop_counter(0, 4)`` (bilinear upsampling, grid sampling): 4 per output element.
event_counter("fvcore.4*out_numel")(elementwise(output_scale=4))


@event_counter("fvcore.matmul")
def matmul(e: OpEvent) -> int:
    """fvcore ``matmul_flop_jit`` from a ``py:`` matmul call:
    ``prod(a.shape) * b.shape[-1]``.
    # NB: fvcore raises on ``matrix @ vector``; priced here as ``prod(a.shape)``.
    """
    if len(e.input_shapes) < 2:
        return 0
    a, b = e.input_shapes[0], e.input_shapes[1]
    return _numel(a) * (b[-1] if len(b) >= 2 else 1)


def einsum_macs(equation: str, shapes: list[tuple[int, ...]]) -> int:
    """fvcore ``einsum_flop_jit``: letters renamed in order of appearance;
    ``abc,abd->acd`` and ``abc,adc->adb`` priced by hand; anything else
    ``floor(numpy optimal-path flops / 2)``. Only shapes reach numpy
    (zero-stride arrays, nothing allocated)."""
    equation = equation.replace(" ", "")
    letters = OrderedDict((k, 0) for k in equation if k.isalpha()).keys()
    equation = equation.translate({ord(x): 97 + i for i, x in enumerate(letters)})
    if equation == "abc,abd->acd":
        n, c, t = shapes[0]
        return n * c * t * shapes[-1][-1]
    if equation == "abc,adc->adb":
        n, t, g = shapes[0]
        return n * t * g * shapes[-1][1]
    arrays = [np.lib.stride_tricks.as_strided(np.zeros(1), shape=s, strides=(0,) * len(s)) for s in shapes]
    report = np.einsum_path(equation, *arrays, optimize="optimal")[1]
    for line in report.split("\n"):
        if "optimized flop" in line.lower():
            return int(np.floor(float(line.split(":")[-1]) / 2))
    raise NotImplementedError(f"numpy gave no flop estimate for {equation!r}")


def _subscripts(sublist: Any) -> str:
    """torch's ``parse_subscript`` for the sublist format: 0-25 -> A-Z, 26-51 -> a-z."""
    return "".join(chr(ord("A") + n) if n < 26 else chr(ord("a") + n - 26) for n in sublist)


def einsum_equation(e: OpEvent) -> str | None:
    """The equation of a ``py:torch.einsum`` call, rebuilt as torch does for the
    sublist format ``einsum(a, [0, 1], b, [1, 2], [0, 2])``; None if it cannot
    be (a sublist with ``...`` is not recorded)."""
    args = [v for k, v in e.op_args if k.startswith("#")]
    if args and isinstance(args[0], str):
        return args[0]
    if not args or not isinstance(args[0], TensorArg):
        return None
    sublists = args[1::2] + (args[-1:] if len(args) % 2 == 1 else [])
    if not all(isinstance(x, tuple) and all(isinstance(n, int) for n in x) for x in sublists):
        return None
    equation = ",".join(_subscripts(x) for x in args[1::2])
    return equation + ("->" + _subscripts(args[-1]) if len(args) % 2 == 1 else "")


@event_counter("fvcore.einsum")
def einsum(e: OpEvent) -> int:
    """fvcore ``einsum_flop_jit`` from a ``py:torch.einsum`` call (:func:`einsum_macs`).
    # NB: an equation that cannot be rebuilt (sublists with ``...``) or that
    # numpy cannot plan (where fvcore itself fails) is priced 0.
    """
    equation = einsum_equation(e)
    if equation is None:
        return 0
    try:
        return einsum_macs(equation, list(e.input_shapes))
    except (ValueError, TypeError, IndexError, NotImplementedError):
        return 0


@event_counter("fvcore.conv")
def conv(e: OpEvent) -> int:
    """fvcore ``conv_flop_jit`` from a ``py:torch.nn.functional.convNd`` call:
    ``N * prod(w.shape) * prod(y.shape[2:])`` (an unbatched input counts as
    ``N = 1``); 0 when ``padding`` is a string (``aten::_convolution_mode``)."""
    if string_padding(e) or len(e.input_shapes) < 2 or not e.output_shapes:
        return 0
    x, w, y = e.input_shapes[0], e.input_shapes[1], e.output_shapes[0]
    if len(x) == len(w):
        return x[0] * _numel(w) * _numel(y[2:])
    return _numel(w) * _numel(y[1:])


def traced_calls(paths: tuple[str, ...], counter: str, reason: str,
                 kind: CauseKind = CauseKind.RULE) -> tuple[EventRule, ...]:
    """Ops inside calls of ``paths`` count 0, a call nested in another one too
    (a JIT trace holds one node per outermost call); the ``py:`` call
    events are priced by ``counter`` (:func:`~flopaudit.reference.rulesets.patched_call_rules`)."""
    calls, inner = patched_call_rules(paths, counter, reason, kind)
    return inner + calls


FVCORE = Ruleset(
    name="fvcore",
    unit="MAC",
    description="fvcore FlopCountAnalysis: JIT-trace handles for linear/matmul/mm/bmm/einsum/conv (MACs, no "
    "bias), batch/layer/group/instance norm, 2-D upsampling, adaptive average pooling; every other op 0.",
    calls_are_operators=True,  # a trace node / profiler event: an F.linear a tensor subclass takes over is not one
    patched_functions=MATMUL_CALLS + EINSUM_CALLS + CONV_CALLS + POOL_CALLS + ZERO_CALLS + INSTANCE_NORM_CALLS
    + SCRIPT_CALLS + SDPA_CALLS + TRACED_SCRIPT_CALLS + TRACE_CONSUMED_CALLS + UNHANDLED_COMPOSITE_CALLS,
    event_rules=(
        *traced_calls(SCRIPT_CALLS, "zero", _R_SCRIPT, CauseKind.UNSUPPORTED),
        *traced_calls(UNHANDLED_COMPOSITE_CALLS, "zero", R_UNHANDLED_COMPOSITE, CauseKind.UNSUPPORTED),
        *traced_calls(TRACED_SCRIPT_CALLS, "zero", R_TRACED_SCRIPT, CauseKind.UNSUPPORTED),
        *traced_calls(SDPA_CALLS, "zero", _R_SDPA, CauseKind.UNSUPPORTED),
        EventRule("zero", traced=True, reason="torch.library custom op: one opaque node in fvcore's trace",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", autograd_function=True,
                  reason="custom autograd.Function: one opaque prim::PythonOp in fvcore's trace",
                  kind=CauseKind.UNSUPPORTED),
        *traced_calls(MATMUL_CALLS, "fvcore.matmul", _R_MATMUL),
        *traced_calls(EINSUM_CALLS, "fvcore.einsum", _R_EINSUM),
        *traced_calls(CONV_CALLS, "fvcore.conv", _R_CONV, CauseKind.UNSUPPORTED),
        *traced_calls(POOL_CALLS, "in_numel", _R_POOL),
        *traced_calls(ZERO_CALLS, "zero", _R_POOL1D, CauseKind.UNSUPPORTED),
        *traced_calls(INSTANCE_NORM_CALLS, "fvcore.instance_norm", _R_NORM),
        *(EventRule("zero", module_type=m, reason=_R_RNN, kind=CauseKind.UNSUPPORTED) for m in ("LSTM", "GRU", "RNN")),
        *(EventRule("macs", op=op, reason="matmul/linear/conv MACs, no bias")
          for op in ("aten.mm", "aten.addmm", "aten.bmm", "aten.linear", "aten.matmul")),
        EventRule("zero", family="linalg", reason="no fvcore handle for torch.linalg factorisations and solves",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", family="quantized", reason="no fvcore handle for int8 kernels (torch.ao quantized::*)",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("macs", category=Category.CONV, reason="matmul/linear/conv MACs, no bias"),
        EventRule("zero", category=Category.MATMUL,
                  reason="no fvcore handle for this product (baddbmm, mv, torch._grouped_mm, torch.sparse.mm...)",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.ATTENTION, reason=_R_SDPA, kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.RNN, reason=_R_RNN, kind=CauseKind.UNSUPPORTED),
        *(EventRule("fvcore.batch_norm", op=op, reason=_R_BN)
          for op in ("aten.native_batch_norm", "aten._native_batch_norm_legit_no_training",
                     "aten._native_batch_norm_legit", "aten.cudnn_batch_norm", "aten.miopen_batch_norm",
                     "aten._batch_norm_with_update", "aten._batch_norm_no_update")),
        EventRule("fvcore.norm", op="aten.native_layer_norm", reason=_R_NORM),
        EventRule("fvcore.norm", op="aten.native_group_norm", reason=_R_NORM),
        EventRule("out_numel", op="aten.upsample_nearest2d", reason="nearest upsampling = 1 per output element"),
        EventRule("fvcore.4*out_numel", op="aten.upsample_bilinear2d",
                  reason="bilinear upsampling = 4 per output element"),
        *(EventRule("fvcore.4*out_numel", op=op, reason="grid_sample = 4 per output element")
          for op in ("aten.grid_sampler_2d", "aten.grid_sampler_3d", "aten.cudnn_grid_sampler",
                     "aten._grid_sampler_2d_cpu_fallback")),
        # fvcore elementwise_flop_counter(1, 0): one per input element.
        EventRule("in_numel", op="aten._adaptive_avg_pool2d", reason=_R_POOL),
        EventRule("in_numel", op="aten.adaptive_avg_pool2d", reason=_R_POOL),
    ),
    default="zero",
    grad_enabled=True,
    module_hooks=True,  # the trace's scope hooks, on every module
    drops_dead_code=True,
    trace_consumed=TRACE_CONSUMED_CALLS,
)
register_ruleset(FVCORE)
