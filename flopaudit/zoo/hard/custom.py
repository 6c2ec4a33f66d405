"""Hard cases whose work hides from module hooks: functional math in a custom
module, a custom ``torch.autograd.Function``, a ``torch.library`` custom op,
a weight whose tensor subclass runs ``F.linear`` its own way, and the
quantize/dequantize operators of a PT2E-quantized graph.

Canonical MACs are the contractions the code performs (``F.linear``,
``torch.matmul``, ``einsum``, ``mm``), whatever wraps them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs

#: Name of the custom op this module registers (once per process, at import).
CUSTOM_OP = "flopaudit_zoo::scaled_matmul"


@torch.library.custom_op(CUSTOM_OP, mutates_args=())
def scaled_matmul(x: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """``(x @ weight) * scale`` as an opaque op: x (n, k) @ weight (k, m) is n*k*m MACs."""
    return torch.mm(x, weight) * scale


@scaled_matmul.register_fake
def _scaled_matmul_fake(x: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[1])


aten = torch.ops.aten
_LINEAR = F.linear
"""``F.linear`` as imported (as torchao's table of overrides holds it): a counter that patches
``F.linear`` calls this original, which is what ``__torch_function__`` then receives."""


class Int8RowWeight(torch.Tensor):
    """A weight held as int8 values and one scale per output row, as torchao's ``Int8Tensor``
    holds a weight quantized by ``Int8WeightOnlyConfig``: a wrapper tensor subclass whose
    ``__torch_function__`` runs ``F.linear`` itself, as torchao's does: ``torch.mm`` of the
    input and the int8 values converted to the input's dtype, times the scales, plus the bias
    in place. Every other function runs as usual; ``detach``, ``clone``, ``alias`` and
    ``_to_copy`` (a new dtype: the scales only) apply to both inner tensors."""

    qdata: torch.Tensor
    scale: torch.Tensor

    @staticmethod
    def __new__(cls, qdata: torch.Tensor, scale: torch.Tensor) -> Int8RowWeight:
        return torch.Tensor._make_wrapper_subclass(cls, qdata.shape, dtype=scale.dtype, device=qdata.device)

    def __init__(self, qdata: torch.Tensor, scale: torch.Tensor) -> None:
        self.qdata, self.scale = qdata, scale

    def __repr__(self) -> str:  # (the default repr reads the values, which a wrapper has not got)
        return f"Int8RowWeight(shape={tuple(self.shape)}, dtype={self.dtype})"

    def __tensor_flatten__(self) -> tuple[list[str], None]:
        return ["qdata", "scale"], None

    @staticmethod
    def __tensor_unflatten__(inner: dict[str, torch.Tensor], meta: Any, outer_size: Any,
                             outer_stride: Any) -> Int8RowWeight:
        return Int8RowWeight(inner["qdata"], inner["scale"])

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is _LINEAR:
            x, w = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            y = torch.mm(x.reshape(-1, x.shape[-1]), w.qdata.t().to(x.dtype)) * w.scale.to(x.dtype)
            y = y.reshape(*x.shape[:-1], w.shape[0])
            if bias is not None:
                y += bias
            return y
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        w = args[0]
        if func in (aten.detach.default, aten.clone.default, aten.alias.default):
            return Int8RowWeight(func(w.qdata), func(w.scale))
        if func is aten._to_copy.default:
            moved = {k: v for k, v in kwargs.items() if k != "dtype"}
            return Int8RowWeight(func(w.qdata, **moved), func(w.scale, **kwargs))
        raise NotImplementedError(f"Int8RowWeight does not run {func}")


def _int8_linear(in_features: int, out_features: int) -> nn.Linear:
    """A Linear whose weight is rounded to int8 per output row (``Int8RowWeight``, frozen)."""
    layer = nn.Linear(in_features, out_features)
    w = layer.weight.detach()
    scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127
    qdata = torch.round(w / scale[:, None]).to(torch.int8)
    layer.weight = nn.Parameter(Int8RowWeight(qdata, scale), requires_grad=False)
    return layer


def int8_weight_mlp() -> nn.Module:
    """Linear(16, 32), ReLU, Linear(32, 8), both weights quantized to int8 per row (weight only)."""
    return nn.Sequential(_int8_linear(16, 32), nn.ReLU(), _int8_linear(32, 8))


class FunctionalMath(nn.Module):
    """Raw parameters combined with ``F.linear``, ``torch.matmul`` and ``torch.einsum``."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(32, 16) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(32))
        self.w2 = nn.Parameter(torch.randn(32, 24) * 0.1)
        self.w3 = nn.Parameter(torch.randn(24, 8) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(F.linear(x, self.w1, self.b1))  # (4, 16) -> (4, 32)
        h = torch.matmul(h, self.w2)  # (4, 32) -> (4, 24)
        return torch.einsum("bi,ij->bj", h, self.w3)  # (4, 24) -> (4, 8)


class _MatmulFunction(torch.autograd.Function):
    """``x @ w`` with a hand-written backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return x.mm(weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        return grad.mm(weight.t()), x.t().mm(grad)


class AutogradFunctionModel(nn.Module):
    """A parameter multiplied in through a custom ``autograd.Function``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MatmulFunction.apply(x, self.weight)


_matmul = _MatmulFunction.apply
"""``_MatmulFunction.apply`` bound at import, as pytorch-tabnet binds ``sparsemax = SparsemaxFunction.apply``."""


class BoundAutogradFunctionModel(nn.Module):
    """The same Function called through a name bound at import, then a ``Linear(32, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32) * 0.1)
        self.head = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_matmul(x, self.weight))


class CustomOpModel(nn.Module):
    """The ``flopaudit_zoo::scaled_matmul`` custom op, then an ordinary ``Linear(32, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32) * 0.1)
        self.head = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(scaled_matmul(x, self.weight, 0.5))


class QuantDequantLinear(nn.Module):
    """A Linear(16, 8) as a PT2E-quantized graph (``convert_pt2e``) runs it: the input quantized
    to uint8 and dequantized again, the int8 weight (a buffer) dequantized per output row, then
    ``F.linear`` in float32. The quantize/dequantize operators are PyTorch's own
    ``quantized_decomposed`` operators: Python functions registered for every backend
    (``CompositeExplicitAutograd``), a multiply, add, round and clamp per element."""

    def __init__(self) -> None:
        super().__init__()
        import torch.ao.quantization.fx._decomposed  # noqa: F401 - registers torch.ops.quantized_decomposed

        w = torch.randn(8, 16)
        scale = w.abs().amax(dim=1) / 127
        self.register_buffer("qweight", torch.round(w / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", torch.zeros(8, dtype=torch.int64))
        self.bias = nn.Parameter(torch.zeros(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = torch.ops.quantized_decomposed
        q = ops.quantize_per_tensor(x, 0.05, 128, 0, 255, torch.uint8)
        x = ops.dequantize_per_tensor(q, 0.05, 128, 0, 255, torch.uint8)
        w = ops.dequantize_per_channel(self.qweight, self.scale, self.zero_point, 0, -128, 127, torch.int8)
        return F.linear(x, w, self.bias)


def cases() -> list[ModelCase]:
    return [
        hard_case(
            "custom-functional-math",
            FunctionalMath,
            randn_inputs((4, 16)),
            {"custom", "functional", "linear"},
            # F.linear 4 x 16 x 32 + matmul 4 x 32 x 24 + einsum 4 x 24 x 8
            expected_macs=4 * 16 * 32 + 4 * 32 * 24 + 4 * 24 * 8,
            expected_params=32 * 16 + 32 + 32 * 24 + 24 * 8,
            description="a custom module with only nn.Parameters: F.linear, torch.matmul and torch.einsum on (4, 16)",
            default=True,
        ),
        hard_case(
            "custom-autograd-function",
            AutogradFunctionModel,
            randn_inputs((4, 16)),
            {"custom", "autograd-function"},
            expected_macs=4 * 16 * 32,  # x (4, 16) mm W (16, 32) inside Function.forward
            expected_params=16 * 32,
            description="x @ W through a custom torch.autograd.Function on (4, 16)",
        ),
        hard_case(
            "custom-autograd-function-bound",
            BoundAutogradFunctionModel,
            randn_inputs((4, 16)),
            {"custom", "autograd-function", "linear"},
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,  # x (4, 16) mm W (16, 32) inside Function.forward; the head
            expected_params=16 * 32 + 32 * 8 + 8,
            description="x @ W through a custom torch.autograd.Function's apply bound to a name at import "
            "(_matmul = _MatmulFunction.apply), then Linear(32, 8), on (4, 16)",
        ),
        hard_case(
            "int8-weight-subclass",
            int8_weight_mlp,
            randn_inputs((4, 16)),
            {"custom", "tensor-subclass", "linear"},
            # x (4, 16) mm W1 (16, 32) + (4, 32) mm W2 (32, 8); the scales and the biases are elementwise
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,
            expected_params=32 * 16 + 32 + 8 * 32 + 8,
            description="Linear(16, 32), ReLU, Linear(32, 8) on (4, 16) with int8 weights held in a tensor "
            "subclass, as torchao's weight-only int8 quantization holds them: its __torch_function__ runs "
            "F.linear as torch.mm of the input and the int8 values, times the per-row scales, plus the bias "
            "in place, so no aten::linear runs",
        ),
        hard_case(
            "quant-dequant-linear",
            QuantDequantLinear,
            randn_inputs((4, 16)),
            {"custom", "torch-library", "linear"},
            expected_macs=4 * 16 * 8,  # F.linear on the dequantized input and weight
            expected_params=8,  # the bias: the int8 weight, its scales and zero points are buffers
            description="Linear(16, 8) as a PT2E-quantized graph runs it, on (4, 16): the input quantized to uint8 "
            "and back, the int8 weight dequantized per row (PyTorch's quantized_decomposed operators, Python "
            "kernels registered for every backend), then F.linear in float32",
        ),
        hard_case(
            "custom-torch-library-op",
            CustomOpModel,
            randn_inputs((4, 16)),
            {"custom", "torch-library", "linear"},
            # custom op x (4, 16) @ W (16, 32) + head 4 x 32 x 8
            expected_macs=4 * 16 * 32 + 4 * 32 * 8,
            expected_params=16 * 32 + 32 * 8 + 8,
            description=f"torch.library custom op {CUSTOM_OP} (x @ W * 0.5, fake kernel registered) "
            "then Linear(32, 8), on (4, 16)",
        ),
    ]
