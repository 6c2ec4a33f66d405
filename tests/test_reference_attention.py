"""Reference counter: attention.

For queries (..., L, E), keys (..., S, E), values (..., S, Ev) with B the
product of the leading dims: MACs = B*L*S*E (Q K^T) + B*L*S*Ev (A V).
Multi-head attention with embedding E, H heads, batch N, L queries and S keys
adds the projections: N*L*E*E (Q) + 2*N*S*E*E (K, V) + N*L*E*E (output).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.reference import Category, count
from flopaudit.reference.formulas.reduction import SOFTMAX_FLOPS_PER_ELEMENT

N, L, E, H = 2, 5, 8, 2


def mha_macs(n: int, lq: int, s: int, e: int) -> int:
    return n * lq * e * e + 2 * n * s * e * e + 2 * n * lq * s * e + n * lq * e * e


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` self-attention, optionally with a causal bool mask."""

    def __init__(self, batch_first: bool, masked: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=batch_first)
        self.masked = masked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1] if self.attn.batch_first else x.shape[0]
        mask = torch.ones(seq, seq, dtype=torch.bool).triu(1) if self.masked else None
        return self.attn(x, x, x, attn_mask=mask)[0]


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "causal_mask"])
@pytest.mark.parametrize("mode", ["eval_no_grad", "train_grad"])
def test_multihead_attention(batch_first: bool, masked: bool, mode: str) -> None:
    model = SelfAttention(batch_first, masked)
    model.train(mode == "train_grad")
    x = torch.randn(N, L, E) if batch_first else torch.randn(L, N, E)
    result = count(model, x, no_grad=mode == "eval_no_grad")
    assert result.unsupported == {}
    assert result.macs == mha_macs(N, L, L, E)  # = 3360
    fast = any(e.op == "aten._native_multi_head_attention.default" for e in result.events)
    # the fused kernel runs only in eval, without grad, batch-first
    assert fast == (mode == "eval_no_grad" and batch_first)


def test_multihead_cross_attention() -> None:
    """Queries of length 5 against keys/values of length 7."""
    attn = nn.MultiheadAttention(E, H, batch_first=True).eval()
    q, kv = torch.randn(N, 5, E), torch.randn(N, 7, E)
    result = count(attn, (q, kv, kv))
    assert result.macs == N * 5 * E * E + 2 * N * 7 * E * E + 2 * N * 5 * 7 * E + N * 5 * E * E


def test_native_mha_extra_flops_match_the_decomposed_path() -> None:
    """Fused and math paths charge the same extras: biases, q scaling, softmax, head averaging."""
    fused = count(SelfAttention(True, False).eval(), torch.randn(N, L, E))
    math = count(SelfAttention(True, False).train(), torch.randn(N, L, E), no_grad=False)
    biases = N * L * 3 * E + N * L * E
    scale = N * L * E
    softmax = SOFTMAX_FLOPS_PER_ELEMENT * N * H * L * L
    average_heads = N * H * L * L
    assert fused.extra_flops == math.extra_flops == biases + scale + softmax + average_heads


class SDPA(nn.Module):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, **self.kwargs)


B, HQ, LQ, S, D = 2, 4, 6, 10, 8


@pytest.mark.parametrize(
    "kwargs, masked",
    [({}, False), ({"is_causal": True}, True), ({"attn_mask": torch.ones(LQ, S, dtype=torch.bool)}, True)],
    ids=["plain", "causal", "bool_mask"],
)
def test_sdpa_cpu_kernel(kwargs: dict, masked: bool) -> None:
    q, k, v = torch.randn(B, HQ, LQ, D), torch.randn(B, HQ, S, D), torch.randn(B, HQ, S, D)
    result = count(SDPA(**kwargs), (q, k, v))
    assert result.unsupported == {}
    assert result.macs == B * HQ * LQ * S * D + B * HQ * LQ * S * D
    sdpa = [e for e in result.events if e.category is Category.ATTENTION]
    assert [e.op for e in sdpa] == ["aten._scaled_dot_product_flash_attention_for_cpu.default"]
    scores = B * HQ * LQ * S
    assert sdpa[0].extra_flops == B * HQ * LQ * D + scores * (SOFTMAX_FLOPS_PER_ELEMENT + int(masked))


def test_sdpa_grouped_query_attention() -> None:
    """4 query heads share 2 key/value heads: cost is that of 4 full heads."""
    q, kv = torch.randn(B, 4, LQ, D), torch.randn(B, 2, S, D)
    result = count(SDPA(enable_gqa=True), (q, kv, kv))
    assert result.macs == 2 * B * 4 * LQ * S * D


