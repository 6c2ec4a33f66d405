"""torchprofile's ``profile_macs`` (torchprofile 0.1.0) as a ruleset.

torchprofile traces the model with ``torch.jit`` (autograd on, the model's
mode) and prices each node of the graph with its handler
(``torchprofile/handlers.py`` ``HANDLER_MAP``); nodes without a handler are
skipped (0). Like fvcore's, its trace records ops *above* autograd
(``aten::linear``, ``aten::matmul``, ``aten::einsum``, ``aten::lstm``,
``aten::scaled_dot_product_attention``), which reach the reference's
dispatch mode as other ops. Where the two views price the same, dispatcher
events are priced directly; where they do not, the recording is made with
the Python entry points wrapped (``patched_functions``) and the ``py:`` call
is priced by the handler, the ops inside it counting 0:

* ``F.linear``, ``torch.matmul``, ``Tensor.matmul``, ``@``: ``_matmul`` by
  the operands' ranks (bias not counted);
* ``torch.einsum``: the product of every index size (0 with ``...``);
* ``F.scaled_dot_product_attention``: ``B * H * Lq * Lk * (D + Dv)``;
* ``_VF.lstm`` (``nn.LSTM``): ``T * N * dirs * sum over layers of 4h (I_l +
  h)`` with ``h`` read from ``h_n`` (the projection size for a projected
  LSTM); ``aten::gru`` and ``aten::rnn_*`` have no handler: 0. The cells
  (``LSTMCell``...) are traced as their linear and elementwise ops.

Dispatcher events: ``convolution``: ``_convolution`` = ``numel(y) * Cin' *
prod(kernel)`` where ``Cin'`` is ``w.shape[1]`` if ``y.shape[1] ==
w.shape[0]`` else ``w.shape[0]`` (direct convolutions: the canonical MACs;
transposed ones by the *output* size, with ``Cout/g`` when ``Cin == Cout``,
else ``Cin``); ``addmm``, ``addmv``, ``bmm``, ``baddbmm`` their MACs
(``mm`` and ``mv`` have no handler: 0); ``mul``/``mul_`` ``numel(y)``; batch,
layer and group norm ``numel(y)`` with an affine weight, else 0; average
pools, ``mean`` and adaptive average pools ``numel(y)``; ``leaky_relu``
``numel(y)``; ``upsample_bilinear2d`` ``4 * numel(y)``; ``grid_sampler``
4 (bilinear) or 16 (bicubic) per output; everything else 0.
The trace keeps only ops whose results reach the output (``drops_dead_code``:
the ``mean`` ``nn.MultiheadAttention`` takes of its attention weights counts
only where the model returns or uses them).
# NB: Python arithmetic on tensor sizes is traced as 0-dim
# ``aten::mul`` nodes of 1 MAC each, which no dispatcher sees: the adapter
# reports the sum of every 0-dim ``aten::mul`` node from torchprofile's own
# per-node result as a declared cause (``extra``, key ``"cause: ..."``), so a
# product of 0-dim operands counts 0 here, whether a dispatcher sees it
# (DeBERTa's ``torch.tensor(size) * scale``) or not.
# NB: so is an integer product (index arithmetic): under a trace sizes are
# 0-dim tensors, so a cache keyed on them misses, and transformers' BEiT
# (``generate_relative_position_index``, an ``lru_cache`` on the window size)
# rebuilds its relative position index in every layer where an eager pass
# builds it once per process. The adapter books the trace's integer products
# as a declared cause and they count 0 here.
A convolution with a string ``padding`` is traced as
``aten::_convolution_mode``, which has no handler (0): ``F.convNd`` and
``torch.convNd`` calls are priced from their ``py:`` events. A
``torch.library`` custom op, a custom ``autograd.Function`` and a call of a
``torch.jit.script`` function (``prim::CallFunction``; the recording wraps
``ScriptFunction.__call__``) are single nodes without a handler: their
inner ops count 0, as do those of the
torchvision functions a trace runs as TorchScript
(``torch.jit._script_if_tracing``: mask pasting, keypoint decoding, the
steps of ``batched_nms``, whose coordinate trick multiplies once per box).
"""

from __future__ import annotations

import math

from flopaudit.records import CauseKind
from flopaudit.reference.backend_rulesets.fvcore import (
    CONV_CALLS,
    R_TRACED_SCRIPT,
    R_UNHANDLED_COMPOSITE,
    SCRIPT_CALLS,
    TRACE_CONSUMED_CALLS,
    TRACED_SCRIPT_CALLS,
    UNHANDLED_COMPOSITE_CALLS,
    call_arg,
    einsum_equation,
    has_tensor_arg,
    traced_calls,
)
from flopaudit.reference.engine import OpEvent, TensorArg
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import (
    EventRule,
    Ruleset,
    aten_calls,
    event_counter,
    register_ruleset,
    string_padding,
    traced_call_sites,
)
from flopaudit.reference.rulesets import numel as _numel

