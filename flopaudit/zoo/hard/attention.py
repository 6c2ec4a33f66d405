"""Hard cases for attention: hand-written, fused (SDPA), nn.MultiheadAttention
and nn.TransformerEncoderLayer.

Canonical MACs of one attention block with batch N, query length L, key length
S, model width E, h heads of width d = E / h:

* projections: N*L*E*E (q) + N*S*Ek*E (k) + N*S*Ev*E (v) + N*L*E*E (out),
  with Ek/Ev the key/value widths (E unless ``kdim``/``vdim`` say otherwise);
* scores Q K^T: N*h*L*S*d = N*L*S*E; weighted sum A V: N*h*L*S*d = N*L*S*E.

Scaling, masking, softmax and head-averaging of the weights are extra FLOPs.
Under ``torch.no_grad()`` in eval mode, batch-first self-attention runs
PyTorch's fused fast path (``aten._native_multi_head_attention``,
``aten._transformer_encoder_layer_fwd``): one aten op hides every matmul.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs

# Shapes shared by the cases: batch 2, sequence 6, width 16, 4 heads of 4.
N, L, E, H = 2, 6, 16, 4
D = E // H
FFN = 32

#: Self-attention with a fused qkv Linear(E, 3E) and an out Linear(E, E):
#: qkv N*L*E*3E + scores N*H*L*L*D + weighted sum N*H*L*L*D + out N*L*E*E.
SELF_ATTENTION_MACS = N * L * E * (3 * E) + N * H * L * L * D + N * H * L * L * D + N * L * E * E
#: Linear(E, 3E) + Linear(E, E), weights and biases.
SELF_ATTENTION_PARAMS = E * 3 * E + 3 * E + E * E + E


class MatmulAttention(nn.Module):
    """Multi-head self-attention written with ``@`` and ``torch.softmax``."""

    def __init__(self, width: int = E, heads: int = H, fused: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.fused = fused
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        d = width // self.heads
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (n, heads, length, d)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = (q @ k.transpose(-2, -1)) * d**-0.5
            y = torch.softmax(scores, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(n, length, width))


class MultiheadAttention(nn.Module):
    """Self-attention in a class of its own named ``MultiheadAttention``, as fair-esm and
    fairseq write theirs: q, k, v and output projections as ``nn.Linear`` children, which
    run, and the scores and weighted sum as ``torch.bmm``. Not torch's
    ``nn.MultiheadAttention`` (whose ``out_proj`` never runs as a module)."""

    def __init__(self, width: int = E, heads: int = H) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(width, width) for _ in range(3))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        d = width // self.heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, length, self.heads, d).transpose(1, 2).reshape(n * self.heads, length, d)

        q, k, v = heads(self.q_proj(x) * d**-0.5), heads(self.k_proj(x)), heads(self.v_proj(x))
        y = torch.bmm(torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1), v)
        return self.out_proj(y.reshape(n, self.heads, length, d).transpose(1, 2).reshape(n, length, width))


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` called as self-attention, ``attn(x, x, x)``."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=batch_first)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attn(x, x, x, attn_mask=attn_mask)[0]


class CrossAttention(nn.Module):
    """``nn.MultiheadAttention`` with ``kdim = vdim = 8`` over a memory of another length."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, kdim=8, vdim=8, batch_first=True)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.attn(x, memory, memory, need_weights=False)[0]


def _causal_mask_inputs() -> ModelInputs:
    mask = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)  # True = not allowed to attend
    return ModelInputs((torch.randn(N, L, E),), {"attn_mask": mask})


def _encoder_layer() -> nn.Module:
    return nn.TransformerEncoderLayer(E, H, dim_feedforward=FFN, dropout=0.0, batch_first=True)


