"""Attention: ``F.scaled_dot_product_attention`` in every CPU/GPU kernel it
dispatches to, and the fused ``nn.MultiheadAttention`` /
``nn.TransformerEncoderLayer`` fast paths.

For queries ``(..., L, E)``, keys ``(..., S, E)`` and values ``(..., S, Ev)``
with ``B`` the product of the leading (batch and head) dims of the query:

* MACs = ``B*L*S*E`` (``Q K^T``) + ``B*L*S*Ev`` (``A V``);
* extra FLOPs: the scaling as one multiply per query element (``B*L*E``,
  as ``nn.MultiheadAttention``'s math path scales ``Q``); per score element
  (``B*L*S`` of them) 5 for the softmax (see
  :data:`SOFTMAX_FLOPS_PER_ELEMENT`) and 1 for the mask when an
  ``attn_mask``/bias is passed or ``is_causal`` is set.

Grouped-query attention (fewer key/value heads) costs the same as full
multi-head attention with the query's head count.

# NB: causal masking is counted as full ``L*S`` work, as the math kernel does
# it (flash kernels skip the masked blocks, about halving the real work);
# dropout on the attention weights is not counted; SDPA's math kernel scales
# both Q and K by sqrt(scale), which costs ``B*S*E`` more than counted here.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.formulas.norm import normalize_flops
from flopaudit.reference.formulas.reduction import SOFTMAX_FLOPS_PER_ELEMENT
from flopaudit.reference.registry import Category, Cost, OpCall, numel


def attention_cost(batch: int, lq: int, s: int, e: int, ev: int, *, masked: bool) -> Cost:
    """Cost of ``softmax(scale * Q K^T [+ mask]) V`` for ``batch`` independent heads,
    ``lq`` queries and ``s`` keys."""
    scores = batch * lq * s
    macs = scores * e + scores * ev
    extra = batch * lq * e + scores * (SOFTMAX_FLOPS_PER_ELEMENT + (1 if masked else 0))
    return Cost(macs, extra, Category.ATTENTION)


def _masked(call: OpCall, *mask_names: str) -> bool:
    return bool(call.get("is_causal", False)) or any(call.get(n) is not None for n in mask_names) or (
        int(call.get("custom_mask_type", 0) or 0) != 0
    )


@on("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable", "_scaled_dot_product_attention_math",
    "_scaled_dot_product_attention_math_for_mps", "scaled_dot_product_attention")
def sdpa(call: OpCall) -> Cost:
    """SDPA kernels taking ``(..., L, E)`` query layouts (batch, heads, seq, dim).

    Counted and not counted: see the module docstring.
    """
    q, k, v = call.shape("query"), call.shape("key"), call.shape("value")
    return attention_cost(numel(q[:-2]), q[-2], k[-2], q[-1], v[-1],
                          masked=_masked(call, "attn_mask", "attn_bias"))


def _varlen_scores(tq: int, tk: int, max_q: int, max_k: int) -> int:
    """Upper bound of ``sum_i Lq_i * Lk_i`` from totals and maxima (shapes only).

    # NB: the exact sum needs the values of ``cu_seqlens``; shapes only give
    # the totals and the maximum lengths.
    """
    return min(tq * max_k, tk * max_q)


@on("_flash_attention_forward", "_efficient_attention_forward")
def flash_forward(call: OpCall) -> Cost:
    """Low-level flash / memory-efficient kernels, layout ``(B, L, H, E)``.

    Dense batches are exact. For variable-length (``cu_seqlens``) calls the
    score count is the upper bound ``min(Tq*max_k, Tk*max_q)`` per head.
    """
    q, k, v = call.shape("query"), call.shape("key"), call.shape("value")
    masked = _masked(call, "bias", "alibi_slopes")
    cu = call.get("cum_seq_q", call.get("cu_seqlens_q"))
    if cu is None:
        b, lq, h, e = q
        return attention_cost(b * h, lq, k[1], e, v[-1], masked=masked)
    # varlen: q (Tq, H, E), k (Tk, Hk, E)
    max_q = int(call.get("max_q", call.get("max_seqlen_q")) or q[-3])
    max_k = int(call.get("max_k", call.get("max_seqlen_k")) or k[-3])
    h, e = q[-2], q[-1]
    scores = h * _varlen_scores(q[-3], k[-3], max_q, max_k)
    extra = numel(q) + scores * (SOFTMAX_FLOPS_PER_ELEMENT + int(masked))
    return Cost(scores * (e + v[-1]), extra, Category.ATTENTION)


def mha_cost(b: int, lq: int, s: int, e: int, heads: int, *, masked: bool, biases: bool,
             need_weights: bool = False, average_weights: bool = False) -> Cost:
    """Multi-head attention with ``E -> E`` projections (``_qkv_same_embed_dim``).

    MACs: Q projection ``B*L*E*E``, K and V projections ``2*B*S*E*E``,
    attention ``2*B*L*S*E`` (all heads), output projection ``B*L*E*E``.
    Extra: projection biases (one add per projected element), the per-score
    scaling/softmax/mask of :func:`attention_cost`, and averaging the
    returned weights over heads (one add per score) when requested.
    """
    attn = attention_cost(b * heads, lq, s, e // heads, e // heads, masked=masked)
    macs = b * lq * e * e + 2 * b * s * e * e + attn.macs + b * lq * e * e
    extra = attn.extra_flops
    if biases:
        extra += b * lq * e + 2 * b * s * e + b * lq * e
    if need_weights and average_weights:
        extra += b * heads * lq * s
    return Cost(macs, extra, Category.ATTENTION)


def _bls(query: tuple[int, ...], key: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(batch, L, S, E) from batch-first 3-d (or unbatched 2-d) query/key shapes."""
    if len(query) == 2:
        return 1, query[0], key[0], query[1]
    return query[0], query[1], key[1], query[2]


