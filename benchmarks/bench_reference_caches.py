"""What the reference counter's speed machinery saves, measured side by side in one run.

For each model, the CPU time of one ``flopaudit.reference.count`` divided by
the CPU time of one plain forward pass (``torch.no_grad()``), the median over
``--reps`` repetitions; each repetition times the forward pass and then every
variant, so a load spike hits the numbers of one repetition together:

- ``memo warm``: the pricing memo on, the model counted before in the process
  (every call it makes has been priced once);
- ``memo cold``: the pricing memo on, emptied first (``clear_caches()``): a
  first count in a fresh process, where only calls repeated within the model
  are found in the memo;
- ``cache off``: ``count(..., cache=False)``: every call priced afresh;
- ``gc on``: the memo warm, the cyclic garbage collector left running during
  the count (the counter pauses it otherwise).

"saved" is what the memo saves of a count: ``1 - warm / off`` and
``1 - cold / off``. Last, the 7B Llama-style config of
``bench_reference_meta.py`` built and counted on meta, the same variants
(wall time, fewer repetitions).

Run it by hand, never as a test::

    .venv/bin/python benchmarks/bench_reference_caches.py [--reps 9] [--models resnet18 mobilenet_v2] [--skip-llama]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from flopaudit.inputs import ModelInputs
from flopaudit.reference import api, clear_caches, count, engine
from flopaudit.table import format_table
from flopaudit.zoo import get_case

MODELS = ("resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "convnext_tiny", "lstm-bidir-2layer")
VARIANTS = ("memo warm", "memo cold", "cache off", "gc on")


@contextlib.contextmanager
def gc_running() -> Iterator[None]:
    """The counter without its pause of the garbage collector (for this measure only)."""
    saved = engine.gc_paused, api.gc_paused
    engine.gc_paused = api.gc_paused = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.gc_paused, api.gc_paused = saved


def variants(run: Callable[[bool], Any]) -> dict[str, tuple[Callable[[], Any] | None, Callable[[], Any]]]:
    """Each variant as (what to do before the clock starts, what is timed); ``run(cache)`` counts once."""
    def gc_on() -> None:
        with gc_running():
            run(True)

    return {
        "memo warm": (None, lambda: run(True)),
        "memo cold": (clear_caches, lambda: run(True)),
        "cache off": (None, lambda: run(False)),
        "gc on": (None, gc_on),
    }


def cpu_time(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def model_row(model_id: str, reps: int) -> list[str]:
    model, inputs = get_case(model_id).instantiate()

    def forward() -> None:
        with torch.no_grad():
            model(*inputs.args, **inputs.kwargs)

    timed = variants(lambda cache: count(model, inputs, cache=cache))
    forward()
    for _, fn in timed.values():
        fn()  # warm-up: imports, first-call work, the memo filled
    ratios: dict[str, list[float]] = {name: [] for name in timed}
    forwards = []
    for _ in range(reps):
        f = cpu_time(forward)
        forwards.append(f)
        for name, (prepare, fn) in timed.items():
            if prepare is not None:
                prepare()
            ratios[name].append(cpu_time(fn) / f)
    med = {name: statistics.median(r) for name, r in ratios.items()}
    print(f"  measured {model_id}", file=sys.stderr, flush=True)
    return ([model_id, f"{statistics.median(forwards) * 1e3:.1f} ms"] + [f"{med[v]:.2f}x" for v in VARIANTS]
            + [f"{1 - med['memo warm'] / med['cache off']:.0%}", f"{1 - med['memo cold'] / med['cache off']:.0%}"])


def llama_row(reps: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_reference_meta import LlamaConfig, LlamaLike

    cfg = LlamaConfig()

    def build_and_count(cache: bool) -> None:
        with torch.device("meta"):
            model = LlamaLike(cfg)
        count(model, ModelInputs((torch.zeros(1, 2048, dtype=torch.long, device="meta"),)), device="meta",
              cache=cache)

    timed = variants(build_and_count)
    for _, fn in timed.values():
        fn()
    walls: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(reps):
        for name, (prepare, fn) in timed.items():
            if prepare is not None:
                prepare()
            start = time.perf_counter()
            fn()
            walls[name].append(time.perf_counter() - start)
    med = {name: statistics.median(w) for name, w in walls.items()}
    print("  measured the 7B config on meta", file=sys.stderr, flush=True)
    return (["llama-7b on meta (build + count)", "-"] + [f"{med[v]:.2f} s" for v in VARIANTS]
            + [f"{1 - med['memo warm'] / med['cache off']:.0%}", f"{1 - med['memo cold'] / med['cache off']:.0%}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), "
          f"{len(os.sched_getaffinity(0))} usable cores, load average {os.getloadavg()[0]:.1f}")
    print(f"count CPU time / forward CPU time, median over {args.reps} repetitions")
    rows = [model_row(m, args.reps) for m in args.models]
    if not args.skip_llama:
        rows.append(llama_row(max(3, args.reps // 3)))
    print(format_table(["model", "forward", *VARIANTS, "saved (warm)", "saved (cold)"], rows,
                       align="lr" + "r" * (len(VARIANTS) + 2)))


if __name__ == "__main__":
    main()
