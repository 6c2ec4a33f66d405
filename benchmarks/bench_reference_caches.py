"""What the reference counter's process cache saves, and what recording costs at least, side by side in one run.

For each model, the CPU time of one ``flopaudit.reference.count`` divided by
the CPU time of one plain forward pass (``torch.no_grad()``), the median over
``--reps`` repetitions; each repetition times the forward pass and then every
variant, so a load spike hits the numbers of one repetition together:

- ``cache warm``: the cache on (both tables of :mod:`flopaudit.reference.caching`),
  the model counted before in the process (every call it makes has been priced
  once, every operator's facts read once);
- ``facts per count``: the same, but each count reads its operators' facts afresh
  (the pricing memo alone): what the operator-facts table saves;
- ``cache cold``: the cache on, emptied first (``clear_caches()``): a
  first count in a fresh process, where only calls repeated within the model
  are found in the memo;
- ``cache off``: ``count(..., cache=False)``: every call priced afresh;
- ``floor``: the forward pass under a ``TorchDispatchMode`` that only runs
  each operator (set up as the recorder's: without torch's per-operator
  Dynamo guard), with two global module hooks that do nothing: what any
  recorder built this way pays before it records anything.

"cache saves" is what the cache saves of a count (``1 - warm / off`` and
``1 - cold / off``), "facts table saves" what its operator-facts table saves of
a warm count (``1 - warm / facts per count``). Last, a second table: the 7B Llama-style
config of ``bench_reference_meta.py`` built and counted on meta (wall time of
build + count), each setting in fresh processes (as a command-line run
counts), the first and the second count of the process.

Run it by hand, never as a test::

    .venv/bin/python benchmarks/bench_reference_caches.py [--reps 9] [--models resnet18 mobilenet_v2] [--skip-llama]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import steady_allocator  # benchmarks/steady_allocator.py (this script's folder is on sys.path)
import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from flopaudit.reference import clear_caches, count, engine
from flopaudit.table import format_table
from flopaudit.zoo import get_case

MODELS = ("resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "convnext_tiny", "lstm-bidir-2layer")
VARIANTS = ("cache warm", "facts per count", "cache cold", "cache off", "floor")


class _RunOnly(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as the recorder's mode (flopaudit/reference/engine.py): no per-operator Dynamo guard

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        return func(*args, **(kwargs or {}))


def _no_op(*args: Any, **kwargs: Any) -> None:
    pass


def floor_pass(forward: Callable[[], Any]) -> Callable[[], Any]:
    """``forward`` under a dispatch mode that only runs each operator, with two global module hooks doing nothing."""
    def run() -> None:
        pre = register_module_forward_pre_hook(_no_op)
        post = register_module_forward_hook(_no_op, with_kwargs=True, always_call=True)
        try:
            with _RunOnly():
                forward()
        finally:
            pre.remove()
            post.remove()

    return run


def variants(run: Callable[[bool], Any]) -> dict[str, tuple[Callable[[], Any] | None, Callable[[], Any]]]:
    """Each variant as (what to do before the clock starts, what is timed); ``run(cache)`` counts once."""
    return {
        "cache warm": (None, lambda: run(True)),
        "facts per count": (None, lambda: facts_per_count(run)),
        "cache cold": (clear_caches, lambda: run(True)),
        "cache off": (None, lambda: run(False)),
    }


def facts_per_count(run: Callable[[bool], Any]) -> None:
    """``run(True)`` with the recorder given a table of operator facts of its own (the pricing memo as it is)."""
    shared = engine.facts_table
    engine.facts_table = lambda cache: {}
    try:
        run(True)
    finally:
        engine.facts_table = shared


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
    timed["floor"] = (None, floor_pass(forward))
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
    return [model_id, f"{statistics.median(forwards) * 1e3:.1f} ms"] + [f"{med[v]:.2f}x" for v in VARIANTS] + savings(med)


def savings(med: dict[str, float]) -> list[str]:
    return [f"{1 - med['cache warm'] / med['cache off']:.0%}", f"{1 - med['cache cold'] / med['cache off']:.0%}",
            f"{1 - med['cache warm'] / med['facts per count']:.0%}"]


LLAMA_RUNNER = """
import sys, time
import torch
sys.path.insert(0, sys.argv[1])
from bench_reference_meta import LlamaConfig, LlamaLike
from flopaudit.reference import count, skip_init
cache = sys.argv[2] == "1"
cfg = LlamaConfig()
for _ in range(2):
    start = time.perf_counter()
    with torch.device("meta"), skip_init():  # as count_meta builds it
        model = LlamaLike(cfg)
    count(model, torch.zeros(1, 2048, dtype=torch.long, device="meta"), device="meta", cache=cache)
    print(time.perf_counter() - start)
"""


def llama_table(reps: int) -> None:
    """Build + count of the 7B config on meta, each setting in fresh processes (wall time)."""
    here = str(Path(__file__).resolve().parent)
    settings = {"cache on": "1", "cache off": "0"}
    walls: dict[str, list[list[float]]] = {name: [[], []] for name in settings}
    for _ in range(reps):
        for name, cache in settings.items():
            proc = subprocess.run([sys.executable, "-c", LLAMA_RUNNER, here, cache], capture_output=True, text=True,
                                  check=True)
            for i, seconds in enumerate(proc.stdout.split()):
                walls[name][i].append(float(seconds))
    med = {name: [statistics.median(w) for w in pair] for name, pair in walls.items()}
    print("  measured the 7B config on meta", file=sys.stderr, flush=True)
    print(f"\n7B Llama-style config on meta: build + count, wall time, median of {reps} fresh processes")
    rows = [[name, f"{first:.2f} s", f"{second:.2f} s"] for name, (first, second) in med.items()]
    print(format_table(["setting", "first count", "second count"], rows, align="lrr"))
    on, off = med["cache on"], med["cache off"]
    print(f"the cache saves {1 - on[0] / off[0]:.0%} of a first count, {1 - on[1] / off[1]:.0%} of a second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(steady_allocator.pin())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), "
          f"{len(os.sched_getaffinity(0))} usable cores, load average {os.getloadavg()[0]:.1f}")
    print(f"count CPU time / forward CPU time, median over {args.reps} repetitions")
    rows = [model_row(m, args.reps) for m in args.models]
    print(format_table(["model", "forward", *VARIANTS, "cache saves (warm)", "cache saves (cold)",
                        "facts table saves"], rows, align="lr" + "r" * (len(VARIANTS) + 3)))
    if not args.skip_llama:
        llama_table(max(3, args.reps // 2))


if __name__ == "__main__":
    main()
