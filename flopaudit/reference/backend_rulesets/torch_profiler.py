"""``torch.profiler.profile(with_flops=True)`` as a ruleset.

The profiler estimates FLOPs for seven operator names only
(``torch/csrc/profiler/util.cpp`` ``computeFlops``, torch 2.14), from the
shapes of the call's first inputs:

* ``aten::conv2d``: ``2 * N * H_out * W_out * kh * kw * Cin * Cout / groups``
  (2 x the canonical MACs, bias not counted), only for a 4-D input and a 4-D
  weight with integer padding; ``conv1d``, ``conv3d``, transposed and
  unbatched convolutions count 0.
* ``aten::mm``, ``aten::addmm``: ``2 * M * K * N``; ``aten::bmm``,
  ``aten::baddbmm``: ``2 * B * M * K * N`` (2 x the canonical MACs).
* ``aten::mul``, ``aten::add``: ``numel`` of the first input (1 per
  element; the in-place ``mul_``/``add_`` count 0).

The profiler records operators where they enter the dispatcher, above the
reference's dispatch mode: ``nn.Linear``, ``torch.matmul`` and ``@`` reach the
same ``mm``/``addmm``/``bmm`` calls the reference records, and ``F.conv2d``
(``aten::conv2d``) is the reference's ``aten.convolution`` with a 4-D weight
and ``transposed=False``. Kernels that call priced operators themselves
count those: ``aten::_trilinear`` (``nn.Bilinear``) its ``bmm`` calls
(2 x the reference's MACs), ``aten::repeat`` an ``add``, ``aten::renorm`` a
``mul`` of its input, the CPU LSTM kernel its bias ``add``, the fast paths
of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (taken with
autograd on when nothing needs a gradient: a frozen encoder) their products,
the CPU kernel of ``aten::_grouped_mm`` (mixture-of-experts layers) one
``aten::mm`` per group, torchvision's ``deform_conv2d`` the ``aten::addmm``
of its sampled columns. # NB: those are the CPU kernels; on CUDA the grouped
and fused kernels run no priced operator of their own. So does printing a
tensor in the forward: torch's formatter runs with every dispatch mode
disabled (the reference records its calls as ``py:torch._tensor_str._str``),
and the ``aten::mul`` of its ``torch.isfinite`` is priced (:func:`printed`).
Everything else counts 0, with autograd on as the adapter runs it. The adapter halves each operator's FLOPs (rounding an odd
elementwise count down); :func:`~flopaudit.reference.pricing.predict` halves
each event of this FLOP ruleset the same way.
"""

from __future__ import annotations

import torch

from flopaudit.reference.backend_rulesets.fvcore import SCRIPT_CALLS
from flopaudit.reference.engine import PATCHED_CALL_PREFIX, OpEvent, TensorArg
from flopaudit.reference.gradient_sums import IN_PLACE
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import (
    QUANTIZED_RNN_OPS,
    R_SPARSE_AS_DENSE,
    EventRule,
    Ruleset,
    aten_calls,
    composite_product_rules,
    event_counter,
    register_ruleset,
    string_padding,
    traced_call_sites,
)
from flopaudit.reference.rulesets import numel as _numel

_UNSUPPORTED = "unsupported"

CONV2D_CALLS = traced_call_sites("torch.nn.functional.conv2d", "torch.conv2d", *aten_calls("conv2d"))
LINEAR_CALLS = traced_call_sites("torch.nn.functional.linear", *aten_calls("linear"))
SDPA_CALLS = traced_call_sites("torch.nn.functional.scaled_dot_product_attention",
                               *aten_calls("scaled_dot_product_attention"))
_RNN_MODULES = ("RNN", "GRU", "LSTM")
_R_SDPA_MASK = ("the float-mask add of the math attention kernel is an in-place aten::add_ under the profiler (not "
                "priced); under a dispatch mode ATen makes it out of place (attn.add(mask)), which the reference sees")
_R_LINEAR_BIAS = ("the bias add of aten::linear on a non-contiguous input is an in-place aten::add_ under the "
                  "profiler (not priced); the reference's mode sees it out of place")
