"""Count one training step of the 7B-parameter Llama-style config on the meta device.

The model is :mod:`bench_reference_meta`'s ``LlamaLike`` (RMSNorm, rotary
embeddings, causal SDPA, SwiGLU MLP, untied LM head). Prints the build and
count time, the process's peak resident memory (targets: under 30 s and
2 GB), the MACs per phase next to their closed forms, and the canonical
FLOPs per phase. Not a test: run it by hand::

    .venv/bin/python benchmarks/bench_train_meta.py [--seq 2048] [--batch 1] [--optimizer adamw]

Closed forms (MACs, ``T`` tokens, ``L`` layers, ``d`` model width, ``f``
feed-forward width, ``V`` vocabulary, ``h`` heads of ``e`` channels):

* forward: :func:`bench_reference_meta.closed_form_macs`;
* backward: twice the forward. Every weight matrix runs twice (its input
  gradient and its weight gradient; the first projections' input, the
  normalised embedding, needs a gradient too), the embedding's gradient is a
  scatter-add (no MACs, as its forward), and on the meta device SDPA runs its
  math path, two ``bmm`` whose gradients are four (on CPU the flash kernel's
  backward recomputes the scores: five products where the forward has two).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reference_meta import LlamaConfig, LlamaLike, closed_form_macs, peak_rss_mib  # noqa: E402

from flopaudit.reference import count_meta  # noqa: E402


def closed_form_backward_macs(cfg: LlamaConfig, batch: int, seq: int) -> int:
    """Twice the forward on meta (see the module docstring)."""
    return 2 * closed_form_macs(cfg, batch, seq)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--optimizer", default="adamw", choices=("none", "sgd", "adam", "adamw"))
    args = parser.parse_args()
    cfg = LlamaConfig()
    optimizer = None if args.optimizer == "none" else args.optimizer
    rss0 = peak_rss_mib()
    start = time.perf_counter()
    result = count_meta(lambda: LlamaLike(cfg), lambda: torch.zeros(args.batch, args.seq, dtype=torch.long),
                        fallback="raise", pass_="train", optimizer=optimizer)
    elapsed = time.perf_counter() - start
    forward, backward = closed_form_macs(cfg, args.batch, args.seq), closed_form_backward_macs(cfg, args.batch,
                                                                                               args.seq)
    print(f"config: {cfg}")
    print(f"input: {args.batch} x {args.seq} tokens; device: {result.device}; pass: {result.pass_.describe()}")
    print(f"params (unique): {result.params.unique:,}")
    for phase, summary in result.phases.items():
        expected = {"forward": forward, "backward": backward}.get(phase)
        check = "" if expected is None else f"  closed form {expected:,} ({'equal' if expected == summary.total.macs else 'DIFFERENT'})"
        print(f"{phase:>9}: {summary.total.macs:>22,} MACs {summary.total.flops:>24,} FLOPs{check}")
    print(f"    total: {result.macs:>22,} MACs {result.flops:>24,} FLOPs")
    print(f"events: {len(result.events)}, unsupported: {result.unsupported or 'none'}, notes: {list(result.notes)}")
    print(f"build + count: {elapsed:.2f} s")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (before: {rss0:.0f} MiB)")


if __name__ == "__main__":
    main()