_UNSUPPORTED = "unsupported"
Shape = tuple[int, ...]


def matmul_macs(a: Shape, b: Shape, y: Shape) -> int:
    """torchprofile's ``_matmul`` for operands ``a``, ``b`` and output ``y``,
    with its unpacking as written (``n, m = a.shape; m, p = b.shape; n * m *
    p`` for two matrices, so ``m`` is ``b.shape[0]``): for ``aten::linear``,
    whose ``b`` is the weight ``(out, in)``, that is still the product's MACs."""
    if len(a) == 1 and len(b) == 1:
        return a[0]
    if len(a) == 1 and len(b) == 2:
        return b[0] * b[1]
    if len(a) == 2 and len(b) == 1:
        return a[0] * a[1]
    if len(a) == 2 and len(b) == 2:
        return a[0] * b[0] * b[1]
    if len(a) == 1:
        return math.prod(b[:-2]) * b[-2] * b[-1]
    if len(b) == 1:
        return math.prod(a[:-2]) * a[-2] * a[-1]
    return math.prod(y[:-2]) * a[-2] * b[-2] * b[-1]


def _tensor(e: OpEvent, position: int, name: str) -> Shape | None:
    value = call_arg(e, position, name)
    return value.shape if isinstance(value, TensorArg) else None


@event_counter("torchprofile.matmul_call")
def matmul_call(e: OpEvent) -> int:
    """``_matmul`` of a ``py:`` call of ``F.linear``/``matmul``/``@``."""
    a = _tensor(e, 0, "input")
    b = _tensor(e, 1, "weight") or _tensor(e, 1, "other")
    if a is None or b is None or not e.output_shapes:
        return 0
    return matmul_macs(a, b, e.output_shapes[0])


@event_counter("torchprofile.einsum")
def einsum(e: OpEvent) -> int:
    """``_einsum``: the product of the sizes of every index letter (the last
    operand's size wins for a repeated letter); 0 with ``...``."""
    equation = einsum_equation(e)
    if not equation or "..." in equation:
        return 0
    sizes: dict[str, int] = {}
    for sub, shape in zip(equation.split("->")[0].split(","), e.input_shapes):
        for letter, size in zip(sub.replace(" ", ""), shape):
            sizes[letter] = size
    return math.prod(sizes.values())


def _convolution(w: Shape, y: Shape) -> int:
    """``_convolution``: ``numel(y) * Cin' * prod(kernel)``, ``Cin'`` the
    weight's dim 1 if ``y.shape[1] == w.shape[0]``, else its dim 0."""
    channels = w[1] if len(y) > 1 and y[1] == w[0] else w[0]
    return _numel(y) * channels * _numel(w[2:])


@event_counter("torchprofile.conv")
def conv(e: OpEvent) -> int:
    """``_convolution`` of a dispatcher convolution."""
    if len(e.input_shapes) < 2 or not e.output_shapes or len(e.input_shapes[1]) < 3:
        return 0
    return _convolution(e.input_shapes[1], e.output_shapes[0])


@event_counter("torchprofile.conv_call")
def conv_call(e: OpEvent) -> int:
    """A ``py:`` call of ``F.convNd``/``torch.convNd``: 0 with a string
    ``padding`` (traced as ``aten::_convolution_mode``, no handler), else
    ``_convolution`` of the batched call the trace records (an unbatched
    input is one sample)."""
    if string_padding(e) or len(e.input_shapes) < 2 or not e.output_shapes:
        return 0
    x, w, y = e.input_shapes[0], e.input_shapes[1], e.output_shapes[0]
    return _convolution(w, y if len(x) == len(w) else (1, *y))


