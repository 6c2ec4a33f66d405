"""calflops' ``calculate_flops`` (calflops 0.3.2) as a ruleset.

calflops descends from DeepSpeed's flops profiler
(:mod:`flopaudit.reference.backend_rulesets._patched_profiler`): it runs the
model in eval mode with autograd on while ``torch.nn.functional`` and tensor
functions are wrapped, and counts MACs only for ``F.linear``, ``F.conv*``,
``F.conv_transpose*``, ``torch.matmul``/``Tensor.matmul``, ``addmm`` and
``torch.baddbmm``. It does not patch ``@``, ``torch.bmm``, ``torch.mm`` or
``F.scaled_dot_product_attention``: products made that way count 0 (the
attention of ``nn.MultiheadAttention``, which uses ``torch.bmm`` without a
mask and ``torch.baddbmm`` with one).

Each module's calls are added to its ``__macs__`` and the total walks
``children()`` from the root (``get_module_macs``), so a module shared by two
parents, and everything inside it, is counted once per name
(``event_counts_per_name``).
"""

from __future__ import annotations

from flopaudit.reference.backend_rulesets._patched_profiler import (
    FLOP_ONLY_FUNCTIONS,
    MAC_FUNCTIONS,
    patched_profiler_ruleset,
)
from flopaudit.reference.rulesets import register_ruleset

CALFLOPS = register_ruleset(patched_profiler_ruleset(
    "calflops",
    "calflops calculate_flops: MACs of patched F.linear, F.conv*, F.conv_transpose*, torch/Tensor matmul, addmm and "
    "baddbmm calls; @, bmm, mm, SDPA, RNN kernels and everything else 0; shared modules once per name.",
    MAC_FUNCTIONS,
    FLOP_ONLY_FUNCTIONS,
    unpatched_products="@, torch.bmm, torch.mm",
    event_counts_per_name=True,
    params="trainable",
))
