"""The cost targets for resnet50, as ratios measured side by side.

    python benchmarks/bench_cost.py [--pairs 3] [--threads 1 ...]

For each thread count asked (default: 1 and the usable cores), from one run
(measurements interleaved so that a busy machine slows them alike):

1. reproducibility: two ``flopaudit cost resnet50`` runs back to back; the
   relative difference of their latency medians (target: within 10%),
   repeated ``--pairs`` times;
2. fixed cost: the wall time of one ``flopaudit cost resnet50`` against the
   import floor (importing in a fresh interpreter what the measuring worker
   preloads: torch, torchvision, the reference counter, the measuring code)
   plus 30 forward passes of resnet50 (target: at most 1x), a pass timed two
   ways: in a process of its own on the same threads (median of 12), and the
   cost run's own median latency (the same moment of a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flopaudit.run_defaults import usable_cores

PY = sys.executable
IMPORT_FLOOR = ("import torch, torchvision, torch._dynamo; import flopaudit.reference, flopaudit.measure.cost, "
                "flopaudit.measure.ceilings, flopaudit.measure.memory, flopaudit.execution.work")
FORWARD = """
import statistics, sys, time, torch, torchvision
torch.set_num_threads(int(sys.argv[1]))
model = torchvision.models.resnet50(weights=None).eval()
x = torch.randn(1, 3, 224, 224)
times = []
with torch.no_grad():
    for _ in range(3):
        model(x)
    for _ in range(12):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def wall(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def cost_run(threads: int, out: Path) -> tuple[float, float]:
    """(wall seconds, latency median in seconds) of one ``flopaudit cost resnet50``."""
    seconds, _ = wall([PY, "-m", "flopaudit", "cost", "resnet50", "--threads", str(threads), "--no-progress",
                       "--out", str(out)])
    cost = json.loads((out / "results.json").read_text())["costs"][0]
    assert cost["status"] == "ok", cost
    return seconds, statistics.median(cost["samples_ns"]) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="pairs of cost runs per thread count (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, usable_cores()}))
    args = parser.parse_args()
    print(f"machine: {usable_cores()} usable cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            walls, medians, diffs, floors, forwards, own = [], [], [], [], [], []
            for k in range(args.pairs):
                floors.append(wall([PY, "-c", IMPORT_FLOOR])[0])
                first = cost_run(threads, Path(tmp, f"a{k}"))
                second = cost_run(threads, Path(tmp, f"b{k}"))
                forwards.append(float(wall([PY, "-c", FORWARD, str(threads)])[1].strip()))
                walls += [first[0], second[0]]
                own += [first[0] / (floors[-1] + 30 * first[1]), second[0] / (floors[-1] + 30 * second[1])]
                medians.append((first[1], second[1]))
                diffs.append(abs(first[1] - second[1]) / min(first[1], second[1]))
            floor, forward, cost_wall = (statistics.median(v) for v in (floors, forwards, walls))
            budget = floor + 30 * forward
            print(f"\n{threads} thread(s), {args.pairs} pairs:")
            print("1. latency medians of two cost runs back to back: "
                  + "; ".join(f"{a * 1e3:.1f} / {b * 1e3:.1f} ms ({d:.1%})" for (a, b), d in zip(medians, diffs))
                  + f"; worst {max(diffs):.1%} (target <= 10%)")
            print(f"2. flopaudit cost resnet50: {cost_wall:.2f} s; import floor {floor:.2f} s + 30 x forward "
                  f"({forward * 1e3:.1f} ms) = {budget:.2f} s; ratio {cost_wall / budget:.2f} (target <= 1.0); "
                  f"against each run's own median latency: {statistics.median(own):.2f} "
                  f"(worst {max(own):.2f})")


if __name__ == "__main__":
    main()