def test_sdpa_value_dim_differs() -> None:
    """Ev = 16 != E = 8 (the CPU flash kernel declines; the math path is counted)."""
    q, k, v = torch.randn(B, HQ, LQ, D), torch.randn(B, HQ, S, D), torch.randn(B, HQ, S, 16)
    result = count(SDPA(), (q, k, v))
    assert result.unsupported == {}
    assert result.macs == B * HQ * LQ * S * D + B * HQ * LQ * S * 16


class GpuKernel(nn.Module):
    """Calls one GPU attention kernel directly (runs on meta tensors)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> object:
        aten = torch.ops.aten
        if self.name == "flash":
            return aten._scaled_dot_product_flash_attention(q, k, v)
        if self.name == "efficient":
            return aten._scaled_dot_product_efficient_attention(q, k, v, None, False)
        if self.name == "cudnn":
            return aten._scaled_dot_product_cudnn_attention(q, k, v, None, False)
        if self.name == "overrideable":
            return aten._scaled_dot_product_fused_attention_overrideable(q, k, v)
        # the low-level kernels take (batch, seq, heads, dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.name == "flash_forward":
            return aten._flash_attention_forward(q, k, v, None, None, LQ, S, 0.0, False, False)
        return aten._efficient_attention_forward(q, k, v, None, None, None, None, None, 0.0, 0)


@pytest.mark.parametrize("kernel", ["flash", "efficient", "cudnn", "overrideable", "flash_forward",
                                    "efficient_forward"])
def test_gpu_attention_kernels_on_meta(kernel: str) -> None:
    q = torch.empty(B, HQ, LQ, D, device="meta")
    k = torch.empty(B, HQ, S, D, device="meta")
    result = count(GpuKernel(kernel), (q, k, k), device="meta")
    assert result.unsupported == {}
    assert result.macs == 2 * B * HQ * LQ * S * D
    assert result.per_category["attention"].calls == 1


def test_varlen_flash_forward_is_an_upper_bound_from_shapes() -> None:
    """Two packed sequences of 3 and 5 tokens (8 in total), maxima 5: bound min(8*5, 8*5) per head."""
    from flopaudit.reference.registry import cost_of

    total, heads = 8, 2
    q = torch.empty(total, heads, D, device="meta")
    cu = torch.empty(3, dtype=torch.int32, device="meta")
    cost = cost_of(torch.ops.aten._flash_attention_forward.default,
                   (q, q, q, cu, cu, 5, 5, 0.0, False, False), {}, (q,))
    assert cost is not None
    exact = heads * (3 * 3 + 5 * 5) * 2 * D
    assert cost.macs == heads * min(total * 5, total * 5) * 2 * D >= exact


def test_transformer_encoder_layer_fast_path() -> None:
    """eval + no_grad + batch_first: one fused ``_transformer_encoder_layer_fwd``."""
    ffn = 16
    layer = nn.TransformerEncoderLayer(E, H, ffn, batch_first=True).eval()
    result = count(layer, torch.randn(N, L, E))
    assert result.unsupported == {}
    assert [e.op for e in result.events if e.macs] == ["aten._transformer_encoder_layer_fwd.default"]
    expected = mha_macs(N, L, L, E) + 2 * N * L * E * ffn
    assert result.macs == expected  # 3360 + 2560
    # the same layer decomposed (training, with grad): same MACs
    slow = count(nn.TransformerEncoderLayer(E, H, ffn, batch_first=True).train(), torch.randn(N, L, E),
                 no_grad=False)
    assert slow.macs == expected
    assert not any("_transformer_encoder_layer_fwd" in e.op for e in slow.events)


def test_transformer_encoder_layer_fast_path_extras() -> None:
    """Extras of the fused layer: attention extras + FFN biases + activation + 2 affine LNs + 2 residuals."""
    ffn = 16
    result = count(nn.TransformerEncoderLayer(E, H, ffn, batch_first=True).eval(), torch.randn(N, L, E))
    tokens = N * L
    attention = tokens * 4 * E + tokens * E + SOFTMAX_FLOPS_PER_ELEMENT * N * H * L * L
    feed_forward = tokens * ffn + tokens * E + tokens * ffn
    norms = 2 * 7 * tokens * E
    residuals = 2 * tokens * E
    assert result.extra_flops == attention + feed_forward + norms + residuals


class TwoPaddedBatches(nn.Module):
    """One encoder layer run on two padded batches with the same number of
    real tokens (10) but other lengths: (4, 6) and (5, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True), num_layers=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor, mx: torch.Tensor, my: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, src_key_padding_mask=mx) + self.encoder(y, src_key_padding_mask=my)