@event_counter("torchprofile.sdpa")
def sdpa(e: OpEvent) -> int:
    """``_scaled_dot_product_attention``: ``B * H * Lq * Lk * (D + Dv)``."""
    q, k, v = _tensor(e, 0, "query"), _tensor(e, 1, "key"), _tensor(e, 2, "value")
    if q is None or k is None or v is None or len(q) < 3:
        return 0
    return q[0] * math.prod(q[1:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


@event_counter("torchprofile.lstm")
def lstm(e: OpEvent) -> int:
    """``_lstm`` of a ``py:torch._VF.lstm`` call, from the input's last dim and
    the outputs ``(output, h_n, c_n)``."""
    x = _tensor(e, 0, "input")
    if x is None or len(e.output_shapes) < 2:
        return 0
    out, h_n = e.output_shapes[0], e.output_shapes[1]
    if len(out) < 2 or not h_n:
        return 0
    hidden = h_n[-1]
    directions = out[-1] // hidden
    layers = h_n[0] // directions
    macs = sum(4 * hidden * ((x[-1] if layer == 0 else hidden * directions) + hidden) for layer in range(layers))
    return out[0] * out[1] * directions * macs


@event_counter("torchprofile.mul")
def mul(e: OpEvent) -> int:
    """``_mul``: ``numel(y)``, but 0 for a product of 0-dim operands and for an
    integer product: the adapter books every 0-dim ``aten::mul`` node of the
    trace from torchprofile's own result (Python arithmetic on sizes, which
    only a trace records, and multiplies of scalar tensors, which a
    dispatcher sees too), and every other ``aten::mul``/``mul_`` node with an
    integer result (index arithmetic, which a trace can run more often than
    the model does eagerly)."""
    if e.output_shapes == ((),) and all(s == () for s in e.input_shapes):
        return 0
    if e.integer:  # booked by the adapter from the trace (INTEGER_PRODUCTS)
        return 0
    return _numel(e.output_shapes[0]) if e.output_shapes else 0


@event_counter("torchprofile.affine_out_numel")
def affine_out_numel(e: OpEvent) -> int:
    """``_norm``: ``numel(y)`` if the norm has an affine weight, else 0."""
    return _numel(e.output_shapes[0]) if e.output_shapes and has_tensor_arg(e, "weight") else 0


@event_counter("torchprofile.4*out_numel")
def four_out_numel(e: OpEvent) -> int:
    """``_upsample_bilinear2d``: ``4 * numel(y)``."""
    return 4 * _numel(e.output_shapes[0]) if e.output_shapes else 0


@event_counter("torchprofile.grid_sampler")
def grid_sampler(e: OpEvent) -> int:
    """``_grid_sampler``: 0 (nearest), 16 (bicubic) or 4 (bilinear) per output."""
    mode = e.arg("interpolation_mode", 0)
    out = _numel(e.output_shapes[0]) if e.output_shapes else 0
    return 0 if mode == 1 else out * (16 if mode == 2 else 4)


MATMUL_CALLS = traced_call_sites("torch.nn.functional.linear", "torch.matmul", "torch.Tensor.matmul",
                                 "torch.Tensor.__matmul__", *aten_calls("linear", "matmul"))
EINSUM_CALLS = traced_call_sites("torch.einsum")
SDPA_CALLS = traced_call_sites("torch.nn.functional.scaled_dot_product_attention",
                               *aten_calls("scaled_dot_product_attention"))
#: In train mode the trace holds one ``aten::dropout``-family node per call (no
#: handler), where a dispatch mode sees its decomposition (bernoulli, mul).
DROPOUT_CALLS = tuple(f"torch.nn.functional.{f}" for f in (
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"))
_R_DROPOUT = "dropout in train mode is one aten::dropout node in the trace, without a handler: 0"
LSTM_CALLS = ("torch._VF.lstm",)

_R_MATMUL = "linear/matmul/@ = the product's MACs by operand ranks (bias not counted)"
_R_EINSUM = "einsum = product of all index sizes"
_R_CONV = "convolution = numel(y) x Cin' x prod(kernel) (bias not counted; transposed ones by output size)"
_R_SDPA = "scaled_dot_product_attention = B x H x Lq x Lk x (D + Dv)"
_R_CONV_MODE = "conv with string padding ('same'/'valid'): one aten::_convolution_mode node, without a handler: 0"
_R_LSTM = "LSTM = T x N x dirs x sum of 4h(I + h), h read from h_n (the projection size if any)"
_R_NORM = "batch/layer/group norm = 1 per output element with an affine weight"
_R_POOL = "average pools and mean = 1 per output element"
_R_SCRIPT = ("TorchScript function (torch.jit.script): one prim::CallFunction node in the trace, without a handler "
             "(torchprofile lists it as unsupported)")


TORCHPROFILE = Ruleset(
    name="torchprofile",
    unit="MAC",
    description="torchprofile profile_macs: JIT-trace handlers for linear/matmul/addmm/bmm/einsum/conv (no bias), "
    "elementwise mul, affine norms, average pools and mean, bilinear upsampling, LSTM and SDPA; other ops 0.",
    calls_are_operators=True,  # a trace node / profiler event: an F.linear a tensor subclass takes over is not one
    patched_functions=MATMUL_CALLS + EINSUM_CALLS + SDPA_CALLS + LSTM_CALLS + SCRIPT_CALLS + TRACED_SCRIPT_CALLS
    + TRACE_CONSUMED_CALLS + DROPOUT_CALLS + UNHANDLED_COMPOSITE_CALLS + CONV_CALLS,
    event_rules=(
        *traced_calls(SCRIPT_CALLS, "zero", _R_SCRIPT, CauseKind.UNSUPPORTED),
        *traced_calls(TRACED_SCRIPT_CALLS, "zero", R_TRACED_SCRIPT, CauseKind.UNSUPPORTED),
        *traced_calls(UNHANDLED_COMPOSITE_CALLS, "zero", R_UNHANDLED_COMPOSITE, CauseKind.UNSUPPORTED),
        *traced_calls(DROPOUT_CALLS, "zero", _R_DROPOUT, CauseKind.UNSUPPORTED),
        EventRule("zero", traced=True, reason="torch.library custom op: one node without a handler in the trace",
                  kind=_UNSUPPORTED),
        EventRule("zero", autograd_function=True,
                  reason="custom autograd.Function: one prim::PythonOp node without a handler", kind=_UNSUPPORTED),
        *traced_calls(MATMUL_CALLS, "torchprofile.matmul_call", _R_MATMUL),
        *traced_calls(EINSUM_CALLS, "torchprofile.einsum", _R_EINSUM),
        *traced_calls(SDPA_CALLS, "torchprofile.sdpa", _R_SDPA),
        *traced_calls(CONV_CALLS, "torchprofile.conv_call", _R_CONV_MODE, _UNSUPPORTED),
        *traced_calls(LSTM_CALLS, "torchprofile.lstm", _R_LSTM),
        *(EventRule("zero", module_type=m, reason="GRU/RNN are one aten::gru/rnn_* node without a handler: 0",
                    kind=_UNSUPPORTED) for m in ("GRU", "RNN")),
        *(EventRule("macs", op=op, reason="addmm/addmv/bmm/baddbmm = their MACs")
          for op in ("aten.addmm", "aten.addmv", "aten.bmm", "aten.baddbmm")),
        *(EventRule("zero", op=op, reason="aten::mm/aten::mv have no handler: 0", kind=_UNSUPPORTED)
          for op in ("aten.mm", "aten.mv")),
        EventRule("zero", family="linalg", reason="no handler for torch.linalg factorisations and solves",
                  kind=_UNSUPPORTED),
        EventRule("zero", family="quantized", reason="no handler for int8 kernels (torch.ao quantized::*)",
                  kind=_UNSUPPORTED),
        EventRule("zero", category=Category.MATMUL, reason="no handler for this product (dot, addbmm, torch.sparse.mm...)",
                  kind=_UNSUPPORTED),
        EventRule("torchprofile.conv", category=Category.CONV, reason=_R_CONV),
        EventRule("zero", category=Category.ATTENTION, reason="attention kernel outside F.scaled_dot_product_attention",
                  kind=_UNSUPPORTED),
        EventRule("zero", category=Category.RNN, reason="RNN kernel without a handler", kind=_UNSUPPORTED),
        *(EventRule("torchprofile.mul", op=op, reason="elementwise mul = 1 per output element")
          for op in ("aten.mul", "aten.mul_")),
        *(EventRule("torchprofile.affine_out_numel", op=op, reason=_R_NORM)
          for op in ("aten.native_batch_norm", "aten._native_batch_norm_legit_no_training",
                     "aten._native_batch_norm_legit", "aten._batch_norm_with_update", "aten._batch_norm_no_update",
                     "aten.native_layer_norm", "aten.native_group_norm")),
        *(EventRule("out_numel", op=op, reason=_R_POOL)
          for op in ("aten.mean", "aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d",
                     "aten._adaptive_avg_pool2d", "aten.adaptive_avg_pool1d", "aten.adaptive_avg_pool2d",
                     "aten._adaptive_avg_pool3d", "aten.adaptive_avg_pool3d")),
        EventRule("out_numel", op="aten.leaky_relu", reason="leaky_relu = 1 per output element"),
        EventRule("zero", op="aten.leaky_relu_", reason="in-place leaky_relu_ (LeakyReLU(inplace=True)) has no "
                  "handler (only aten::leaky_relu has)", kind=_UNSUPPORTED),
        EventRule("torchprofile.4*out_numel", op="aten.upsample_bilinear2d",
                  reason="bilinear upsampling = 4 per output element"),
        *(EventRule("torchprofile.grid_sampler", op=op, reason="grid_sample = 4 (bilinear) or 16 (bicubic) per output")
          for op in ("aten.grid_sampler_2d", "aten.grid_sampler_3d", "aten._grid_sampler_2d_cpu_fallback")),
    ),
    default="zero",
    grad_enabled=True,
    drops_dead_code=True,
    trace_consumed=TRACE_CONSUMED_CALLS,  # profile_macs counts a torch.jit.trace graph
)
register_ruleset(TORCHPROFILE)
