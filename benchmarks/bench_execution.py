"""What supervised, warm workers cost: the execution targets, as ratios measured side by side.

    python benchmarks/bench_execution.py [--reps 3]

Prints, from one run (each measurement repeated ``--reps`` times, the
measurements interleaved so that a busy machine slows them alike; medians):

1. fixed cost: ``flopaudit run`` of a one-``nn.Linear`` model on every backend,
   no cache, against importing torch, torchvision and every backend in one
   process (target: at most 1.3x);
2. resnet50 on every backend, no cache, against that import time plus twice
   the sum of the backends' own count times in one process (target: at most 1x);
3. ``flopaudit --help`` against starting a bare Python interpreter (target: at most 3x);
4. what the fork server's ``gc.freeze()`` saves (:mod:`flopaudit.execution.server_ready`): the
   backends' count times in the workers (the sum of the cells' ``elapsed_s``) of the default zoo on
   every backend, serial, against the same run with ``FLOPAUDIT_GC_FREEZE=0``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
IMPORT_ALL = ("import torch, torchvision, thop, ptflops, fvcore.nn, torchinfo, torch.utils.flop_counter; "
              "import flopaudit.adapters, flopaudit.reference, flopaudit.execution.work")
ONE_LINEAR = "import torch\nfrom torch import nn\n\ndef build():\n    return nn.Linear(16, 16)\n"
COUNT_TIMES = """
import json, time, torch, torchvision
torch.set_num_threads(1)
from flopaudit.adapters import backend_names, get_adapter, get_backend
model = torchvision.models.resnet50(weights=None).eval()
x = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    model(x)
times = {}
for name in backend_names():
    if not get_backend(name).counts("inference") or not get_adapter(name).available():
        continue  # (what `flopaudit run` does not count either: training-step columns, counters not installed)
    start = time.perf_counter()
    result = get_adapter(name).count(model, x)
    times[name] = time.perf_counter() - start
    assert result.ok, (name, result.error)
print(json.dumps(times))
"""


def wall(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def counted_s(out: str) -> float:
    """The sum of the cells' count times (``elapsed_s``) in a run's ``results.csv``."""
    with open(Path(out, "results.csv"), newline="") as f:
        return sum(float(row["elapsed_s"] or 0) for row in csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    flopaudit = [PY, "-m", "flopaudit"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_one_linear.py").write_text(ONE_LINEAR)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, *sys.path])}
        one_linear = [*flopaudit, "run", "--models", "bench_one_linear:build", "--input-shape", "1,16",
                      "--no-cache", "--no-progress", "--out", f"{tmp}/one"]
        resnet50 = [*flopaudit, "run", "--models", "resnet50", "--no-cache", "--no-progress", "--out", f"{tmp}/r50"]
        zoo = [*flopaudit, "run", "--jobs", "1", "--no-cache", "--no-progress", "--out", f"{tmp}/zoo"]
        samples: dict[str, list[float]] = {k: [] for k in ("import", "one", "r50", "counts", "help", "python",
                                                           "frozen", "unfrozen")}
        for _ in range(args.reps):
            samples["import"].append(wall([PY, "-c", IMPORT_ALL], env=env))
            samples["one"].append(wall(one_linear, env=env, cwd=tmp))
            samples["r50"].append(wall(resnet50, env=env, cwd=tmp))
            for freeze, key in (("1", "frozen"), ("0", "unfrozen")):
                wall(zoo, env={**env, "FLOPAUDIT_GC_FREEZE": freeze}, cwd=tmp)
                samples[key].append(counted_s(f"{tmp}/zoo"))
            proc = subprocess.run([PY, "-c", COUNT_TIMES], capture_output=True, text=True, env=env, check=True)
            samples["counts"].append(sum(json.loads(proc.stdout.strip().splitlines()[-1]).values()))
            for _ in range(5):
                samples["help"].append(wall([*flopaudit, "--help"], env=env))
                samples["python"].append(wall([PY, "-c", "pass"], env=env))
    m = {k: statistics.median(v) for k, v in samples.items()}
    print(f"machine: {os.cpu_count()} cores; medians of {args.reps} interleaved runs (--help: {5 * args.reps})")
    print(f"import torch+torchvision+backends: {m['import']:.2f} s")
    print(f"1. flopaudit run, one nn.Linear, all backends: {m['one']:.2f} s = {m['one'] / m['import']:.2f}x "
          f"the import time (target <= 1.3x)")
    budget = m["import"] + 2 * m["counts"]
    print(f"2. flopaudit run resnet50, all backends: {m['r50']:.2f} s; import + 2 x in-process counts "
          f"({m['counts']:.2f} s) = {budget:.2f} s; ratio {m['r50'] / budget:.2f} (target <= 1.0)")
    print(f"3. flopaudit --help: {m['help'] * 1000:.0f} ms = {m['help'] / m['python']:.2f}x a bare interpreter "
          f"({m['python'] * 1000:.0f} ms; target <= 3x)")
    print(f"4. the default zoo's counts in the workers: {m['frozen']:.2f} s with the fork server's objects frozen, "
          f"{m['unfrozen']:.2f} s with FLOPAUDIT_GC_FREEZE=0; saves {1 - m['frozen'] / m['unfrozen']:.0%}")


if __name__ == "__main__":
    main()