_R_CONV = "only aten::conv2d on a 4-D input is priced (2 x MACs); conv1d/conv3d/transposed/unbatched count 0"
_R_SUMMED_IN_PLACE = ("a forward that differentiates (forces, a gradient penalty): where two gradients of one "
                      "tensor meet, autograd sums them in place without a dispatch mode (aten::add_, not priced) "
                      "when the first is dense, unshared and no graph is made of the backward; under one it adds "
                      "out of place, which the reference records")
SCRIPT_MODULE = "RecursiveScriptModule"
TORCHSCRIPT_MODULES = (SCRIPT_MODULE, "TopLevelTracedModule", "TracedModule")
"""The classes of the modules whose forward is TorchScript code: scripted, and traced (the root
of a ``torch.jit.trace`` and its submodules)."""
_R_SCRIPTED_ELEMENTWISE = ("aten::mul/aten::add in a scripted or traced module's TorchScript code count 0 here: the "
                           "adapter declares the profiler's estimates of them, which change once the graph executor "
                           "optimises the module after its first calls")
VMAP_CALL = "torch._functorch.apis.vmap_impl"
"""What a function ``torch.func.vmap`` (``torch.vmap``) made calls to run, looked up when called:
the operators inside are the ones vmap runs (the adapter marks the same calls)."""
_R_VMAP = ("operators run under torch.func.vmap count 0 here: the adapter declares the profiler's estimates of them, "
           "which it records at per-sample shapes and again as the batched operators")
_R_SCRIPT_FUNCTION = ("operators inside a TorchScript function called from Python count 0 here: the adapter declares "
                      "the profiler's estimates of them, whose input shapes depend on the function's earlier calls")
"""The class of a ``torch.jit.script`` module (a traced one is a ``TopLevelTracedModule``)."""
_R_SCRIPTED_CONV = ("a scripted module's convolutions are the operators TorchScript calls: aten::conv2d priced (2 x "
                    "MACs, 4-D input), aten::conv_transpose2d, conv1d and conv3d count 0")


@event_counter("torch-profiler.conv2d")
def conv2d(e: OpEvent) -> int:
    """``computeFlops`` for ``aten::conv2d``, from a ``py:`` call of
    ``F.conv2d``/``torch.conv2d``: ``2 * N * H_out * W_out * kh * kw * Cin *
    Cout // groups`` for a 4-D input and weight with integer padding, else 0
    (an unbatched input, ``padding="same"``)."""
    if len(e.input_shapes) < 2 or not e.output_shapes or string_padding(e):
        return 0
    x, w, y = e.input_shapes[0], e.input_shapes[1], e.output_shapes[0]
    if len(x) != 4 or len(w) != 4 or len(y) != 4 or not w[1]:
        return 0
    groups = x[1] // w[1]
    return 2 * x[0] * y[2] * y[3] * w[2] * w[3] * x[1] * w[0] // groups


@event_counter("torch-profiler.scripted_conv2d")
def scripted_conv2d(e: OpEvent) -> int:
    """An ``aten.convolution`` run by TorchScript code (a ``torch.jit.script`` module's): its
    interpreter calls ``aten::conv2d`` itself where the Python source calls ``F.conv2d``
    (``nn.Conv2d``), so the profiler prices it as :func:`conv2d` does; a transposed
    convolution it calls as ``aten::conv_transpose2d``, which counts 0. (A JIT trace's
    graph calls ``aten::_convolution``, which counts 0 too.)
    # NB: ``padding="same"`` in a scripted module is ``aten::conv2d.padding``, which no
    # recording can tell from integer padding here: priced as integer padding."""
    return 0 if e.arg("transposed") else conv2d(e)


@event_counter("torch-profiler.add_in_rnn")
def add_in_rnn(e: OpEvent) -> int:
    """``aten::add`` inside an RNN module: 1 per element of the first input,
    except the bias add of an input projection that the RNN kernel makes with
    ``at::linear`` (a 1-D second operand as wide as the first's last dim):
    under the reference's dispatch mode ATen's ``linear`` adds the bias out
    of place (composite compliance), under the profiler in place (``add_``),
    which it does not price."""
    if not e.input_shapes:
        return 0
    x = e.input_shapes[0]
    if len(e.input_shapes) >= 2 and len(e.input_shapes[1]) == 1 and x and e.input_shapes[1][0] == x[-1]:
        return 0
    return _numel(x)


