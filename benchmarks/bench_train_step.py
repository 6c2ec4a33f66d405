"""The reference counter's training-step count next to a plain training step, side by side in one run.

For each model: the CPU time of one plain training step (``model(x)``, the
sum of the output as the loss, ``loss.backward()``, and one ``AdamW`` step;
gradients cleared before each), and of the reference counter counting the
same step (``flopaudit.reference.count(model, x, pass_="train",
optimizer="adamw")``: the recording, the pricing of every operator and the
per-phase summaries; not the adapter's backend predictions); and the same
two without the optimizer step (forward, loss and backward). CPU time of
this process with ``--threads`` intra-op threads (default 1), so the load of
other processes stays out; each repetition times all four, and the table
shows the median over ``--reps`` of the ratios within a repetition (target:
at most 2x). The "floor" columns time the plain step under a dispatch mode
that only runs each operator, with two global module hooks doing nothing
(``bench_reference_caches.floor_pass``): the least any recorder built on a
dispatch mode pays. Run it by hand, never as a test::

    .venv/bin/python benchmarks/bench_train_step.py [--reps 5] [--models resnet18 hf-gpt2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from collections.abc import Callable
from typing import Any

import steady_allocator  # benchmarks/steady_allocator.py (this script's folder is on sys.path)
import torch
from bench_reference_caches import floor_pass

from flopaudit.inputs import ModelInputs
from flopaudit.table import format_table
from flopaudit.training import sum_of_outputs
from flopaudit.zoo import get_case

MODELS = ("resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "lstm-bidir-2layer", "hf-llama-tiny", "hf-gpt2")
TARGET_RATIO = 2.0


def cpu_time(fn: Callable[[], Any]) -> float:
    import time

    start = time.process_time()
    fn()
    return time.process_time() - start


def plain_step(model: torch.nn.Module, inputs: ModelInputs, optimizer: bool) -> Callable[[], None]:
    """One ordinary training step: forward, sum loss, backward, and an AdamW step if ``optimizer``."""
    adamw = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def run() -> None:
        adamw.zero_grad(set_to_none=True)
        loss = sum_of_outputs(model(*inputs.args, **inputs.kwargs))
        loss.backward()
        if optimizer:
            adamw.step()

    return run


def counted_step(model: torch.nn.Module, inputs: ModelInputs, optimizer: bool) -> Callable[[], None]:
    """The reference counter counting the same step."""
    from flopaudit.reference import count

    return lambda: count(model, inputs, pass_="train", optimizer="adamw" if optimizer else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(steady_allocator.pin())
    warnings.simplefilter("ignore")
    rows = []
    for model_id in args.models:
        model, inputs = get_case(model_id).instantiate()
        model.train()
        runs = {}
        for opt in (True, False):
            plain = plain_step(model, inputs, opt)
            runs[opt] = (plain, floor_pass(plain), counted_step(model, inputs, opt))
        for plain, floor, counted in runs.values():
            plain(), floor(), counted()  # warm-up: first-call caches, optimizer state
        steps: dict[bool, list[float]] = {True: [], False: []}
        ratios: dict[bool, list[float]] = {True: [], False: []}
        floors: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.reps):
            for opt, (plain, floor, counted) in runs.items():
                p = cpu_time(plain)
                steps[opt].append(p)
                floors[opt].append(cpu_time(floor) / p)
                ratios[opt].append(cpu_time(counted) / p)
        row = [model_id]
        for opt in (True, False):
            ratio = statistics.median(ratios[opt])
            row += [f"{statistics.median(steps[opt]) * 1e3:.0f} ms", f"{statistics.median(floors[opt]):.2f}x",
                    f"{ratio:.2f}x"]
        worst = max(statistics.median(r) for r in ratios.values())
        rows.append([*row, "ok" if worst <= TARGET_RATIO else f"ABOVE {TARGET_RATIO:g}x"])
        print(f"  measured {model_id}", file=sys.stderr, flush=True)
    print(f"reference train-step count / plain training step (CPU time, {args.threads} thread(s), "
          f"median of {args.reps}):")
    print(format_table(["model", "step with AdamW", "floor", "count / step", "step without optimizer", "floor",
                        "count / step", "target"], rows, align="lrrrrrrl"))


if __name__ == "__main__":
    main()
