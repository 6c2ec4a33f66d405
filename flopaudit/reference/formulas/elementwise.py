"""Elementwise arithmetic: one FLOP per output element (with broadcasting,
the output is the broadcast shape), in-place variants included.

A few fused ops cost more than one (``addcmul``, ``addcdiv``, ``lerp``, ``linalg_cross``,
training dropout); comparisons, logical and bitwise ops count one each. The ``_foreach_*``
ops count the same per element of each tensor of their list.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import per_listed_element, per_output_element
from flopaudit.reference.registry import Category

_BASE = (
    "add", "sub", "rsub", "mul", "div", "true_divide", "floor_divide", "neg", "abs", "reciprocal", "sqrt",
    "rsqrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "pow", "float_power", "square",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "atan2",
    "erf", "erfc", "erfinv", "floor", "ceil", "round", "trunc", "frac", "sign", "sgn", "signbit",
    "maximum", "minimum", "fmax", "fmin", "clamp", "clamp_min", "clamp_max", "clip", "remainder", "fmod",
    "hypot", "xlogy", "copysign", "heaviside", "nan_to_num", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "isnan", "isinf", "isfinite", "isneginf",
    "isposinf", "digamma", "lgamma", "i0", "sinc", "deg2rad", "rad2deg", "angle", "conj_physical",
    "scatter_add", "index_add", "scatter_reduce", "index_reduce",
)
ELEMENTWISE_NAMES: tuple[str, ...] = tuple(n for base in _BASE for n in (base, base + "_"))

elementwise = per_output_element(
    Category.ELEMENTWISE, 1, *ELEMENTWISE_NAMES,
    name="elementwise",
    doc="Elementwise op: 1 FLOP per output element (broadcast shape), 0 MACs. "
    "``scatter_add``/``index_add`` are charged per output element, an upper bound of their adds.",
)

fused_elementwise = per_output_element(
    Category.ELEMENTWISE, 2, "addcmul", "addcmul_", "addcdiv", "addcdiv_", "lerp", "lerp_",
    "native_dropout",
    name="fused_elementwise",
    doc="Two-operation elementwise ops (``addcmul``, ``addcdiv``, ``lerp``, training-mode "
    "``native_dropout``: mask and scale): 2 FLOPs per output element. "
    "# NB: a non-1 ``value`` scaling in addcmul/addcdiv is not counted.",
)

cross_product = per_output_element(
    Category.ELEMENTWISE, 3, "linalg_cross",
    name="cross_product",
    doc="3-vector cross product: each output element is ``a_j b_k - a_k b_j``, 3 FLOPs (two multiplies, "
    "a subtract).",
)


def _foreach(*bases: str) -> tuple[str, ...]:
    """``_foreach_<base>`` and its in-place ``_foreach_<base>_`` for each of ``bases``."""
    return tuple(f"_foreach_{base}{suffix}" for base in bases for suffix in ("", "_"))


foreach_elementwise = per_listed_element(
    Category.ELEMENTWISE, 1, *_foreach(*_BASE),
    name="foreach_elementwise",
    doc="``_foreach_<op>`` of an elementwise op over a list of tensors (torch.optim's foreach kernels, "
    "``torch._foreach_mul``): 1 FLOP per element of each tensor of the list, 0 MACs.",
)

foreach_fused_elementwise = per_listed_element(
    Category.ELEMENTWISE, 2, *_foreach("addcmul", "addcdiv", "lerp"),
    name="foreach_fused_elementwise",
    doc="``_foreach_addcmul``/``_foreach_addcdiv``/``_foreach_lerp`` over a list of tensors: 2 FLOPs per "
    "element of each tensor of the list, 0 MACs.",
)