@event_counter("torch-profiler.rnn_bias_add")
def rnn_bias_add(e: OpEvent) -> int:
    """The ``aten::add`` of the two bias vectors that the CPU LSTM kernel
    (``mkldnn_rnn_layer``) dispatches itself, below the reference's mode:
    ``numel(b_ih)`` per layer and direction when the layer has biases."""
    if not e.arg("has_biases", True) or len(e.input_shapes) < 4:
        return 0
    return _numel(e.input_shapes[3])


_CSR, _COO = str(torch.sparse_csr), str(torch.sparse_coo)


@event_counter("torch-profiler.sparse_sparse_mm")
def sparse_sparse_mm(e: OpEvent) -> int:
    """``a @ b`` of two sparse CSR tensors: the ``aten::mm`` priced from shapes, the
    ``aten::addmm`` the sparse kernel dispatches (2 x ``M*K*N`` each, as if dense) and its
    ``aten::add`` into the ``(M, N)`` result (1 per element); the ``aten::mul`` of one
    element it also prices rounds to 0 MACs, and the ``aten::addmm`` that kernel calls
    again, inside itself, is the adapter's declared cause
    (:data:`flopaudit.adapters.torch_profiler.RECORDED_TWICE`)."""
    if len(e.input_shapes) < 2 or len(e.input_shapes[0]) != 2 or len(e.input_shapes[1]) != 2:
        return 0
    (m, k), (_, n) = e.input_shapes[0], e.input_shapes[1]
    return 4 * m * k * n + m * n


@event_counter("torch-profiler.euclidean_dist")
def euclidean_dist(e: OpEvent) -> int:
    """``aten::_euclidean_dist`` (``torch.cdist`` with p = 2 past 25 rows) dispatches its own
    ``aten::bmm`` (2 x the reference's MACs) and the ``aten::mul`` of ``x1`` by -2 (1 per
    element of ``x1``); its squares, sums, clamp and root have no estimate."""
    return 2 * e.macs + (_numel(e.input_shapes[0]) if e.input_shapes else 0)


