"""Rulesets of counters that patch Python functions and add up (FLOPs, MACs) per call.

DeepSpeed's flops profiler (``deepspeed/profiling/flops_profiler/profiler.py``)
and calflops, which copies it (``calflops/pytorch_ops.py``), replace a list
of ``torch.nn.functional`` and ``torch``/``torch.Tensor`` functions with
wrappers that compute ``(flops, macs)`` from the call's arguments and then
call the original. Only the MAC half is compared here (the adapters report
the MACs as the count; FLOPs are kept as an extra). A counter of this family
is described by which functions it patches and which of them have a MAC
formula: :func:`patched_profiler_ruleset` builds the ruleset.

Both keep each module's count in its attributes (``module.__macs__``) and
total them over the tree; a ``torch.compile`` wrapper forwards attribute
reads and writes to the module it wraps, so that module's own count is read
once more under the wrapper's name (``Ruleset.counts_in_module_attributes``,
booked as ``reused-module``).

The reference records the pass with the same functions wrapped
(``Ruleset.patched_functions``): each call is a ``py:<path>`` event with the
call's arguments. A call with a MAC formula is priced from them; the
operators it dispatches count 0 under the same reason, so the report shows
one net cause per function. A patched call made inside another is priced
too, as each wrapper counts the call it sees (a tensor subclass whose
``F.linear`` calls ``torch.mm``, as torchao's quantized weights do: DeepSpeed
counts both). Every other operator counts 0: those inside a
patched call without MACs (activations, norms, pools, softmax,
elementwise) and those no patched function is called for (``@`` or
``torch.bmm`` where it is not patched, fused attention, RNN kernels).

The MAC formulas below are the two counters' own (identical in both but one):

* ``linear``: ``numel(input) * weight.shape[0]``;
* convolutions: ``prod(kernel) * Cin * (Cout // groups) * N * prod(out)``,
  the output size from the input size, padding (``"valid"``, ``"same"``,
  ints or tuples), stride and dilation;
* transposed convolutions: ``prod(kernel) * Cin * (weight.shape[1] //
  groups) * N * prod(input spatial)`` in calflops; ``weight.shape[1]``
  already is ``Cout / groups``, so a grouped one is divided by ``groups``
  twice (DeepSpeed 0.19 no longer divides: the canonical MACs);
* ``matmul`` (and DeepSpeed's ``mm``, ``bmm``, ``@``):
  ``prod(a.shape) * b.shape[-1]``;
* ``addmm``, ``baddbmm``: ``prod(mat1.shape) * mat2.shape[-1]``;
* DeepSpeed's ``scaled_dot_product_attention``: ``prod(q.shape) * Lk +
  prod(q.shape[:-1]) * Lk * Dv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flopaudit.records import CauseKind
from flopaudit.reference.backend_rulesets.fvcore import call_arg
from flopaudit.reference.engine import PATCHED_CALL_PREFIX, OpEvent, TensorArg
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import QUANTIZED_RNN_OPS, EventRule, Ruleset, event_counter
from flopaudit.reference.rulesets import numel as _numel

_UNSUPPORTED = "unsupported"


def _shape(e: OpEvent, position: int, name: str) -> tuple[int, ...] | None:
    value = call_arg(e, position, name)
    return value.shape if isinstance(value, TensorArg) else None


def _per_dim(value: Any, dims: int) -> tuple[Any, ...]:
    """The profilers' ``x if type(x) is tuple else (x,) * dims``."""
    return value if type(value) is tuple else (value,) * dims


@event_counter("profiler.linear")
def linear(e: OpEvent) -> int:
    """``_linear_flops_compute``: ``input.numel() * weight.shape[0]``."""
    x, w = _shape(e, 0, "input"), _shape(e, 1, "weight")
    return _numel(x) * w[0] if x is not None and w else 0


