"""DeepSpeed's flops profiler (DeepSpeed 0.19, ``get_model_profile``) as a ruleset.

Same family as calflops (:mod:`flopaudit.reference.backend_rulesets._patched_profiler`),
with transposed convolutions priced per group once (calflops divides by
``groups`` twice) and more functions patched for MACs: ``torch.mm``/``Tensor.mm``,
``torch.bmm``/``Tensor.bmm``, ``Tensor.__matmul__`` (so ``@``) with the
matmul formula, ``F.scaled_dot_product_attention`` with its own, and
``einops.einsum`` for FLOPs only. Its total sums ``__macs__`` over
``modules()``, so a shared module counts once.
"""

from __future__ import annotations

from flopaudit.reference.backend_rulesets._patched_profiler import (
    FLOP_ONLY_FUNCTIONS,
    MAC_FUNCTIONS,
    patched_profiler_ruleset,
)
from flopaudit.reference.rulesets import register_ruleset

_MATMUL = ("profiler.matmul", "matmul/mm/bmm/@ = prod(a.shape) x b.shape[-1]")

DEEPSPEED = register_ruleset(patched_profiler_ruleset(
    "deepspeed",
    "DeepSpeed flops profiler: MACs of patched F.linear, F.conv*, F.conv_transpose*, matmul/mm/bmm/@, addmm, "
    "baddbmm and scaled_dot_product_attention calls; RNN kernels and everything else 0.",
    {
        **MAC_FUNCTIONS,
        **{path: _MATMUL for path in ("torch.matmul", "torch.Tensor.matmul", "torch.Tensor.__matmul__", "torch.mm",
                                      "torch.Tensor.mm", "torch.bmm", "torch.Tensor.bmm")},
        **{f"torch.nn.functional.conv_transpose{d}d": (
            "profiler.conv_transpose_per_group",
            "F.conv_transposeNd = prod(k) x Cin x weight.shape[1] x input positions (bias not in MACs)")
           for d in (1, 2, 3)},
        "torch.nn.functional.scaled_dot_product_attention": (
            "profiler.sdpa", "scaled_dot_product_attention = prod(q) x Lk + prod(q[:-1]) x Lk x Dv"),
    },
    FLOP_ONLY_FUNCTIONS,
    unpatched_products="torch.Tensor.__rmatmul__, addbmm, mv, torch._grouped_mm, torch.sparse.mm",
))
