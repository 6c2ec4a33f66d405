"""Count a 7B-parameter Llama-style transformer on the meta device.

Prints the build and count times, the process's peak resident memory, and
the reference counter's MACs next to the closed-form count. Not a test: run
it by hand::

    .venv/bin/python benchmarks/bench_reference_meta.py [--seq 2048] [--batch 1]

The model is a small self-contained Llama-like ``nn.Module`` (RMSNorm,
rotary embeddings, causal SDPA, SwiGLU MLP, untied LM head), built from a
config; no ``transformers`` dependency.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flopaudit.reference import count_meta


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int = 32000
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int = 32
    ffn_dim: int = 11008
    max_seq: int = 4096
    eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary_tables(cfg: LlamaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (10000 ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim))
    angles = torch.outer(torch.arange(cfg.max_seq).float(), inv)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    t = x.shape[-2]
    c, s = cos[:t], sin[:t]
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kv = cfg.n_kv_heads * cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, kv, bias=False)
        self.wv = nn.Linear(cfg.dim, kv, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        c = self.cfg
        q = self.wq(x).view(b, t, c.n_heads, c.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=c.n_kv_heads != c.n_heads)
        return self.wo(out.transpose(1, 2).reshape(b, t, c.dim))


class FeedForward(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.eps)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.eps)
        self.ffn = FeedForward(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class LlamaLike(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rotary_tables(cfg)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        return self.lm_head(self.norm(x))


def closed_form_macs(cfg: LlamaConfig, batch: int, seq: int) -> int:
    """Projections, MLP, causal attention counted in full, LM head."""
    tokens = batch * seq
    kv = cfg.n_kv_heads * cfg.head_dim
    proj = tokens * cfg.dim * (2 * cfg.dim + 2 * kv)
    mlp = tokens * 3 * cfg.dim * cfg.ffn_dim
    attn = 2 * batch * cfg.n_heads * seq * seq * cfg.head_dim
    return cfg.n_layers * (proj + mlp + attn) + tokens * cfg.dim * cfg.vocab_size


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM); ru_maxrss can carry a parent's peak over."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    cfg = LlamaConfig()
    rss0 = peak_rss_mib()
    start = time.perf_counter()
    result = count_meta(lambda: LlamaLike(cfg), lambda: torch.zeros(args.batch, args.seq, dtype=torch.long),
                        fallback="raise")
    elapsed = time.perf_counter() - start
    expected = closed_form_macs(cfg, args.batch, args.seq)
    print(f"config: {cfg}")
    print(f"input: {args.batch} x {args.seq} tokens; device: {result.device}")
    print(f"params (unique): {result.params.unique:,}")
    print(f"reference MACs:  {result.macs:,}")
    print(f"closed form:     {expected:,}  ({'equal' if result.macs == expected else 'DIFFERENT'})")
    print(f"canonical FLOPs: {result.flops:,}  (extra FLOPs {result.extra_flops:,})")
    print(f"events: {len(result.events)}, unsupported: {result.unsupported or 'none'}")
    print(f"build + count: {elapsed:.2f} s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (before: {rss0:.0f} MiB)")


if __name__ == "__main__":
    main()