@event_counter("torch-profiler.affine_grid")
def affine_grid(e: OpEvent) -> int:
    """``aten::affine_grid_generator`` dispatches its own ``aten::bmm`` (2 x the reference's MACs)
    and, without ``align_corners``, an ``aten::mul`` scaling each axis's ``linspace`` (1 per
    step; the divide after it has no estimate). Returned as twice the halved operators' sum (the
    adapter halves each operator, an odd one rounded down)."""
    size = e.arg("size") or ()
    return 2 * e.macs + (0 if e.arg("align_corners") else sum(2 * (int(n) // 2) for n in size[2:]))


@event_counter("torch-profiler.quantized_rnn")
def quantized_rnn(e: OpEvent) -> int:
    """The dynamically quantized LSTM/GRU kernels' own priced calls (torch 2.14, CPU), per step
    and layer-direction, each over the step's ``batch x H`` hidden state: the LSTM cell's three
    ``aten::mul``, the GRU cell's one ``aten::add``. Their products (fbgemm) have no estimate.
    Returned as twice the halved operators' sum (the adapter halves each operator, an odd one
    rounded down). (A packed GRU's call also formats its hidden state as a string, whose
    ``torch.isfinite`` product the profiler prices: recorded and priced as printing, :func:`printed`.)
    # NB: a packed sequence's per-step batch sizes are values, not shapes: with an odd ``H``
    # its operators' rounding is taken as if their sizes were even (half a MAC each at most).
    """
    if len(e.input_shapes) < 2:
        return 0
    packed = ".data" in e.op
    x = e.input_shapes[0]
    hx = e.input_shapes[2 if packed else 1]
    hidden, batch = hx[-1], hx[1]
    per_step = (3 if "lstm" in e.op else 1) * int(e.arg("num_layers", 1)) * (2 if e.arg("bidirectional") else 1)
    if packed:
        return per_step * hidden * x[0]
    steps = _numel(x[:-1]) // batch if batch else 0
    return 2 * per_step * steps * (batch * hidden // 2)


@event_counter("torch-profiler.repeat")
def repeat_add(e: OpEvent) -> int:
    """``aten::repeat``'s kernel adds over its ``repeats`` (one element per
    output dimension) with an ``aten::add`` that the profiler prices at 1 per
    element; under the reference's dispatch mode it is not dispatched:
    ``len(repeats)``, the output's rank."""
    return len(e.output_shapes[0]) if e.output_shapes else 0


@event_counter("torch-profiler.encoder_layer")
def encoder_layer(e: OpEvent) -> int:
    """``aten::_transformer_encoder_layer_fwd``'s own priced calls: its attention's
    (2 x MACs, as ``aten::_native_multi_head_attention``'s) and the second
    feed-forward ``addmm``; the first feed-forward product is a fused
    ``aten::_addmm_activation`` (no estimate): ``2 * (MACs - tokens * E * F)``.
    # NB: a nested src (a padding mask, packed into real tokens; a frozen encoder
    # with autograd on) is priced at 2 x all its MACs, the first product with them.
    """
    if len(e.input_shapes) < 10 or len(e.input_shapes[0]) != 3:
        return 2 * e.macs
    n, length, width = e.input_shapes[0]
    hidden = e.input_shapes[9][0]  # ffn_weight_1: (F, E)
    return 2 * (e.macs - n * length * width * hidden)


#: torch's tensor formatter (``torch/_tensor_str.py``), which ``repr``, ``str`` and ``format`` of a
#: tensor call with every dispatch mode disabled: a model that prints or formats a tensor in its
#: forward runs it, torch.profiler records its operators, a dispatch mode or a hook never sees them.
TENSOR_PRINTING = "torch._tensor_str._str"
_R_PRINTING = ("printing a tensor in the forward (print, str, repr, an f-string): torch's formatter runs "
               "torch.isfinite on the printed values, whose aten::mul the profiler prices (1 FLOP per element); "
               "a dispatch mode or a hook does not see it")


@event_counter("torch-profiler.printed")
def printed(e: OpEvent) -> int:
    """The ``aten::mul`` of ``torch.isfinite`` that ``_Formatter`` runs on a floating tensor's
    values when it is printed: one per element printed (every element, or with more than
    ``threshold`` elements the ``edgeitems`` at each end of each dimension), twice for a
    complex tensor (its real and imaginary parts are formatted apart); integer and boolean
    tensors are formatted without it.
    # NB: the print options are read when the event is priced, not when it ran. A complex
    # tensor's two products are one event here: priced so that its MACs are exact, its
    # FLOPs 2 less than the profiler's for an odd count.
    """
    arg = dict(e.op_args).get("#0")
    if not isinstance(arg, TensorArg) or not arg.dtype:
        return 0
    dtype = getattr(torch, arg.dtype.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
        return 0
    opts = torch._tensor_str.PRINT_OPTS
    shown = n = _numel(arg.shape)
    if n > opts.threshold:
        edges = 2 * opts.edgeitems
        shown = _numel(tuple(min(d, edges) for d in arg.shape)) if arg.shape else 1
    if dtype.is_complex:  # two profiler events, each halved (rounded down) by the adapter: 2 x (shown // 2) MACs
        return 4 * (shown // 2)
    return shown


@event_counter("torch-profiler.first_numel")
def first_numel(e: OpEvent) -> int:
    """``computeFlops`` for ``aten::mul``/``aten::add``: elements of the first input."""
    return _numel(e.input_shapes[0]) if e.input_shapes else 0


@event_counter("torch-profiler.foreach_first_numel")
def foreach_first_numel(e: OpEvent) -> int:
    """``aten::_foreach_mul``/``aten::_foreach_add`` on the CPU: torch's per-tensor path runs one
    ``aten::mul``/``aten::add`` for each tensor of the first list, 1 FLOP per element of that tensor.
    The event holds the shape of every tensor input in order: the first list is all of them beside a
    scalar (``.Scalar``, ``.ScalarList``), all but the last beside a 0-dim tensor (``.Tensor``), the
    first half beside a second list (``.List``)."""
    shapes = e.input_shapes
    overload = e.op.rsplit(".", 1)[-1]
    if overload == "List":
        shapes = shapes[:len(shapes) // 2]
    elif overload == "Tensor":
        shapes = shapes[:-1]
    return sum(_numel(s) for s in shapes)


TORCH_PROFILER = Ruleset(
    name="torch-profiler",
    unit="FLOP",
    description="torch.profiler with_flops: 2 x MACs of aten::conv2d (4-D), mm, addmm, bmm, baddbmm; numel of the "
    "first input of aten::mul and aten::add; every other op 0.",
    calls_are_operators=True,  # a trace node / profiler event: an F.linear a tensor subclass takes over is not one
    patched_functions=CONV2D_CALLS + LINEAR_CALLS + SDPA_CALLS + SCRIPT_CALLS + (VMAP_CALL, TENSOR_PRINTING),
    event_rules=(
        # (the adapter declares what the profiler estimated inside them: SCRIPT_FUNCTION_OPS, VMAP_OPS)
        *(EventRule("zero", patched=p, reason=_R_SCRIPT_FUNCTION) for p in SCRIPT_CALLS),
        EventRule("zero", patched=VMAP_CALL, reason=_R_VMAP),
        EventRule("torch-profiler.printed", op=PATCHED_CALL_PREFIX + TENSOR_PRINTING, reason=_R_PRINTING),
        *(EventRule("zero", patched=p, reason=_R_CONV) for p in CONV2D_CALLS),
        *(EventRule("torch-profiler.conv2d", op=PATCHED_CALL_PREFIX + p, reason=_R_CONV) for p in CONV2D_CALLS),
        EventRule("2*macs", op="torchvision.deform_conv2d",
                  reason="torchvision::deform_conv2d's own aten::addmm of its sampled columns = 2 x MACs"),
        EventRule("zero", family="linalg", reason="torch.linalg factorisations and solves have no profiler estimate",
                  kind=_UNSUPPORTED),
        EventRule("zero", family="quantized", reason="int8 kernels (torch.ao quantized::*) have no profiler estimate",
                  kind=_UNSUPPORTED),
        EventRule("torch-profiler.scripted_conv2d", op="aten.convolution", module_type=SCRIPT_MODULE,
                  reason=_R_SCRIPTED_CONV),
        *(EventRule("zero", op=op, module_type=m, reason=_R_SCRIPTED_ELEMENTWISE) for op in ("aten.mul", "aten.add")
          for m in TORCHSCRIPT_MODULES),
        EventRule("zero", category=Category.CONV, reason=_R_CONV, kind=_UNSUPPORTED),
        *(EventRule("zero", op=op, patched=p, reason=_R_LINEAR_BIAS) for op in ("aten.add", "aten.mul")
          for p in LINEAR_CALLS),
        *(EventRule("zero", op="aten.add", patched=p, reason=_R_SDPA_MASK) for p in SDPA_CALLS),
        *(EventRule("torch-profiler.add_in_rnn", op="aten.add", module_type=m, reason=_R_LINEAR_BIAS)
          for m in _RNN_MODULES),
        EventRule("2*macs", op="aten._trilinear",
                  reason="aten::_trilinear's own aten::bmm calls (nn.Bilinear) = 2 x their MACs"),
        EventRule("torch-profiler.first_numel", op="aten.renorm",
                  reason="aten::renorm's own aten::mul rescaling its input (1 per element)"),
        EventRule("torch-profiler.repeat", op="aten.repeat",
                  reason="aten::repeat's own aten::add over its repeats (1 per output dimension)"),
        EventRule("torch-profiler.rnn_bias_add", op="aten.mkldnn_rnn_layer",
                  reason="the CPU LSTM kernel's own aten::add of its two biases (1 per element)"),
        EventRule("torch-profiler.affine_grid", op="aten.affine_grid_generator",
                  reason="aten::affine_grid_generator's own aten::bmm (2 x MACs) and aten::mul scaling its base "
                  "grid (F.affine_grid)"),
        EventRule("torch-profiler.euclidean_dist", op="aten._euclidean_dist",
                  reason="aten::_euclidean_dist's own aten::bmm (2 x MACs) and aten::mul of x1 by -2 (torch.cdist "
                  "with p = 2 past 25 rows)"),
        *(EventRule("torch-profiler.quantized_rnn", op=op,
                    reason="the dynamically quantized RNN kernel's own aten::mul/aten::add of its cell (LSTM 3, GRU "
                    "1 per hidden unit and step); its int8/float16 products have no estimate")
          for op in QUANTIZED_RNN_OPS),
        EventRule("torch-profiler.sparse_sparse_mm", op="aten.mm", sparse=(_CSR, _CSR),  # a @ b, both CSR
                  reason=R_SPARSE_AS_DENSE + ", twice: aten::mm and the aten::addmm its sparse kernel dispatches, "
                  "and that kernel's aten::add into the dense-shaped result (a product of two CSR tensors)"),
        EventRule("2*dense_product", op="aten.mm", sparse=(_COO, _COO),  # a @ b, both COO: its own kernel
                  reason=R_SPARSE_AS_DENSE + " (a product of two COO tensors: aten::mm alone)"),
        EventRule("4*dense_product", op="aten.mm", sparse=True,  # torch.spmm, @
                  reason=R_SPARSE_AS_DENSE + ", twice: aten::mm and the aten::addmm its sparse kernel dispatches"),
        EventRule("2*dense_product", op="aten._sparse_addmm",  # torch.sparse.mm/addmm: no estimate of its own
                  reason=R_SPARSE_AS_DENSE + ", by the aten::addmm that aten::_sparse_addmm dispatches"),
        *(EventRule("2*macs", op=op, reason="mm/addmm/bmm/baddbmm = 2 x MACs (bias excluded)")
          for op in ("aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm")),
        # A sparse COO operand of an add: the dense-sparse kernel runs aten::add (out=) over the dense result.
        *(EventRule("in_numel", op=op, sparse=True,
                    reason="a sparse tensor added to a dense one in place (peft's ShiRA: weight += delta) or "
                    "subtracted: aten::add_/aten::sub_/aten::sub are not priced, the aten::add (out=) their sparse "
                    "kernel runs is, 1 per element of the dense tensor")
          for op in ("aten.add_", "aten.sub_", "aten.sub")),
        # (and an out-of-place aten::add with a sparse operand runs aten::add (out=) inside itself: the adapter
        # declares the second event, as it declares every operator recorded twice inside itself)
        EventRule("in_numel", op="aten.add", sparse=True,
                  reason="an add with a sparse operand: 1 per element of the first input, priced as if dense"),
        *composite_product_rules("the profiler records"),
        EventRule("zero", op="aten.add", summed=IN_PLACE, reason=_R_SUMMED_IN_PLACE),
        *(EventRule("torch-profiler.first_numel", op=op,
                    reason="aten::mul/aten::add = 1 FLOP per element of the first input (half a MAC)")
          for op in ("aten.mul", "aten.add")),
        *(EventRule("torch-profiler.foreach_first_numel", op=op,
                    reason="aten::_foreach_mul/_foreach_add run one aten::mul/aten::add per tensor on the CPU: 1 FLOP "
                    "per element of each tensor of the first list")
          for op in ("aten._foreach_mul", "aten._foreach_add")),
        EventRule("2*macs", op="aten._grouped_mm",
                  reason="aten::_grouped_mm's own aten::mm, one per group (mixture-of-experts layers) = 2 x MACs"),
        EventRule("2*macs", op="aten._native_multi_head_attention",
                  reason="aten::_native_multi_head_attention's own mm/bmm/addmm calls (nn.MultiheadAttention's fast "
                  "path, taken with autograd on when no input or weight needs a gradient) = 2 x MACs"),
        EventRule("torch-profiler.encoder_layer", op="aten._transformer_encoder_layer_fwd",
                  reason="aten::_transformer_encoder_layer_fwd's own attention and second feed-forward products "
                  "(2 x MACs); its first feed-forward product is a fused _addmm_activation (no estimate)"),
        EventRule("zero", category=Category.ATTENTION, reason="attention kernels have no profiler estimate",
                  kind=_UNSUPPORTED),
        EventRule("zero", category=Category.RNN, reason="RNN kernels have no profiler estimate", kind=_UNSUPPORTED),
        EventRule("zero", category=Category.MATMUL, reason="no profiler estimate for this product (mv, dot, addbmm...)",
                  kind=_UNSUPPORTED),
    ),
    default="zero",
    grad_enabled=True,
)
register_ruleset(TORCH_PROFILER)
