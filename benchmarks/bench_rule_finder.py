"""What matching each ruleset's event rules once per event key saves the reference adapter, side by side in one run.

The reference adapter records a model and prices every recorded operator under
every backend's ruleset (its predictions). A ruleset finds the rule pricing an
operator by matching its event rules in turn; :meth:`Ruleset.rule_finder` does
that once for each distinct :meth:`EventRule.key` met in one walk over a
recording (``flopaudit/reference/pricing.py``), where a recurrent layer's cell
runs the same few operators thousands of times. This script times
``get_adapter("reference").count`` with the finder and with every event
matched against the rules in turn (``Ruleset.event_rule``, put in the
finder's place for the variant), each repetition timing both on each model,
and prints the median over ``--reps`` of the CPU-time ratio (one torch
thread). The counts are checked equal. Run it by hand, never as a test::

    .venv/bin/python benchmarks/bench_rule_finder.py [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import steady_allocator  # benchmarks/steady_allocator.py (this script's folder is on sys.path)
import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.inputs import ModelInputs
from flopaudit.reference.rulesets import Ruleset
from flopaudit.table import format_table
from flopaudit.zoo import get_case

ZOO_MODELS = ("resnet18", "mobilenet_v2", "lstm-bidir-2layer")


class _LongGRU(nn.Module):
    """A two-layer GRU over 400 steps and a linear head (speech and audio models run such stacks)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(16, 32, num_layers=2)
        self.head = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _models() -> dict[str, tuple[nn.Module, ModelInputs]]:
    out = {case: get_case(case).instantiate() for case in ZOO_MODELS}
    torch.manual_seed(0)
    out["gru-2layer-400-steps"] = (_LongGRU().eval(), ModelInputs((torch.randn(400, 1, 16),), {}))
    return out


def cpu_time(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(steady_allocator.pin())
    torch.set_num_threads(1)
    adapter = get_adapter("reference")
    finder = Ruleset.rule_finder

    def each_in_turn(self: Ruleset) -> Callable[..., Any]:
        return self.event_rule

    rows = []
    for name, (model, inputs) in _models().items():
        adapter.count(model, inputs)  # (warm: operator facts, pricing memo)
        ratios, with_s, without_s = [], [], []
        for _ in range(args.reps):
            Ruleset.rule_finder = finder  # type: ignore[method-assign]
            t_with, r_with = cpu_time(adapter.count, model, inputs)
            Ruleset.rule_finder = each_in_turn  # type: ignore[method-assign]
            try:
                t_without, r_without = cpu_time(adapter.count, model, inputs)
            finally:
                Ruleset.rule_finder = finder  # type: ignore[method-assign]
            assert (r_with.macs, r_with.predictions) == (r_without.macs, r_without.predictions), name
            ratios.append(t_with / t_without)
            with_s.append(t_with)
            without_s.append(t_without)
        rows.append([name, f"{statistics.median(without_s) * 1e3:.0f} ms", f"{statistics.median(with_s) * 1e3:.0f} ms",
                     f"{statistics.median(ratios):.2f}x", f"{1 - statistics.median(ratios):.0%}"])
        print(f"  measured {name}", flush=True)
    print(f"reference adapter CPU time, median over {args.reps} repetitions, 1 torch thread")
    print(format_table(["model", "rules matched in turn", "rule finder", "ratio", "saves"], rows))


if __name__ == "__main__":
    main()
