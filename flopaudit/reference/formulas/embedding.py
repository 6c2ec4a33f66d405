"""Embedding lookups: gathers, no arithmetic (except bag reductions)."""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel


@on("embedding", "embedding_renorm_")
def embedding(call: OpCall) -> Cost:
    """``nn.Embedding``: a row gather; 0 MACs, 0 FLOPs (category embedding).

    # NB: ``max_norm`` renormalisation (``embedding_renorm_``) is not counted.
    """
    return Cost(0, 0, Category.EMBEDDING)


@on("_embedding_bag", "_embedding_bag_forward_only", "embedding_bag")
def embedding_bag(call: OpCall) -> Cost:
    """``nn.EmbeddingBag``: gather plus the bag reduction.

    Counted: one add (sum/mean) or comparison (max) per gathered element,
    ``numel(indices) * D``; a multiply per gathered element when
    ``per_sample_weights`` is given.
    # NB: the per-bag divide of ``mode="mean"`` and the ``-1`` per bag of the
    # reduction are ignored.
    """
    indices = call.shape("indices")
    d = call.shape("weight")[-1]
    gathered = numel(indices) * d
    extra = gathered + (gathered if call.get("per_sample_weights") is not None else 0)
    return Cost(0, extra, Category.EMBEDDING)