@on("_native_multi_head_attention")
def native_mha(call: OpCall) -> Cost:
    """``nn.MultiheadAttention`` fast path (eval, no grad, batch_first): see :func:`mha_cost`.

    Biases are those passed (``qkv_bias``/``proj_bias``); the head-averaged
    weights cost one add per score when ``need_weights`` and
    ``average_attn_weights`` are set. Nested query/key (a padded batch packed
    by ``nn.TransformerEncoder``) are priced sequence by sequence.
    """
    if "query" in call.nested:
        keys = call.nested.get("key", call.nested["query"])
        pairs = [((1, *q), (1, *k)) for q, k in zip(call.nested["query"], keys)]
    else:
        pairs = [(call.shape("query"), call.shape("key"))]
    macs = extra = 0
    for query, key in pairs:
        b, lq, s, e = _bls(query, key)
        cost = mha_cost(b, lq, s, e, int(call["num_head"]), masked=call.get("mask") is not None,
                        biases=call.get("qkv_bias") is not None, need_weights=bool(call.get("need_weights")),
                        average_weights=bool(call.get("average_attn_weights")))
        macs, extra = macs + cost.macs, extra + cost.extra_flops
    return Cost(macs, extra, Category.ATTENTION)


@on("_transformer_encoder_layer_fwd")
def transformer_encoder_layer(call: OpCall) -> Cost:
    """``nn.TransformerEncoderLayer`` fast path: self-attention + feed-forward block.

    MACs: :func:`mha_cost` with ``S = L`` plus the two feed-forward linears
    ``2*B*L*E*F`` (``F = dim_feedforward``). Extra: attention extras, the
    feed-forward biases (``B*L*F + B*L*E``), the activation (``B*L*F``), two
    layer norms with affine parameters (7 FLOPs/element each) and two
    residual adds (``2*B*L*E``). A nested ``src`` (padding mask in eval) is
    priced sequence by sequence on its real lengths: the padding is skipped
    by the kernel, so it is not counted.
    """
    src = call.shape("src")
    f = call.shape("ffn_weight_1")[0]
    heads, masked = int(call["num_heads"]), call.get("mask") is not None
    # A nested src (nn.TransformerEncoder with a padding mask, in eval) holds
    # one (L_i, E) sequence per batch element: each is priced on its own
    # tokens, padding is not computed.
    parts = [(1, *c) for c in call.nested["src"]] if "src" in call.nested else [src]
    macs = extra = 0
    for part in parts:
        b, lq, _, e = _bls(part, part)
        attn = mha_cost(b, lq, lq, e, heads, masked=masked, biases=True)
        tokens = b * lq
        macs += attn.macs + 2 * tokens * e * f
        extra += attn.extra_flops + tokens * f + tokens * e + tokens * f
        extra += 2 * normalize_flops(tokens * e, True, True) + 2 * tokens * e
    return Cost(macs, extra, Category.ATTENTION)