@event_counter("profiler.conv")
def conv(e: OpEvent) -> int:
    """``_conv_flops_compute``: ``prod(kernel) * Cin * (Cout // groups) * N *
    prod(out)`` with the output size computed from the arguments."""
    x, w = _shape(e, 0, "input"), _shape(e, 1, "weight")
    if x is None or w is None or len(x) < 3:
        return 0
    kernel, spatial = w[2:], x[2:]
    stride = _per_dim(call_arg(e, 3, "stride", 1), len(spatial))
    padding = call_arg(e, 4, "padding", 0)
    dilation = _per_dim(call_arg(e, 5, "dilation", 1), len(spatial))
    groups = int(call_arg(e, 6, "groups", 1) or 1)
    if padding == "valid":
        pads: tuple[Any, ...] = (0,) * len(spatial)
    elif padding == "same":
        pads = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
    else:
        pads = _per_dim(padding, len(spatial))
    out = [(n + 2 * p - (d * (k - 1) + 1)) // s + 1 for n, p, d, k, s in zip(spatial, pads, dilation, kernel, stride)]
    return _numel(kernel) * x[1] * (w[0] // groups) * x[0] * _numel(out)


@event_counter("profiler.conv_transpose")
def conv_transpose(e: OpEvent) -> int:
    """``_conv_trans_flops_compute``: ``prod(kernel) * Cin * (weight.shape[1]
    // groups) * N * prod(input spatial)``."""
    x, w = _shape(e, 0, "input"), _shape(e, 1, "weight")
    if x is None or w is None or len(x) < 3:
        return 0
    groups = int(call_arg(e, 6, "groups", 1) or 1)
    return _numel(w[2:]) * x[1] * (w[1] // groups) * x[0] * _numel(x[2:])


@event_counter("profiler.conv_transpose_per_group")
def conv_transpose_per_group(e: OpEvent) -> int:
    """DeepSpeed 0.19's ``_conv_trans_flops_compute``: ``prod(kernel) * Cin *
    weight.shape[1] * N * prod(input spatial)``, ``weight.shape[1]`` taken
    as the per-group filter count (the canonical MACs)."""
    x, w = _shape(e, 0, "input"), _shape(e, 1, "weight")
    if x is None or w is None or len(x) < 3:
        return 0
    return _numel(w[2:]) * x[1] * w[1] * x[0] * _numel(x[2:])


@event_counter("profiler.matmul")
def matmul(e: OpEvent) -> int:
    """``_matmul_flops_compute``: ``prod(input.shape) * other.shape[-1]``."""
    a, b = _shape(e, 0, "input"), _shape(e, 1, "other")
    return _numel(a) * b[-1] if a is not None and b else 0


@event_counter("profiler.addmm")
def addmm(e: OpEvent) -> int:
    """``_addmm_flops_compute`` / ``_tensor_addmm_flops_compute`` (also used
    for ``baddbmm``): ``prod(mat1.shape) * mat2.shape[-1]``."""
    m1, m2 = _shape(e, 1, "mat1"), _shape(e, 2, "mat2")
    return _numel(m1) * m2[-1] if m1 is not None and m2 else 0


@event_counter("profiler.sdpa")
def sdpa(e: OpEvent) -> int:
    """DeepSpeed's ``_attn_flops_compute``: ``prod(q.shape) * Lk +
    prod(q.shape[:-1]) * Lk * Dv``."""
    q, k, v = _shape(e, 0, "query"), _shape(e, 1, "key"), _shape(e, 2, "value")
    if q is None or k is None or v is None or len(k) < 2:
        return 0
    return _numel(q) * k[-2] + _numel(q[:-1]) * k[-2] * v[-1]


_F = "torch.nn.functional."

#: Functions both counters patch with a MAC formula: path -> (counter, reason).
MAC_FUNCTIONS: dict[str, tuple[str, str]] = {
    _F + "linear": ("profiler.linear", "F.linear = numel(input) x out_features (bias not in MACs)"),
    **{_F + f"conv{d}d": ("profiler.conv", "F.convNd = MACs from the arguments (bias not in MACs)") for d in (1, 2, 3)},
    **{_F + f"conv_transpose{d}d": (
        "profiler.conv_transpose",
        "F.conv_transposeNd = prod(k) x Cin x (weight.shape[1] // groups) x input positions "
        "(a grouped one divided by groups twice)") for d in (1, 2, 3)},
    "torch.matmul": ("profiler.matmul", "matmul = prod(a.shape) x b.shape[-1]"),
    "torch.Tensor.matmul": ("profiler.matmul", "matmul = prod(a.shape) x b.shape[-1]"),
    "torch.addmm": ("profiler.addmm", "addmm/baddbmm = prod(mat1.shape) x mat2.shape[-1]"),
    "torch.Tensor.addmm": ("profiler.addmm", "addmm/baddbmm = prod(mat1.shape) x mat2.shape[-1]"),
    "torch.baddbmm": ("profiler.addmm", "addmm/baddbmm = prod(mat1.shape) x mat2.shape[-1]"),
}

#: Functions both counters patch for FLOPs only (0 MACs).
FLOP_ONLY_FUNCTIONS: tuple[str, ...] = (
    *(_F + f for f in ("relu", "prelu", "elu", "leaky_relu", "relu6", "silu", "gelu", "batch_norm", "layer_norm",
                       "instance_norm", "group_norm", "upsample", "interpolate", "softmax", "embedding")),
    *(_F + f"{kind}_pool{d}d" for kind in ("avg", "max", "adaptive_avg", "adaptive_max") for d in (1, 2, 3)),
    "torch.mul", "torch.Tensor.mul", "torch.add", "torch.Tensor.add", "torch.einsum",
)

_R_NO_MODULE = ("a patched call made while no module of the model is running (the root not called through "
                "nn.Module.__call__, as gpytorch's modules call their forward themselves) counts 0: the totals add up "
                "what each module's hooks collected")
_R_FLOP_ONLY = "patched function counted in FLOPs only (activations, norms, pools, softmax, elementwise, einsum)"


def patched_profiler_ruleset(name: str, description: str, mac_functions: Mapping[str, tuple[str, str]],
                             flop_only: tuple[str, ...], *, unpatched_products: str,
                             event_counts_per_name: bool = False, params: str = "unique") -> Ruleset:
    """The ruleset of a counter that patches ``mac_functions`` (path ->
    (counter, reason)) and ``flop_only`` and counts MACs only in the former.
    ``unpatched_products`` names, for the report, the products it does not
    see (they count 0); ``params`` its parameter counter."""
    # Every call is priced, one inside another patched call too (a tensor subclass whose F.linear
    # calls torch.mm, as torchao's quantized weights do): each wrapper counts the call it sees.
    # A wrapper adds a call to the list of the innermost module whose pre hook has run
    # (``if module_flop_count:``), and the total reads those lists: a call made while no
    # module of the model is running is in none of them (nor is what it dispatches).
    rules = [EventRule("zero", in_module_call=False, reason=_R_NO_MODULE, kind=CauseKind.MISSED_FUNCTIONAL)]
    rules += [EventRule(counter, op=PATCHED_CALL_PREFIX + path, reason=reason)
              for path, (counter, reason) in mac_functions.items()]
    rules += [EventRule("zero", patched=path, reason=reason) for path, (_, reason) in mac_functions.items()]
    rules += [EventRule("zero", patched=path, reason=_R_FLOP_ONLY) for path in flop_only]
    rules += [
        EventRule("zero", category=Category.MATMUL, reason=f"products made outside the patched functions "
                  f"({unpatched_products}) count 0", kind=_UNSUPPORTED),
        EventRule("zero", category=Category.CONV, reason="convolutions made outside the patched F.conv* count 0",
                  kind=_UNSUPPORTED),
        EventRule("zero", category=Category.ATTENTION,
                  reason="fused attention made outside a patched function counts 0", kind=_UNSUPPORTED),
        *(EventRule("zero", op=op, reason="a dynamically quantized LSTM/GRU (torch.ao) runs aten::quantized_lstm/"
                    "gru: no patched function and no module hook sees it", kind=_UNSUPPORTED)
          for op in QUANTIZED_RNN_OPS),
        EventRule("zero", category=Category.RNN,
                  reason="RNN/LSTM/GRU modules are priced by a module hook in FLOPs only: 0 MACs", kind=_UNSUPPORTED),
    ]
    return Ruleset(
        name=name,
        unit="MAC",
        description=description,
        event_rules=tuple(rules),
        default="zero",
        grad_enabled=True,
        module_hooks=True,
        eval_mode=True,  # calculate_flops and get_model_profile call model.eval()
        patched_functions=tuple(dict.fromkeys((*mac_functions, *flop_only))),
        event_counts_per_name=event_counts_per_name,
        counts_in_module_attributes=True,  # ``module.__macs__``, totalled over the tree
        copies_lost=True,  # (a copy made in the forward keeps its count on itself)
        params=params,
    )


__all__ = ["FLOP_ONLY_FUNCTIONS", "MAC_FUNCTIONS", "patched_profiler_ruleset"]
