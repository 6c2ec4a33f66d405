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

A training step (``include_backPropagation=True``) is that forward count
times ``1 + compute_bp_factor`` (3): ``calflops:train`` prices the step's
forward with this ruleset, multiplies it and books what the multiple
assumes of the backward (:func:`~flopaudit.reference.backend_rulesets.rules_of_thumb.times_forward`).
"""

from __future__ import annotations

import dataclasses

from flopaudit.reference.backend_rulesets._patched_profiler import (
    FLOP_ONLY_FUNCTIONS,
    MAC_FUNCTIONS,
    patched_profiler_ruleset,
)
from flopaudit.reference.backend_rulesets.rules_of_thumb import times_forward
from flopaudit.reference.rulesets import closed_form, register_ruleset

CALFLOPS = register_ruleset(patched_profiler_ruleset(
    "calflops",
    "calflops calculate_flops: MACs of patched F.linear, F.conv*, F.conv_transpose*, torch/Tensor matmul, addmm and "
    "baddbmm calls; @, bmm, mm, SDPA, RNN kernels and everything else 0; shared modules once per name.",
    MAC_FUNCTIONS,
    FLOP_ONLY_FUNCTIONS,
    unpatched_products="@, torch.bmm, torch.mm, torch._grouped_mm, torch.sparse.mm",
    event_counts_per_name=True,
    params="trainable",
))

TRAIN_FACTOR = 3
"""calflops' training step: its forward times ``1 + compute_bp_factor``, 2.0 by default
(``calflops.flops_counter.calculate_flops``) and as the adapter passes it."""

closed_form("calflops:train")(times_forward(CALFLOPS, TRAIN_FACTOR))
CALFLOPS_TRAIN = register_ruleset(dataclasses.replace(
    CALFLOPS,
    name="calflops:train",
    description="calflops calculate_flops(include_backPropagation=True): its forward count x 3.",
    closed_form="calflops:train",
))