class FrozenEncoder(nn.Module):
    """A frozen ``nn.MultiheadAttention`` and a frozen ``nn.TransformerEncoderLayer``, then a
    trainable ``Linear(E, 4)`` head, in eval mode: a fine-tuned head on a frozen backbone. No
    input or weight of the two blocks needs a gradient, so they take their fused fast paths
    even with autograd on."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=True).requires_grad_(False)
        self.layer = _encoder_layer().requires_grad_(False)
        self.head = nn.Linear(E, 4)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer(self.attn(x, x, x, need_weights=False)[0]))


class RelativePositionBias(nn.Module):
    """Scores from ``Linear(16, 16)`` over 16 tokens (a 4 x 4 grid) plus a relative position
    bias, indexed as BEiT and Swin index theirs: each forward builds the index from the grid's
    coordinates, ``dy * (2 * side - 1) + dx``, an integer product of 16 x 16 elements."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(16, 16)
        self.table = nn.Parameter(torch.randn(7 * 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = 4
        grid = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")).flatten(1)
        relative = (grid[:, :, None] - grid[:, None, :]) + (side - 1)  # (2, 16, 16), integers
        index = relative[0] * (2 * side - 1) + relative[1]
        return self.proj(x) + self.table[index]


class QueryVectorPooling(nn.Module):
    """Attention pooling by a learned query vector: ``Linear(8, 8)``, then each token's score by
    ``h @ self.query`` (a 3-D tensor times a 1-D one, which matmul runs as a matrix-vector product),
    a softmax over the tokens and the weighted sum of the tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.query = nn.Parameter(torch.randn(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        weights = torch.softmax(h @ self.query, dim=-1)
        return (weights.unsqueeze(-1) * h).sum(1)


class SkippedRowsMask(nn.Module):
    """Attention under a mask in which the tokens that may attend to nothing (here the first) are
    let attend to every token, ``mask.masked_fill(skip, True)``, so that the softmax has a value to
    give them, and their output is zeroed after: torchtune's cross-attention layers write it so for
    text tokens before any image. A Python bool as ``masked_fill``'s value is what torch's JIT
    tracer has no operator schema for."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.kv = nn.Linear(8, 16)
        self.out = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        mask = torch.ones(n, t, t, dtype=torch.bool, device=x.device)
        mask[:, 0] = False
        skip = ~mask.any(-1, keepdim=True)
        mask = mask.masked_fill(skip, True)
        k, v = self.kv(x).chunk(2, dim=-1)
        scores = (self.q(x) @ k.transpose(1, 2)).masked_fill(~mask, float("-inf"))
        return self.out(scores.softmax(-1) @ v).masked_fill(skip, 0)


#: Valid lengths of the two sequences of the padding-mask case (the rest is padding).
PADDED_LENGTHS = (4, L)


def _padded_batch_inputs() -> ModelInputs:
    mask = torch.ones(N, L, dtype=torch.bool)  # True = padding
    for i, length in enumerate(PADDED_LENGTHS):
        mask[i, :length] = False
    return ModelInputs((torch.randn(N, L, E),), {"src_key_padding_mask": mask})


def _encoder_two_layers() -> nn.Module:
    return nn.TransformerEncoder(_encoder_layer(), num_layers=2)


def cases() -> list[ModelCase]:
    mha_macs = 4 * N * L * E * E + 2 * N * L * L * E  # q, k, v, out projections + scores + weighted sum
    mha_params = 3 * E * E + 3 * E + E * E + E  # in_proj weight/bias + out_proj weight/bias
    s = 10  # memory length of the cross-attention case
    return [
        hard_case(
            "relative-position-index",
            RelativePositionBias,
            randn_inputs((2, 16, 16)),
            {"attention", "integer", "linear"},
            expected_macs=2 * 16 * 16 * 16,  # the Linear; the index arithmetic is on integers
            expected_params=16 * 16 + 16 + 49,
            description="scores from Linear(16, 16) on (2, 16, 16) plus a relative position bias indexed as "
            "BEiT and Swin index theirs, the index built in each forward with an integer product "
            "(dy * 7 + dx over 16 x 16 token pairs), which torchprofile prices as MACs",
        ),
        hard_case(
            "skipped-rows-mask",
            SkippedRowsMask,
            randn_inputs((2, 5, 8)),
            {"attention", "functional", "linear", "matmul"},
            # q and out Linear(8, 8), kv Linear(8, 16) on 2 x 5 tokens; scores and weighted sum 2 x 5 x 5 x 8 each
            expected_macs=2 * 5 * (8 * 8 + 8 * 16 + 8 * 8) + 2 * (2 * 5 * 5 * 8),
            expected_params=(8 * 8 + 8) * 2 + 8 * 16 + 16,
            description="attention on (2, 5, 8) under a mask whose rows that attend to nothing (the first token) "
            "are let attend to every token by mask.masked_fill(skip, True), their output zeroed after, as "
            "torchtune's cross-attention layers write it; a JIT trace has no schema for a bool as the value",
        ),
        hard_case(
            "query-vector-pooling",
            QueryVectorPooling,
            randn_inputs((2, 5, 8)),
            {"attention", "functional", "linear", "matmul"},
            expected_macs=2 * 5 * 8 * 8 + 2 * 5 * 8,  # the Linear; one dot product of 8 per token
            expected_params=8 * 8 + 8 + 8,
            description="attention pooling by a learned query vector on (2, 5, 8): Linear(8, 8), each token "
            "scored by h @ query (a 3-D tensor times a 1-D parameter: a matrix-vector product), a softmax over "
            "the 5 tokens and their weighted sum",
        ),
        hard_case(
            "attention-matmul",
            MatmulAttention,
            randn_inputs((N, L, E)),
            {"attention", "functional", "linear"},
            expected_macs=SELF_ATTENTION_MACS,
            expected_params=SELF_ATTENTION_PARAMS,
            description="4-head self-attention written with @ and torch.softmax on (2, 6, 16): "
            "the two matmuls are functional, only the Linears are modules",
            default=True,
        ),
        hard_case(
            "attention-own-mha-class",
            MultiheadAttention,
            randn_inputs((N, L, E)),
            {"attention", "functional", "linear"},
            expected_macs=SELF_ATTENTION_MACS,
            expected_params=4 * E * E + 4 * E,
            description="4-head self-attention on (2, 6, 16) in a model's own class named MultiheadAttention "
            "(fair-esm's and fairseq's): four Linear children that run and two torch.bmm; counters that "
            "treat torch's nn.MultiheadAttention specially must not take it for torch's",
        ),
        hard_case(
            "attention-sdpa",
            functools.partial(MatmulAttention, fused=True),
            randn_inputs((N, L, E)),
            {"attention", "functional", "linear", "sdpa"},
            expected_macs=SELF_ATTENTION_MACS,
            expected_params=SELF_ATTENTION_PARAMS,
            description="4-head self-attention through F.scaled_dot_product_attention on (2, 6, 16) "
            "(one fused aten op on CPU)",
            default=True,
        ),
        hard_case(
            "mha-batch-first",
            functools.partial(SelfAttention, batch_first=True),
            randn_inputs((N, L, E)),
            {"attention", "mha"},
            expected_macs=mha_macs,
            expected_params=mha_params,
            description="nn.MultiheadAttention(16, 4, batch_first=True) as self-attention on (2, 6, 16); "
            "under no_grad in eval it runs the fused aten._native_multi_head_attention",
            default=True,
        ),
        hard_case(
            "mha-seq-first",
            functools.partial(SelfAttention, batch_first=False),
            randn_inputs((L, N, E)),
            {"attention", "mha"},
            expected_macs=mha_macs,
            expected_params=mha_params,
            description="nn.MultiheadAttention(16, 4) (batch_first=False) as self-attention on (6, 2, 16): "
            "seq-first, dim 0 is not the batch",
        ),
        hard_case(
            "mha-causal-mask",
            functools.partial(SelfAttention, batch_first=True),
            _causal_mask_inputs,
            {"attention", "mha", "kwargs", "mask"},
            expected_macs=mha_macs,  # masking does not remove any product from the count
            expected_params=mha_params,
            description="nn.MultiheadAttention(16, 4, batch_first=True) with a causal bool attn_mask "
            "passed as a keyword on (2, 6, 16)",
        ),
        hard_case(
            "mha-cross-kdim",
            CrossAttention,
            randn_inputs((N, L, E), (N, s, 8)),
            {"attention", "mha", "multi-input"},
            # q proj N*L*E*E + k, v proj N*S*8*E each + scores N*L*S*E + weighted sum N*L*S*E + out N*L*E*E
            expected_macs=N * L * E * E + 2 * N * s * 8 * E + 2 * N * L * s * E + N * L * E * E,
            # q/k/v proj weights (E*E, E*8, E*8) + in_proj_bias 3E + out_proj E*E + E
            expected_params=E * E + E * 8 + E * 8 + 3 * E + E * E + E,
            description="nn.MultiheadAttention(16, 4, kdim=8, vdim=8) cross-attention: queries (2, 6, 16), "
            "memory (2, 10, 8)",
        ),
        hard_case(
            "transformer-encoder-eval",
            _encoder_layer,
            randn_inputs((N, L, E)),
            {"attention", "transformer", "linear", "norm"},
            # self-attention + FFN Linear(16, 32) + Linear(32, 16): N*L*E*FFN each
            expected_macs=mha_macs + 2 * N * L * E * FFN,
            # attention + linear1 (E*FFN + FFN) + linear2 (FFN*E + E) + two LayerNorms (2E each)
            expected_params=mha_params + E * FFN + FFN + FFN * E + E + 2 * 2 * E,
            description="nn.TransformerEncoderLayer(16, 4, 32, batch_first=True) in eval on (2, 6, 16); "
            "under no_grad it is one fused aten._transformer_encoder_layer_fwd",
            default=True,
        ),
        hard_case(
            "attention-frozen-fast-path",
            FrozenEncoder,
            randn_inputs((N, L, E)),
            {"attention", "mha", "transformer", "frozen", "linear", "norm"},
            # attention, then encoder layer (attention + FFN), then head N*L*E*4
            expected_macs=mha_macs + mha_macs + 2 * N * L * E * FFN + N * L * E * 4,
            expected_params=mha_params + (mha_params + E * FFN + FFN + FFN * E + E + 2 * 2 * E) + E * 4 + 4,
            description="a frozen nn.MultiheadAttention(16, 4) and a frozen nn.TransformerEncoderLayer(16, 4, 32), "
            "then a trainable Linear(16, 4) head, in eval on (2, 6, 16): with autograd on, both frozen blocks "
            "take their fused fast paths",
        ),
        hard_case(
            "transformer-encoder-padding-mask",
            _encoder_two_layers,
            _padded_batch_inputs,
            {"attention", "transformer", "linear", "norm", "nested"},
            # Under no_grad the encoder packs the batch into a nested tensor and each fused layer works
            # on the real tokens only: per layer and sequence of length l, projections 4*l*E*E,
            # scores + weighted sum 2*l*l*E, FFN 2*l*E*FFN; two layers.
            expected_macs=2 * sum(4 * n * E * E + 2 * n * n * E + 2 * n * E * FFN for n in PADDED_LENGTHS),
            expected_params=2 * (mha_params + E * FFN + FFN + FFN * E + E + 2 * 2 * E),
            description="nn.TransformerEncoder of 2 TransformerEncoderLayer(16, 4, 32) in eval on (2, 6, 16) "
            "with src_key_padding_mask (lengths 4 and 6): under no_grad the batch becomes a nested tensor "
            "and padding is not computed; counters that run with autograd on compute it",
            default=True,
        ),
    ]