def _padding(lengths: tuple[int, ...], width: int) -> torch.Tensor:
    mask = torch.ones(len(lengths), width, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = False
    return mask


def test_nested_encoder_is_priced_per_sequence_length() -> None:
    model = TwoPaddedBatches().eval()
    x, y = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    result = count(model, (x, y, _padding((4, 6), 6), _padding((5, 5), 6)))
    per_token = 4 * 16 * 16 + 2 * 16 * 32  # projections + feed-forward, per real token
    scores = 2 * 16  # scores + weighted sum, per (query, key) pair of one sequence
    expected = sum(n * per_token + n * n * scores for n in (4, 6, 5, 5))
    assert not result.unsupported
    assert result.macs == expected  # 4^2 + 6^2 != 5^2 + 5^2: each batch priced on its own lengths
    fused = [e for e in result.events if e.op == "aten._transformer_encoder_layer_fwd.default"]
    assert [e.input_shapes[0] for e in fused] == [(10, 16), (10, 16)]  # the components joined along dim 0
    assert [e.bytes_written for e in fused] == [10 * 16 * 4] * 2  # a nested output's real tokens, float32


# -- flex attention: a higher-order operator, traced through its dense kernel --------------

class FlexSelfAttention(nn.Module):
    """``Linear(E, 3E)`` projections, then ``flex_attention`` with an optional ``score_mod``
    (a relative-position bias: one subtraction and one addition per score) and block mask."""

    def __init__(self, score_mod: bool = False, causal: bool = False) -> None:
        super().__init__()
        self.qkv = nn.Linear(E, 3 * E)
        self.score_mod, self.causal = score_mod, causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        n, length, _ = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, H, E // H).permute(2, 0, 3, 1, 4)

        def bias(score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, qi: torch.Tensor,
                 ki: torch.Tensor) -> torch.Tensor:
            return score + (qi - ki)

        def causal(b: torch.Tensor, h: torch.Tensor, qi: torch.Tensor, ki: torch.Tensor) -> torch.Tensor:
            return qi >= ki

        mask = create_block_mask(causal, None, None, length, length, device="cpu") if self.causal else None
        return flex_attention(q, k, v, score_mod=bias if self.score_mod else None, block_mask=mask)


@pytest.mark.parametrize("score_mod, causal", [(False, False), (True, False), (False, True)])
def test_flex_attention_counts_its_dense_kernel(score_mod: bool, causal: bool) -> None:
    """``flex_attention`` reaches the dispatch mode as a higher-order operator; on the CPU in
    eager mode it runs its math implementation, whose products are counted as they run:
    every score, masked or not (that implementation computes them all)."""
    seq = 16
    with torch.no_grad():
        r = count(FlexSelfAttention(score_mod, causal), torch.randn(N, seq, E))
    projections = N * seq * E * 3 * E
    assert r.macs == projections + 2 * N * H * seq * seq * (E // H)
    assert r.traced_custom_ops == {"higher_order.flex_attention": 1} and not r.unsupported
    scores = N * H * seq * seq
    plain = count(FlexSelfAttention(), torch.randn(N, seq, E)).extra_flops
    if score_mod:  # the addition per score; (qi - ki) once per query-key pair (vmap batches it over those only)
        assert r.extra_flops - plain == scores + seq * seq
    assert all(e.traced_from == "higher_order.flex_attention" for e in r.events if e.op == "aten.matmul.default")


def test_a_higher_order_operator_its_kernel_refuses_to_trace_is_unsupported_not_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A higher-order operator whose dense kernel asserts that no dispatch mode is active
    (torch's own ``cond`` kernel, used here in place of the recorder's): it runs as it is (the
    branch taken is not recorded) and is reported as unsupported, with a note."""
    from torch._higher_order_ops.cond import cond_op

    from flopaudit.reference import operators

    monkeypatch.setattr(operators, "_DENSE_KERNELS", {})

    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return cond_op(x.sum() > 0, lambda t: self.a(t), lambda t: -t, (x,))

    r = count(Branch(), torch.ones(3, 4))
    assert r.unsupported == {"higher_order.cond": 1} and r.macs == 0
    assert any(n.startswith("higher_order.cond: its Python kernel failed here") for n in r.notes), r.notes
